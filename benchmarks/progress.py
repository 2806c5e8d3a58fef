"""Progress of a run: a bar per cell on a terminal, plain lines otherwise, nothing when quiet."""

from __future__ import annotations

import math
import sys
from contextlib import contextmanager

from tqdm import tqdm


class Progress:
    """Reports cells and epochs on stderr. ``cell(...)`` yields the per-epoch callback for ``train_cell``;
    ``note`` and ``failed`` add one line about the cell in progress (the last one started or skipped)."""

    def __init__(self, quiet: bool = False, total: int = 0, stream=None):
        self.quiet, self.total, self.done = quiet, total, 0
        self.stream = stream or sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.current = ""

    def _line(self, text: str) -> None:
        if self.quiet:
            return
        if self.interactive:
            tqdm.write(text, file=self.stream)  # above a running bar, not through it
        else:
            print(text, file=self.stream, flush=True)

    def _start(self, fusion: str, seed: int) -> str:
        self.done += 1
        self.current = f"[{self.done}/{self.total}] {fusion} seed {seed}"
        return self.current

    def say(self, text: str) -> None:
        """One line about the run (not about a cell)."""
        self._line(text)

    def note(self, text: str) -> None:
        """One line about the current cell, e.g. that it resumes or why it is trained again."""
        self._line(f"{self.current}: {text}")

    def failed(self, error: str) -> None:
        """The current cell failed (the run goes on; the summary at its end lists every failed cell)."""
        self._line(f"{self.current}: failed: {error}")

    def skip(self, fusion: str, seed: int) -> None:
        self._line(f"{self._start(fusion, seed)}: already done, skipped")

    @contextmanager
    def cell(self, fusion: str, seed: int, max_epochs: int, metric: str):
        label = self._start(fusion, seed)
        best = math.inf

        if self.quiet:
            yield lambda epoch, score, row: None
            return
        if self.interactive:
            with tqdm(total=max_epochs, desc=label, file=self.stream, leave=True, dynamic_ncols=True) as bar:
                def report(epoch, score, row):
                    nonlocal best
                    best = min(best, score)
                    bar.n = epoch
                    bar.set_postfix_str(f"valid {metric} {row[f'valid_{metric}']:.4f} (best score {best:.4f})")

                yield report
            return

        def report(epoch, score, row):
            nonlocal best
            best = min(best, score)
            self._line(f"{label} epoch {epoch}/{max_epochs} train_loss {row['train_loss']:.4f} "
                       f"valid_{metric} {row[f'valid_{metric}']:.4f} best_score {best:.4f}")

        yield report

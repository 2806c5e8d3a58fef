"""The report's index (``README.md``): every file with one line, the claims by section, the parts left out with
the reason, and warnings about the inputs (shown first)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Index"]


@dataclass
class Index:
    """What the report holds: files with one line each, claims by section, parts left out with the reason, and
    warnings about the inputs (shown first)."""

    out: Path
    files: list[tuple[str, str]] = field(default_factory=list)
    sections: dict[str, list[str]] = field(default_factory=dict)
    absent: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def file(self, path: Path, line: str) -> None:
        self.files.append((Path(path).relative_to(self.out).as_posix(), line))

    def figure(self, paths: list[Path], line: str, empty: str = "no finite value to draw") -> None:
        """A figure saved as PNG and PDF (``plots.save_figure``): listed once, by its PNG; a figure the plotting
        function did not draw (``[]``) is listed among the absent parts with the reason ``empty``."""
        if paths:
            self.file(paths[0], f"{line} (also {paths[1].name})")
        else:
            self.absent.append(f"figure of {line}: {empty}")

    def claims(self, section: str, lines: list[str]) -> None:
        self.sections.setdefault(section, []).extend(lines)

    def markdown(self, title: str, intro: list[str]) -> str:
        parts = [f"# {title}", "", *intro]
        if self.warnings:
            parts += ["", "## Warnings", "", *(f"- {line}" for line in self.warnings)]
        parts += ["", "## Files", ""]
        parts += [f"- [`{path}`]({path}): {line}" for path, line in self.files]
        for section, lines in self.sections.items():
            parts += ["", f"## {section}", ""]
            parts += [line if line.startswith(("|", "#")) or not line else f"- {line}" for line in lines]
        if self.absent:
            parts += ["", "## Not in this report", "", *(f"- {line}" for line in self.absent)]
        return "\n".join(parts) + "\n"


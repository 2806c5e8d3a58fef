"""One measured cell: a model's forward pass and training step on one batch (``Harness``), and a fusion counted,
timed and measured within a budget (``measure_cell``) for every registered measure."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.benchmark import Measurement

from fusions import Fusion, build_fusion

from .counts import Counts, count_costs, make_inputs, training_loss
from .measures import list_measures
from .memory import is_out_of_memory, mib, peak_memory_bytes
from .timing import time_calls


class Harness:
    """The forward pass and the training step of one model on one batch, ready to time and measure: the one
    definition of a measured training step (``benchmarks.scaling`` and ``benchmarks.speed``).

    ``model``: a fusion or a predictor, already on ``device``, called as ``model(xs, masks)``; ``xs``/``masks``
    its inputs (``[batch, steps_i, dim_i]`` / ``[batch, steps_i]``). ``loss(output) -> scalar Tensor``: the
    training objective of the step (default ``training_loss``, ``mean(output^2)``). The step uses Adam at ``lr``.
    ``bf16``: the forward pass and the loss under bf16 autocast (mixed precision, as ``--amp`` trains on CUDA).
    """

    def __init__(
        self, model: nn.Module, xs: list[Tensor], masks: list[Tensor], device: torch.device,
        loss: Callable[[object], Tensor] = training_loss, lr: float = 1e-4, bf16: bool = False,
    ):
        self.model, self.xs, self.masks, self.device, self.loss = model, xs, masks, device, loss
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.bf16 = bf16

    def _autocast(self):
        """bf16 autocast on ``device`` when ``bf16`` (the training runner's ``--amp`` on CUDA); else nothing."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def forward(self):
        """One forward pass in eval mode under ``torch.no_grad``; returns the model's output."""
        self.model.eval()
        with torch.no_grad(), self._autocast():
            return self.model(self.xs, self.masks)

    def train_step(self) -> None:
        """One training step: ``zero_grad``, forward in train mode, ``loss``, backward, optimiser step."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            loss = self.loss(self.model(self.xs, self.masks))
        loss.backward()
        self.optimizer.step()

    def live_tensors(self) -> list[Tensor]:
        """Tensors alive between iterations: parameters, gradients, optimiser state, buffers, inputs."""
        tensors = [*self.xs, *self.masks, *self.model.buffers()]
        for p in self.model.parameters():
            tensors.append(p)
            if p.grad is not None:
                tensors.append(p.grad)
        for state in self.optimizer.state.values():
            tensors.extend(v for v in state.values() if isinstance(v, Tensor))
        return tensors

    def time(self, fn: Callable[[], object], warmup: int, repeats: int) -> Measurement:
        """``warmup`` untimed calls of ``fn``, then ``repeats`` timed ones (``time_calls``; seconds)."""
        return time_calls(fn, repeats, self.device, warmup, label=getattr(fn, "__name__", ""))

    def peak_bytes(self, fn: Callable[[], object]) -> int:
        """Peak tensor bytes during one (untimed) call of ``fn``; see ``peak_memory_bytes``."""
        return peak_memory_bytes(fn, self.device, self.live_tensors())


class Cell:
    """One cell as the measures see it (``Measure.value``): ``counts`` and ``batch_size`` always; once it runs,
    ``latency(step)`` and ``peak_bytes(step)`` of a step of its ``harness`` (``"forward"`` or ``"train_step"``),
    each taken once (``warmup`` untimed then ``repeats`` timed calls; one untimed call for the memory) and shared
    by every measure that reads it. Asking a cell without a harness to run raises ``RuntimeError``."""

    def __init__(self, counts: Counts, batch_size: int, harness: Harness | None = None, warmup: int = 0,
                 repeats: int = 1):
        self.counts, self.batch_size, self.harness, self.warmup, self.repeats = (
            counts, batch_size, harness, warmup, repeats)
        self._latency: dict[str, Measurement] = {}
        self._peak: dict[str, int] = {}

    def _step(self, step: str) -> Callable[[], object]:
        if self.harness is None:
            raise RuntimeError("this cell was only counted: it has no harness to run")
        if step not in ("forward", "train_step"):
            raise ValueError(f"unknown step {step!r}; steps: forward, train_step")
        return getattr(self.harness, step)

    def latency(self, step: str) -> Measurement:
        """The timing of ``step`` (seconds per call: ``median``, ``iqr``, ``times``)."""
        if step not in self._latency:
            fn = self._step(step)
            self._latency[step] = self.harness.time(fn, self.warmup, self.repeats)
        return self._latency[step]

    def peak_bytes(self, step: str) -> int:
        """Peak tensor bytes of one call of ``step``."""
        if step not in self._peak:
            fn = self._step(step)
            self._peak[step] = self.harness.peak_bytes(fn)
        return self._peak[step]


@dataclass
class Budget:
    """Limits for one measured cell. ``seconds``: wall-clock for all its iterations; ``memory_bytes``: the
    estimated training-step peak; ``flops_per_second``: the rate used to predict the time from the FLOP count
    before anything runs (None: no prediction; the first iteration's time is still checked)."""

    seconds: float | None = None
    memory_bytes: float | None = None
    flops_per_second: float | None = None


def measure_cell(
    name: str, dims: list[int], seq_lens: list[int], batch_size: int, hparams: dict, device: torch.device,
    repeats: int = 5, warmup: int = 2, budget: Budget | None = None, seed: int = 0,
) -> dict:
    """Count and measure fusion ``name`` built with ``hparams`` for modalities of sizes ``dims`` and lengths
    ``seq_lens`` at ``batch_size``, for every registered measure (``list_measures``).

    Never raises for a failing cell: returns a dict with ``status`` (``"ok"``, ``"over_budget"``, ``"oom"`` or
    ``"error"``), ``note`` (why, when not ok), ``counted_on`` (``Counts.where``), ``est_train_mib`` and
    ``est_seconds`` (the budget's predictions), and one value per measure: counted measures always (from
    ``meta``), measured ones NaN unless ok. Raises ``ValueError`` when ``warmup`` or ``repeats`` is below 1.
    """
    if warmup < 1 or repeats < 1:
        raise ValueError(f"warmup and repeats must be at least 1, got warmup={warmup}, repeats={repeats}")
    budget = budget or Budget()
    counts = count_costs(lambda: build_fusion(name, dims, **hparams), dims, seq_lens)
    input_bytes = batch_size * sum(length * (4 * dim + 1) for length, dim in zip(seq_lens, dims))
    est_bytes = counts.estimate_train_bytes(batch_size, input_bytes)
    iterations = warmup + repeats + 1  # plus one untimed iteration each for the memory measurement
    work = (counts.flops + counts.train_flops) * batch_size * iterations
    est_seconds = work / budget.flops_per_second if budget.flops_per_second else math.nan
    measures = list_measures()
    counted = Cell(counts, batch_size)
    row = {
        "status": "ok", "note": "", "counted_on": counts.where, "est_train_mib": mib(est_bytes),
        "est_seconds": est_seconds,
        **{m.name: m.value(counted) if not m.method.measured else math.nan for m in measures},
    }
    if budget.memory_bytes is not None and est_bytes > budget.memory_bytes:
        return {**row, "status": "over_budget",
                "note": f"estimated peak {mib(est_bytes):.0f} MiB > budget {mib(budget.memory_bytes):.0f} MiB"}
    if budget.seconds is not None and est_seconds > budget.seconds:
        return {**row, "status": "over_budget",
                "note": f"estimated {est_seconds:.0f} s from the FLOP count > budget {budget.seconds:.0f} s"}
    harness = None
    try:
        xs, masks = make_inputs(dims, seq_lens, batch_size, device, seed)
        harness = Harness(build_on(name, dims, hparams, device, seed), xs, masks, device)
        first = (time_calls(harness.forward, 1, device).median + time_calls(harness.train_step, 1, device).median)
        if budget.seconds is not None and first * iterations > budget.seconds:
            note = f"first iteration {first:.1f} s, so ~{first * iterations:.0f} s > budget {budget.seconds:.0f} s"
            return {**row, "status": "over_budget", "note": note}
        cell = Cell(counts, batch_size, harness, warmup - 1, repeats)
        row.update({m.name: m.value(cell) for m in measures if m.method.measured})
        return row
    except Exception as error:  # one failing cell must not end a sweep
        status = "oom" if is_out_of_memory(error) else "error"
        return {**row, "status": status, "note": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"}
    finally:
        del harness
        if device.type == "cuda":
            torch.cuda.empty_cache()


def build_on(name: str, dims: list[int], hparams: dict, device: torch.device, seed: int = 0) -> Fusion:
    """``build_fusion(name, dims, **hparams)`` with a fixed seed, moved to ``device``."""
    torch.manual_seed(seed)
    return build_fusion(name, dims, **hparams).to(device)

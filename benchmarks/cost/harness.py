"""One measured cell: a fusion's forward pass and training step on one batch, counted, timed and measured within
a budget."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from fusions import Fusion, build_fusion

from .counts import count_costs, make_inputs, training_loss
from .memory import is_out_of_memory, mib, peak_memory_bytes
from .timing import Summary, time_iterations


class Harness:
    """The forward pass and the training step of one fusion on one batch, ready to time and measure.

    ``fusion`` must already be on ``device``; ``xs``/``masks`` are its inputs. The training step uses Adam
    (``lr`` 1e-4) and ``training_loss``.
    """

    def __init__(self, fusion: Fusion, xs: list[Tensor], masks: list[Tensor], device: torch.device):
        self.fusion, self.xs, self.masks, self.device = fusion, xs, masks, device
        self.optimizer = torch.optim.Adam(fusion.parameters(), lr=1e-4)

    def forward(self) -> Tensor:
        self.fusion.eval()
        with torch.no_grad():
            return self.fusion(self.xs, self.masks)

    def train_step(self) -> None:
        self.fusion.train()
        self.optimizer.zero_grad(set_to_none=True)
        training_loss(self.fusion(self.xs, self.masks)).backward()
        self.optimizer.step()

    def live_tensors(self) -> list[Tensor]:
        """Tensors alive between iterations: parameters, gradients, optimiser state, buffers, inputs."""
        tensors = [*self.xs, *self.masks, *self.fusion.buffers()]
        for p in self.fusion.parameters():
            tensors.append(p)
            if p.grad is not None:
                tensors.append(p.grad)
        for state in self.optimizer.state.values():
            tensors.extend(v for v in state.values() if isinstance(v, Tensor))
        return tensors

    def time(self, fn: Callable[[], object], warmup: int, repeats: int) -> Summary:
        """``warmup`` untimed calls of ``fn``, then the median and IQR of ``repeats`` timed ones."""
        time_iterations(fn, warmup, self.device)
        return Summary.of(time_iterations(fn, repeats, self.device))

    def peak_bytes(self, fn: Callable[[], object]) -> int:
        """Peak tensor bytes during one (untimed) call of ``fn``; see ``peak_memory_bytes``."""
        return peak_memory_bytes(fn, self.device, self.live_tensors())


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
    ``seq_lens`` at ``batch_size``. Never raises for a failing cell: returns a dict with ``status`` (``"ok"``,
    ``"over_budget"``, ``"oom"`` or ``"error"``), ``note`` (why, when not ok), the counts (always, from
    ``meta``) and the measurements (NaN unless ok): ``fwd_ms``, ``fwd_iqr_ms``, ``train_ms``, ``train_iqr_ms``,
    ``fwd_samples_per_s``, ``train_samples_per_s``, ``fwd_peak_mib``, ``train_peak_mib``; plus ``est_train_mib``,
    ``est_seconds``.
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
    row = {
        "status": "ok", "note": "", "params": counts.params, "flops": counts.flops,
        "train_flops": counts.train_flops, "counted_on": counts.where, "est_train_mib": mib(est_bytes),
        "est_seconds": est_seconds,
        **dict.fromkeys(MEASURED_COLUMNS, math.nan),
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
        first = time_iterations(harness.forward, 1, device)[0] + time_iterations(harness.train_step, 1, device)[0]
        if budget.seconds is not None and first * iterations > budget.seconds:
            note = f"first iteration {first:.1f} s, so ~{first * iterations:.0f} s > budget {budget.seconds:.0f} s"
            return {**row, "status": "over_budget", "note": note}
        fwd = harness.time(harness.forward, warmup - 1, repeats)
        train = harness.time(harness.train_step, warmup - 1, repeats)
        row.update(
            fwd_ms=fwd.median_ms, fwd_iqr_ms=fwd.iqr_ms, train_ms=train.median_ms, train_iqr_ms=train.iqr_ms,
            fwd_samples_per_s=1000 * batch_size / fwd.median_ms,
            train_samples_per_s=1000 * batch_size / train.median_ms,
            fwd_peak_mib=mib(harness.peak_bytes(harness.forward)),
            train_peak_mib=mib(harness.peak_bytes(harness.train_step)),
        )
        return row
    except Exception as error:  # one failing cell must not end a sweep
        status = "oom" if is_out_of_memory(error) else "error"
        return {**row, "status": status, "note": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"}
    finally:
        del harness
        if device.type == "cuda":
            torch.cuda.empty_cache()


MEASURED_COLUMNS = (
    "fwd_ms", "fwd_iqr_ms", "train_ms", "train_iqr_ms", "fwd_samples_per_s", "train_samples_per_s",
    "fwd_peak_mib", "train_peak_mib",
)


def build_on(name: str, dims: list[int], hparams: dict, device: torch.device, seed: int = 0) -> Fusion:
    """``build_fusion(name, dims, **hparams)`` with a fixed seed, moved to ``device``."""
    torch.manual_seed(seed)
    return build_fusion(name, dims, **hparams).to(device)

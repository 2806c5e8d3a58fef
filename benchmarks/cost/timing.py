"""Wall-clock time per call, as a ``torch.utils.benchmark.Measurement`` (its median and interquartile range).

``torch.utils.benchmark.Timer`` times blocks of calls until a minimum run time has passed, and on CUDA
synchronises the device around each block (no CUDA events). The sweeps here need a fixed number of timed calls,
one call per timing (the budget predicts a cell's time from its iteration count) and, on CUDA, events around each
call, so the loop is ``time_calls``; the statistics are the ``Measurement``'s (``summarize``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.utils.benchmark import Measurement, TaskSpec


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (CUDA); nothing on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _elapsed_seconds(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds one call of ``fn`` takes: ``time.perf_counter`` on CPU; CUDA events, synchronised, on CUDA."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1000.0
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def summarize(seconds: list[float], label: str = "") -> Measurement:
    """``seconds`` (one call each) as a ``torch.utils.benchmark.Measurement``: ``times`` are ``seconds``,
    ``median`` and ``iqr`` their median and interquartile range (linear interpolation between order statistics;
    an IQR of 0 for one call). ``label`` names it when printed. Raises ``ValueError`` for no seconds."""
    if not seconds:
        raise ValueError("no timings to summarize")
    task = TaskSpec(stmt=label or "call", setup="", label=label or None, num_threads=torch.get_num_threads())
    return Measurement(number_per_run=1, raw_times=list(seconds), task_spec=task)


def time_calls(
    fn: Callable[[], object], repeats: int, device: torch.device, warmup: int = 0, label: str = "",
) -> Measurement:
    """``warmup`` untimed calls of ``fn``, then ``repeats`` timed ones, each timed on its own (``summarize``d;
    seconds). Raises ``ValueError`` when ``repeats < 1`` or ``warmup < 0``; whatever ``fn`` raises propagates."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be at least 1 and warmup at least 0, got repeats={repeats}, warmup={warmup}")
    for _ in range(warmup):
        fn()
    synchronize(device)
    return summarize([_elapsed_seconds(fn, device) for _ in range(repeats)], label)

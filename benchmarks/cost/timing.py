"""Wall-clock time per iteration: ``time.perf_counter`` on CPU, CUDA events (synchronised) on CUDA; medians and IQRs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_iterations(fn: Callable[[], object], repeats: int, device: torch.device) -> list[float]:
    """Seconds taken by each of ``repeats`` calls of ``fn`` (no warm-up here). CUDA: events, synchronised."""
    if device.type == "cuda":
        times = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end) / 1000.0)
        return times
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times

@dataclass
class Summary:
    """Median and interquartile range of a list of seconds, reported in milliseconds."""

    median_ms: float
    iqr_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Summary:
        if len(seconds) == 1:
            return cls(1000 * seconds[0], 0.0)
        quartiles = statistics.quantiles(seconds, n=4, method="inclusive")
        return cls(1000 * statistics.median(seconds), 1000 * (quartiles[2] - quartiles[0]))

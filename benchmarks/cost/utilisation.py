"""How close a model's step gets to the hardware: its achieved FLOP rate against the machine's dense matmul rate.

* ``matmul_rate(device, dtype)``: the dense matrix-product rate of this machine, measured now, at the current
  thread count: ``torch.mm`` of two ``size x size`` matrices (default 2048 on CPU, 8192 on CUDA), timed by
  ``torch.utils.benchmark.Timer.blocked_autorange`` (which synchronises CUDA around each block), ``2 size^3`` FLOPs
  per product over the median time. This is the practical peak a model's matrix products can reach, not the
  vendor's datasheet figure; on CPU it depends on the threads, so it is measured in the same run and setting as
  the step it is compared with.
* ``step_flops(fn)``: the FLOPs of one call of ``fn`` (e.g. a training step: forward, backward, optimiser),
  counted by ``torch.utils.flop_counter.FlopCounterMode`` (matrix products, convolutions and attention; element-
  wise work such as activations, normalisation and Adam's update is not counted, so a step's achieved rate is a
  lower bound on the work it does).
* ``achieved = flops / seconds`` and ``utilisation = achieved / matmul_rate`` (a fraction; 1 would be a step
  made only of large matrix products at the machine's rate).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch.utils.benchmark import Timer
from torch.utils.flop_counter import FlopCounterMode

CPU_SIZE, CUDA_SIZE = 2048, 8192
MIN_RUN_SECONDS = 1.0


def matmul_rate(device: torch.device, dtype: torch.dtype = torch.float32, size: int | None = None,
                min_run_time: float = MIN_RUN_SECONDS) -> float:
    """The dense matmul rate of ``device`` in FLOP/s for ``dtype`` at the current thread count (module
    docstring). ``size``: the square matrices' side (default ``CPU_SIZE`` / ``CUDA_SIZE``); ``min_run_time``:
    seconds of timed products at least. Raises ``ValueError`` for ``size < 1``; a dtype the device cannot
    multiply raises torch's error. Measured once per process and setting (device, dtype, size, threads)."""
    size = size or (CUDA_SIZE if device.type == "cuda" else CPU_SIZE)
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    return _measured_rate(str(device), dtype, size, min_run_time, torch.get_num_threads())


@functools.cache
def _measured_rate(device: str, dtype: torch.dtype, size: int, min_run_time: float, threads: int) -> float:
    """``matmul_rate``'s measurement, once per process and setting (the thread count is part of the key)."""
    device = torch.device(device)
    generator = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=generator).to(device=device, dtype=dtype)
    timer = Timer("torch.mm(a, b)", globals={"torch": torch, "a": a, "b": b},
                  num_threads=torch.get_num_threads(), label=f"mm {size}x{size} {dtype}")
    timer.timeit(1)  # warm up: kernel selection, allocation
    return 2.0 * size**3 / timer.blocked_autorange(min_run_time=min_run_time).median


def step_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` as ``FlopCounterMode`` counts them (module docstring); ``fn`` runs once."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())

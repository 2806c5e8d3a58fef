"""Peak bytes held by tensors during one call (CUDA allocator statistics; on CPU the profiler's allocation events),
and out-of-memory errors recognised."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from .counts import storage_key
from .timing import synchronize

MIB = 2**20


def live_bytes(tensors: Iterable[Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (views of one storage counted once)."""
    seen: dict[tuple, int] = {}
    for t in tensors:
        if isinstance(t, Tensor):
            key = storage_key(t)
            seen[key] = key[1]
    return sum(seen.values())


def peak_memory_bytes(fn: Callable[[], object], device: torch.device, live: Iterable[Tensor] = ()) -> int:
    """Peak bytes held by tensors during one call of ``fn``, including those live when it starts.

    CUDA: ``max_memory_allocated`` (``live`` is not needed: the allocator knows them). CPU: ``live`` (the
    tensors alive at the start: parameters, gradients, optimiser state, inputs) plus the peak of the running
    sum of the allocations and frees that ``torch.profiler`` records during ``fn``.
    """
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        synchronize(device)
        return int(torch.cuda.max_memory_allocated(device))
    start = live_bytes(live)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(
        ((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
         if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU),
        key=lambda event: event[0],
    )
    running = peak = 0
    for _, nbytes in events:
        running += nbytes
        peak = max(peak, running)
    return start + peak


def is_out_of_memory(error: BaseException) -> bool:
    """True for CUDA's ``OutOfMemoryError``, ``MemoryError`` and the CPU allocator's out-of-memory error."""
    if isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    message = str(error).lower()
    return isinstance(error, RuntimeError) and any(
        text in message for text in ("out of memory", "can't allocate memory", "not enough memory")
    )

def mib(nbytes: float) -> float:
    """Bytes -> MiB."""
    return nbytes / MIB

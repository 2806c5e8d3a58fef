"""Peak bytes held by tensors during one call (CUDA allocator statistics; on CPU the profiler's allocation events),
and out-of-memory errors recognised."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor
from torch.profiler import ProfilerActivity, profile

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
    sum of the allocations and frees that ``torch.profiler`` records during ``fn`` (``cpu_allocations``).
    """
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        synchronize(device)
        return int(torch.cuda.max_memory_allocated(device))
    start = live_bytes(live)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    running = peak = 0
    for nbytes in cpu_allocations(prof):
        running += nbytes
        peak = max(peak, running)
    return start + peak


def cpu_allocations(prof: profile) -> list[int]:
    """The bytes of every CPU allocation (positive) and free (negative) that ``prof`` recorded with
    ``profile_memory=True``, in the order they happened.

    The one place that reads the profiler's private results (``prof.profiler.kineto_results``, the
    ``_ProfilerResult`` of ``torch._C``). The public views fold allocations into the operator that encloses them:
    ``prof.events()`` and ``key_averages()`` give each operator the sum of the allocations and frees inside it,
    so a buffer allocated and freed within one operator (and the order of the rest) is lost, and the peak with
    it. The public ``export_chrome_trace`` keeps every allocation and gives the same events, but writes the
    whole trace as JSON first: about 1 KB per event, 162 MB and 10 s more for one GRF training step at n = 32
    (2 cores), which a sweep pays on every cell. Raises ``RuntimeError`` when the profiler no longer offers the
    private results this reads (a torch release that changed them; ``tests/test_measures.py`` checks them
    against the public trace).
    """
    try:
        events = prof.profiler.kineto_results.events()
        recorded = [(e.start_ns(), e.nbytes()) for e in events
                    if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU]
    except AttributeError as error:
        raise RuntimeError(f"torch {torch.__version__}'s profiler no longer offers the allocation events "
                           f"benchmarks.cost.memory reads ({error}); see cpu_allocations") from None
    return [nbytes for _, nbytes in sorted(recorded, key=lambda event: event[0])]


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

"""The cost of one fusion on one input shape: parameters, FLOPs, latency, throughput and peak memory.

Conventions (also written next to every result by ``benchmarks.scaling``):

* **FLOPs** are matrix-product FLOPs per sample, one multiply-add = 2 FLOPs, counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (``mm``, ``addmm``, ``bmm``, ``baddbmm``, convolutions and
  attention). Elementwise work (softmax, layer norm, activations, dropout, residual adds, bias adds, pooling
  sums, optimiser updates) is *not* counted. Counting runs on the ``meta`` device (shapes only, no memory),
  with the module in train mode, autograd on and the math attention backend, so that no fused kernel hides its
  work from the counter (on CPU ``FlopCounterMode`` counts 0 for the fused attention kernel, and
  ``nn.MultiheadAttention``'s eval fast path counts 0 as well). ``flops`` is one forward pass,
  ``train_flops`` a forward plus a backward pass (about 3x: the backward of a product costs two products).
* **Latency** is wall-clock time per batch after ``warmup`` untimed iterations: the median and interquartile
  range over ``repeats`` timed iterations. CPU: ``time.perf_counter``. CUDA: CUDA events around each
  iteration and a synchronisation before reading them. A forward pass runs in eval mode under
  ``torch.no_grad``; a training step is ``zero_grad``, forward (train mode), the loss ``mean(output^2)``,
  backward and an Adam step. **Throughput** is ``batch_size / median latency`` (samples per second).
* **Peak memory** is the largest number of bytes held by tensors during one forward pass or one training
  step, including what was already allocated when it started (parameters, gradients, optimiser state,
  inputs). CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``. CPU: the same
  quantity from the allocation events of PyTorch's CPU allocator, recorded by ``torch.profiler`` with
  ``profile_memory=True`` in a separate, untimed iteration: the starting bytes are summed from the known live
  tensors and every allocation and free is replayed in order. It counts tensor storage only (as CUDA's
  number does): not the Python interpreter, the allocator's own caching or fragmentation, or oneDNN/MKL
  scratch space (``tracemalloc`` sees none of torch's memory, and ``ru_maxrss`` is a process-lifetime
  high-water mark that includes all of that and never goes down, so neither is used).
"""

from __future__ import annotations

import math
import statistics
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from fusions import Fusion, build_fusion

MIB = 2**20
COUNT_BATCH = 2  # FLOPs are counted on a batch of 2 and divided: per-sample, and no batch-of-one special case


def make_inputs(
    dims: list[int], seq_lens: list[int], batch_size: int, device: torch.device | str = "cpu", seed: int = 0,
) -> tuple[list[Tensor], list[Tensor]]:
    """Random modalities ``[batch, seq_lens[i], dims[i]]`` with all-True masks (every step real, the case the
    analytic FLOP formulas describe). On ``meta`` the tensors have shapes only."""
    device = torch.device(device)
    if device.type == "meta":
        xs = [torch.empty(batch_size, length, dim, device=device) for length, dim in zip(seq_lens, dims)]
    else:
        generator = torch.Generator().manual_seed(seed)
        xs = [torch.randn(batch_size, length, dim, generator=generator).to(device) for length, dim in
              zip(seq_lens, dims)]
    masks = [torch.ones(batch_size, length, dtype=torch.bool, device=device) for length in seq_lens]
    return xs, masks


def count_params(module: nn.Module) -> int:
    """Number of parameters (shared tensors counted once)."""
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())


def training_loss(output: Tensor) -> Tensor:
    """The loss of a cost-measurement training step: ``mean(output^2)`` (a scalar; its FLOPs are not counted)."""
    return output.float().square().mean()


@dataclass
class Counts:
    """Shape-only counts for one fusion and input shape (from a ``meta`` run).

    ``params``: parameters. ``flops`` / ``train_flops``: forward / forward+backward FLOPs per sample (see the
    module docstring). ``saved_bytes_per_sample``: bytes of the activations autograd saves for the backward
    pass, per sample (the bulk of a training step's memory). ``where``: ``"meta"``, or ``"cpu"`` when the
    fusion could not run on ``meta`` (e.g. it reads tensor values) and was counted on real tensors.
    """

    params: int
    flops: int
    train_flops: int
    saved_bytes_per_sample: int
    where: str = "meta"

    def estimate_train_bytes(self, batch_size: int, input_bytes: int = 0) -> int:
        """Estimated peak bytes of one training step: parameters, gradients and Adam's two moments
        (``4 x 4`` bytes per float32 parameter), the saved activations, and the inputs."""
        return 16 * self.params + self.saved_bytes_per_sample * batch_size + input_bytes


def _storage_key(t: Tensor) -> tuple:
    storage = t.untyped_storage()
    return (storage._cdata, storage.nbytes()) if t.device.type == "meta" else (storage.data_ptr(), storage.nbytes())


def _run_counts(build: Callable[[], Fusion], dims, seq_lens, device: str) -> Counts:
    with torch.device(device):
        fusion = build()
    fusion.train()
    xs, masks = make_inputs(dims, seq_lens, COUNT_BATCH, device)
    param_keys = {_storage_key(p) for p in fusion.parameters()}
    saved: dict[tuple, int] = {}

    def pack(t: Tensor) -> Tensor:
        key = _storage_key(t)
        if key not in param_keys:
            saved[key] = key[1]
        return t

    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            output = fusion.fuse(xs, masks).fused
        forward = counter.get_total_flops()
        training_loss(output).backward()
        total = counter.get_total_flops()
    return Counts(
        params=count_params(fusion), flops=forward // COUNT_BATCH, train_flops=total // COUNT_BATCH,
        saved_bytes_per_sample=sum(saved.values()) // COUNT_BATCH, where=device,
    )


def count_costs(build: Callable[[], Fusion], dims: list[int], seq_lens: list[int]) -> Counts:
    """Count parameters, FLOPs and saved-activation bytes of ``build()`` on inputs of ``seq_lens`` steps.

    ``build`` makes the fusion (called under ``torch.device("meta")``); it runs ``fusion.fuse`` directly,
    without the input checks (they read tensor values, which ``meta`` tensors do not have). A fusion that
    cannot run on ``meta`` (it reads values, e.g. ``pack_padded_sequence`` lengths) is counted on CPU tensors
    instead (``Counts.where``), with oneDNN off: ``FlopCounterMode`` has no formula for oneDNN's fused LSTM
    (``mkldnn_rnn_layer``), while PyTorch's own LSTM is made of counted matrix products.
    """
    try:
        return _run_counts(build, dims, seq_lens, "meta")
    except (NotImplementedError, RuntimeError, ValueError):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # oneDNN's TF32 notice when toggling its flags
            with torch.backends.mkldnn.flags(enabled=False):
                return _run_counts(build, dims, seq_lens, "cpu")


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


def live_bytes(tensors: Iterable[Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (views of one storage counted once)."""
    seen: dict[tuple, int] = {}
    for t in tensors:
        if isinstance(t, Tensor):
            key = _storage_key(t)
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


STATUSES = ("ok", "over_budget", "oom", "error")


def measure_cell(
    name: str, dims: list[int], seq_lens: list[int], batch_size: int, hparams: dict, device: torch.device,
    repeats: int = 5, warmup: int = 2, budget: Budget | None = None, seed: int = 0,
) -> dict:
    """Count and measure fusion ``name`` built with ``hparams`` for modalities of sizes ``dims`` and lengths
    ``seq_lens`` at ``batch_size``. Never raises for a failing cell: returns a dict with ``status``
    (``STATUSES``), ``note`` (why, when not ok), the counts (always, from ``meta``) and the measurements
    (NaN unless ok): ``fwd_ms``, ``fwd_iqr_ms``, ``train_ms``, ``train_iqr_ms``, ``fwd_samples_per_s``,
    ``train_samples_per_s``, ``fwd_peak_mib``, ``train_peak_mib``; plus ``est_train_mib``, ``est_seconds``.
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


def mib(nbytes: float) -> float:
    """Bytes -> MiB."""
    return nbytes / MIB

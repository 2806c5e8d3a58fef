"""Cost measures, one registration each: a column of the scaling sweep with its unit, direction, documentation and
how it is measured.

A :class:`Measure` is one column of ``scaling.csv``; :func:`register_measure` adds one. Everything else reads the
registry (:func:`list_measures`): ``benchmarks.cost.measure_cell`` measures every registered measure on every cell,
``benchmarks.scaling`` writes them as columns, documents them in the README beside the results and records them
(name, unit, label, direction, documentation, method, whether fitted) in the ``measures`` entry of
``scaling_meta.json``; ``analysis.cost_curves`` reads that entry to fit ``cost ~ n^k``, draw and tabulate the
measures registered with ``fit=True`` (analysis never imports this module). A :class:`Method` documents how a family
of measures is taken, once; its text is the conventions paragraph of the README and of ``benchmarks.cost``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .memory import mib

if TYPE_CHECKING:
    from .harness import Cell

DIRECTIONS = ("lower", "higher")
"""Which way a measure is better: ``"lower"`` (a cost) or ``"higher"`` (a throughput)."""


@dataclass(frozen=True)
class Method:
    """How a family of measures is taken. ``name``: e.g. ``"count"``; ``measured``: False for counts taken on
    the ``meta`` device (valid for every cell that builds, also one over budget), True for what runs the cell
    (NaN unless its ``status`` is ``ok``); ``doc``: the conventions, a Markdown paragraph."""

    name: str
    measured: bool
    doc: str


@dataclass(frozen=True)
class Measure:
    """One cost measure: a column of ``scaling.csv``.

    ``name``: the column. ``unit``: of its values (e.g. ``"ms / batch"``). ``label``: what it is in a few words
    (``"forward latency"``), for axis labels and table headers. ``direction``: ``"lower"`` or ``"higher"`` is
    better. ``doc``: its meaning in one line (the README's table of columns). ``method``: how it is taken.
    ``value(cell) -> float``: takes it on one cell (``benchmarks.cost.Cell``: ``counts``, ``batch_size``,
    ``latency(step)``, ``peak_bytes(step)``); a counted measure reads ``cell.counts`` only. ``fit``: fitted as
    ``cost ~ n^k``, drawn against ``n`` and a column of the LaTeX cost table, headed ``short``, its values
    divided by ``scale`` and shown with ``digits`` decimals. ``follows``: for a latency, the FLOP measure it
    would grow with if time were proportional to work (the latency findings), else ``""``.
    """

    name: str
    unit: str
    label: str
    direction: str
    doc: str
    method: Method
    value: Callable[[Cell], float]
    fit: bool = False
    short: str = ""
    scale: float = 1.0
    digits: int = 1
    follows: str = ""

    def record(self) -> dict:
        """The measure as ``scaling_meta.json`` records it (what ``analysis.cost_curves.RecordedMeasure`` reads):
        every field but ``value``, with ``method`` as its name and ``measured``."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("value", "method")}
        return {**fields, "method": self.method.name, "measured": self.method.measured}


MEASURES: dict[str, Measure] = {}
"""The registered measures by name, in registration order (the order of the columns)."""


def register_measure(measure: Measure) -> Measure:
    """Add ``measure`` to the registry and return it.

    Raises ``ValueError`` when its name is taken by another measure or is not a plain column name (letters,
    digits, ``_``), its direction is not one of ``DIRECTIONS``, or ``follows`` names no registered measure.
    """
    where = f"cost measure {measure.name!r}"
    if measure.name in MEASURES and MEASURES[measure.name] != measure:
        raise ValueError(f"{where} is already registered ({MEASURES[measure.name].doc})")
    if not measure.name.replace("_", "").isalnum():
        raise ValueError(f"{where}: a column name needs letters, digits and '_' only")
    if measure.direction not in DIRECTIONS:
        raise ValueError(f"{where}: direction must be one of {', '.join(DIRECTIONS)}, got {measure.direction!r}")
    if measure.follows and measure.follows not in MEASURES:
        raise ValueError(f"{where}: follows {measure.follows!r}, which is not a registered measure")
    MEASURES[measure.name] = measure
    return measure


def list_measures() -> list[Measure]:
    """The registered measures, in registration order."""
    return list(MEASURES.values())


def methods() -> list[Method]:
    """The methods of the registered measures, in the order they are first used."""
    return list({m.method.name: m.method for m in list_measures()}.values())


def conventions() -> str:
    """How every measure is taken: each method's paragraph (Markdown), then which measures it gives."""
    paragraphs = []
    for method in methods():
        names = ", ".join(f"`{m.name}`" for m in list_measures() if m.method == method)
        paragraphs.append(f"{method.doc} Columns: {names}.")
    return "\n\n".join(paragraphs)


# --------------------------------------------------------------------------------------------- the measures

COUNT = Method("count", measured=False, doc=(
    "**Parameters and FLOPs** are counted on the `meta` device (shapes only, no memory) for every cell that "
    "builds, also one over budget. Parameters are the fusion's (shared tensors once; no task head, late fusion "
    "owns its heads). FLOPs are matrix-product FLOPs per sample, one multiply-add = 2 FLOPs, counted by "
    "`torch.utils.flop_counter.FlopCounterMode` (`mm`, `addmm`, `bmm`, `baddbmm`, convolutions and attention) "
    "on a batch of 2 and divided by 2. Elementwise work (softmax, layer norm, activations, dropout, residual "
    "adds, bias adds, pooling sums, optimiser updates) is *not* counted. The module runs in train mode, autograd "
    "on, under the math attention backend, so that no fused kernel hides its work from the counter (on CPU "
    "`FlopCounterMode` counts 0 for the fused attention kernel, and `nn.MultiheadAttention`'s eval fast path "
    "counts 0 as well). A fusion that cannot run on `meta` (it reads tensor values) is counted on CPU tensors "
    "with oneDNN off (`counted_on`). `flops` is one forward pass, `train_flops` a forward plus a backward pass "
    "(about 3x: the backward of a product costs two products)."
))

LATENCY = Method("latency", measured=True, doc=(
    "**Latency** is wall-clock time per batch after `warmup` untimed iterations: the median and interquartile "
    "range over `repeats` timed iterations, each timed on its own (a `torch.utils.benchmark.Measurement`). CPU: "
    "`time.perf_counter`. CUDA: CUDA events around each iteration and a synchronisation before reading them. A "
    "forward pass runs in eval mode under `torch.no_grad`; a training step (`benchmarks.cost.Harness.train_step`) "
    "is `zero_grad`, forward (train mode), the loss `mean(output^2)`, backward and an Adam step (lr 1e-4). "
    "**Throughput** is `batch_size / median latency` (samples per second), from the same timings."
))

MEMORY = Method("peak memory", measured=True, doc=(
    "**Peak memory** is the largest number of bytes held by tensors during one forward pass or one training "
    "step, in a separate, untimed iteration, including what was already allocated when it started (parameters, "
    "gradients, optimiser state, inputs). CUDA: `torch.cuda.max_memory_allocated` after "
    "`reset_peak_memory_stats`. CPU: the same quantity from the allocation events of PyTorch's CPU allocator, "
    "recorded by `torch.profiler` with `profile_memory=True`: the starting bytes are summed from the known live "
    "tensors and every allocation and free is replayed in order. It counts tensor storage only (as CUDA's number "
    "does): not the Python interpreter, the allocator's own caching or fragmentation, or oneDNN/MKL scratch space "
    "(`tracemalloc` sees none of torch's memory, and `ru_maxrss` is a process-lifetime high-water mark that "
    "includes all of that and never goes down, so neither is used)."
))

register_measure(Measure(
    "params", "parameters", "parameters", "lower",
    "parameters of the fusion (no task head; late fusion owns its heads)",
    COUNT, lambda cell: cell.counts.params, fit=True, short="Params (M)", scale=1e6, digits=3,
))
register_measure(Measure(
    "flops", "FLOPs / sample", "forward FLOPs", "lower",
    "forward FLOPs per sample: matrix products only, one multiply-add = 2 FLOPs",
    COUNT, lambda cell: cell.counts.flops, fit=True, short="MFLOPs fwd", scale=1e6,
))
register_measure(Measure(
    "train_flops", "FLOPs / sample", "training-step FLOPs", "lower",
    "forward + backward FLOPs per sample of a training step (same convention; optimiser not counted)",
    COUNT, lambda cell: cell.counts.train_flops, fit=True, short="MFLOPs train", scale=1e6,
))
register_measure(Measure(
    "fwd_ms", "ms / batch", "forward latency", "lower",
    "forward latency per batch, eval mode, no_grad: median over --repeats",
    LATENCY, lambda cell: 1000 * cell.latency("forward").median, fit=True, short="Fwd ms", follows="flops",
))
register_measure(Measure(
    "fwd_iqr_ms", "ms / batch", "forward latency IQR", "lower",
    "interquartile range of the forward latency",
    LATENCY, lambda cell: 1000 * cell.latency("forward").iqr,
))
register_measure(Measure(
    "train_ms", "ms / batch", "training-step latency", "lower",
    "training-step latency per batch (zero_grad, forward, mean-square loss, backward, Adam step): median",
    LATENCY, lambda cell: 1000 * cell.latency("train_step").median, fit=True, short="Train ms",
    follows="train_flops",
))
register_measure(Measure(
    "train_iqr_ms", "ms / batch", "training-step latency IQR", "lower",
    "interquartile range of the training-step latency",
    LATENCY, lambda cell: 1000 * cell.latency("train_step").iqr,
))
register_measure(Measure(
    "fwd_samples_per_s", "samples / s", "forward throughput", "higher",
    "forward throughput: batch_size / fwd_ms",
    LATENCY, lambda cell: cell.batch_size / cell.latency("forward").median,
))
register_measure(Measure(
    "train_samples_per_s", "samples / s", "training throughput", "higher",
    "training throughput: batch_size / train_ms",
    LATENCY, lambda cell: cell.batch_size / cell.latency("train_step").median,
))
register_measure(Measure(
    "fwd_peak_mib", "MiB", "forward peak memory", "lower",
    "peak tensor memory of one forward pass, including parameters and inputs",
    MEMORY, lambda cell: mib(cell.peak_bytes("forward")),
))
register_measure(Measure(
    "train_peak_mib", "MiB", "training-step peak memory", "lower",
    "peak tensor memory of one training step, including parameters, gradients, Adam state and inputs",
    MEMORY, lambda cell: mib(cell.peak_bytes("train_step")), fit=True, short="Peak MiB",
))

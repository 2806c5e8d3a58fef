"""The cost of one fusion on one input shape: its registered measures (parameters, FLOPs, latency, throughput, peak
memory), each one registration in ``measures``.

Modules: ``measures`` (the registry: each measure's column, unit, direction, documentation and how it is taken),
``counts`` (parameters, FLOPs and saved activations, counted on ``meta``), ``timing`` (latency, as a
``torch.utils.benchmark.Measurement``), ``memory`` (peak tensor bytes), ``harness`` (the measured forward pass and
training step, and one cell measured within a budget).

How each measure is taken (from the registry; also written beside every result by ``benchmarks.scaling``):

"""

from .counts import COUNT_BATCH, Counts, count_costs, count_params, make_inputs, training_loss
from .harness import Budget, Cell, Harness, build_on, measure_cell
from .measures import COUNT, DIRECTIONS, LATENCY, MEMORY, Measure, Method, conventions, list_measures, register_measure
from .memory import MIB, cpu_allocations, is_out_of_memory, live_bytes, mib, peak_memory_bytes
from .timing import summarize, synchronize, time_calls

__doc__ += conventions()

__all__ = [
    "COUNT", "COUNT_BATCH", "DIRECTIONS", "LATENCY", "MEMORY", "MIB", "Budget", "Cell", "Counts", "Harness",
    "Measure", "Method",
    "build_on", "conventions", "count_costs", "count_params", "cpu_allocations", "is_out_of_memory",
    "list_measures", "live_bytes", "make_inputs", "measure_cell", "mib", "peak_memory_bytes", "register_measure",
    "summarize", "synchronize", "time_calls", "training_loss",
]

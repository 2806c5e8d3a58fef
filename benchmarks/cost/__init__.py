"""The cost of one fusion on one input shape: parameters, FLOPs, latency, throughput and peak memory.

Modules: ``counts`` (parameters, FLOPs and saved activations, counted on ``meta``), ``timing`` (latency),
``memory`` (peak tensor bytes), ``harness`` (one measured cell: forward pass and training step within a budget).

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

from .counts import COUNT_BATCH, Counts, count_costs, count_params, make_inputs, training_loss
from .harness import MEASURED_COLUMNS, Budget, Harness, build_on, measure_cell
from .memory import MIB, is_out_of_memory, live_bytes, mib, peak_memory_bytes
from .timing import Summary, synchronize, time_iterations

__all__ = [
    "COUNT_BATCH", "MEASURED_COLUMNS", "MIB", "Budget", "Counts", "Harness", "Summary", "build_on", "count_costs",
    "count_params", "is_out_of_memory", "live_bytes", "make_inputs", "measure_cell", "mib", "peak_memory_bytes",
    "synchronize", "time_iterations", "training_loss",
]

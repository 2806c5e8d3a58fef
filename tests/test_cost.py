"""Cost measurement: counted FLOPs against each fusion's analytic formula, memory and timing paths, failures,
and the fast dropout / attention kernels the fusions use on CPU."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import fusions
from benchmarks import cost
from fusions.layers import attend_math, attention_mask, dropout, keep_mask
from tests.conftest import tiny_hparams

CPU = torch.device("cpu")
MEASURED = [m.name for m in cost.list_measures() if m.method.measured]


def _builder(name: str, dims: list[int], **overrides):
    hparams = tiny_hparams(name, dropout=0.1, **overrides)
    return lambda: fusions.build_fusion(name, dims, **hparams)


@pytest.mark.parametrize("lengths", [[6, 6], [5, 7, 4], [4, 6, 3, 5, 2]])
def test_counted_flops_match_analytic_formula(fusion_name, lengths):
    """Every registered fusion (new ones included) declares ``analytic_flops``, and the FLOP counter agrees
    with it within 2% for modalities of different sizes and lengths."""
    dims = [7, 3, 5, 4, 9][: len(lengths)]
    build = _builder(fusion_name, dims)
    counts = cost.count_costs(build, dims, lengths)
    with torch.device("meta"):
        fusion = build()
    try:
        analytic = fusion.analytic_flops(lengths)
    except NotImplementedError:
        pytest.fail(f"fusion {fusion_name!r} has no analytic_flops formula (issue 5: every fusion needs one)")
    assert counts.flops > 0
    assert abs(counts.flops - analytic) <= 0.02 * analytic, (fusion_name, counts.flops, analytic)
    assert 1.5 * counts.flops < counts.train_flops <= 3.05 * counts.flops  # backward ~ 2x forward
    assert counts.params == sum(p.numel() for p in fusion.parameters())


def test_pairwise_concat_memory_formula():
    dims, lengths = [4, 3, 5, 6], [5, 4, 6, 3]
    build = _builder("pairwise", dims, memory="concat")
    with torch.device("meta"):
        analytic = build().analytic_flops(lengths)
    assert cost.count_costs(build, dims, lengths).flops == analytic


def test_meta_counts_equal_cpu_counts_on_the_fast_cpu_path():
    """The CPU training path (manual attention with fast dropout) does the same matrix products as the math
    backend on ``meta``: counting on real CPU tensors gives the same numbers."""
    dims, lengths = [5, 3, 4], [6, 4, 5]
    build = _builder("grf", dims)
    torch.manual_seed(0)
    on_cpu = cost.counts._run_counts(build, dims, lengths, "cpu")
    assert on_cpu.train_flops == cost.count_costs(build, dims, lengths).train_flops


def test_flop_counter_needs_the_math_backend_on_cpu():
    """Why counting uses the math backend: the fused CPU attention kernel is invisible to the counter."""
    q = torch.randn(1, 2, 8, 4)
    with FlopCounterMode(display=False) as fused:
        F.scaled_dot_product_attention(q, q, q)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as math_path:
        F.scaled_dot_product_attention(q, q, q)
    assert fused.get_total_flops() == 0
    assert math_path.get_total_flops() == 2 * (2 * 2 * 8 * 8 * 4)


def test_peak_memory_on_cpu_counts_live_and_transient_tensors():
    live = [torch.zeros(2**18)]  # 1 MiB already held

    def step():
        a = torch.ones(2**19)  # 2 MiB
        b = torch.ones(2**20)  # 4 MiB while a is alive: 6 MiB transient peak
        del a, b
        torch.ones(2**18)  # 1 MiB, after the peak

    peak = cost.peak_memory_bytes(step, CPU, live)
    assert 7 * cost.MIB <= peak < 7.1 * cost.MIB


def test_harness_measures_a_training_step():
    dims, lengths = [5, 3], [4, 6]
    xs, masks = cost.make_inputs(dims, lengths, 3, CPU)
    fusion = cost.build_on("grf", dims, tiny_hparams("grf"), CPU)
    harness = cost.Harness(fusion, xs, masks, CPU)
    timing = harness.time(harness.train_step, warmup=1, repeats=3)
    assert len(timing.times) == 3 and timing.median > 0 and timing.iqr >= 0
    params = sum(p.numel() for p in fusion.parameters()) * 4
    peak = harness.peak_bytes(harness.train_step)
    assert peak > 4 * params  # parameters, gradients and Adam's two moments are all held at the peak


def test_measure_cell_ok_row_has_every_measurement():
    row = cost.measure_cell("concat", [4, 3], [5, 5], 2, tiny_hparams("concat"), CPU, repeats=2, warmup=1)
    assert row["status"] == "ok" and row["note"] == ""
    for column in MEASURED:
        assert math.isfinite(row[column]) and row[column] > 0, column


def test_over_budget_cells_are_counted_not_measured():
    hparams = tiny_hparams("grf")
    slow = cost.measure_cell("grf", [4, 3], [5, 5], 2, hparams, CPU, budget=cost.Budget(seconds=1e-9))
    big = cost.measure_cell("grf", [4, 3], [5, 5], 2, hparams, CPU, budget=cost.Budget(memory_bytes=10))
    for row in (slow, big):
        assert row["status"] == "over_budget" and "budget" in row["note"]
        assert row["flops"] > 0 and row["params"] > 0
        assert all(math.isnan(row[column]) for column in MEASURED)


def test_forced_out_of_memory_is_recorded(monkeypatch):
    def fail(self):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 99999999999 bytes")

    monkeypatch.setattr(cost.Harness, "train_step", fail)
    row = cost.measure_cell("late", [4, 3], [5, 5], 2, tiny_hparams("late"), CPU, repeats=1, warmup=1)
    assert row["status"] == "oom" and "can't allocate memory" in row["note"]
    assert row["flops"] > 0 and math.isnan(row["train_ms"])


def test_out_of_memory_recognition():
    assert cost.is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert cost.is_out_of_memory(MemoryError())
    assert not cost.is_out_of_memory(RuntimeError("shape mismatch"))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_timing_and_memory_path():
    device = torch.device("cuda")
    a = torch.randn(512, 512, device=device)
    timing = cost.time_calls(lambda: a @ a, 3, device, warmup=1)
    assert len(timing.times) == 3 and all(t > 0 for t in timing.times)
    peak = cost.peak_memory_bytes(lambda: torch.empty(2**20, device=device), device)
    assert peak >= 4 * 2**20
    row = cost.measure_cell("grf", [4, 3], [5, 5], 2, tiny_hparams("grf"), device, repeats=2, warmup=1)
    assert row["status"] == "ok" and row["train_peak_mib"] > 0


# The fast CPU kernels of fusions.layers (used by every fusion; they must compute what PyTorch computes).


def test_fast_dropout_statistics_and_gradient():
    torch.manual_seed(0)
    x = torch.ones(400_000, requires_grad=True)
    y = dropout(x, 0.2)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.2) < 0.004
    kept = y[y != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - round(0.2 * 65536) / 65536)))
    assert abs(y.mean().item() - 1.0) < 0.01  # inverted dropout keeps the expectation
    y.sum().backward()
    torch.testing.assert_close(x.grad, y.detach())  # gradient = mask * scale
    assert dropout(x, 0.2, training=False) is x and dropout(x, 0.0) is x


def test_fast_dropout_is_seeded():
    x = torch.randn(3, 50, 7)
    torch.manual_seed(5)
    first = dropout(x, 0.3)
    torch.manual_seed(5)
    assert torch.equal(first, dropout(x, 0.3))
    assert not torch.equal(first, dropout(x, 0.3))


@pytest.mark.parametrize("causal", [False, True])
def test_math_attention_equals_sdpa(causal):
    torch.manual_seed(0)
    q, k, v = torch.randn(4, 2, 5, 8), torch.randn(4, 2, 7, 8), torch.randn(4, 2, 7, 8)
    key_mask = torch.arange(7) < torch.tensor([7, 3, 1, 5]).unsqueeze(1)
    mask = attention_mask(key_mask.unsqueeze(0), 5, causal)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(attend_math(q, k, v, mask, 0.0), expected, atol=1e-6, rtol=1e-5)


def test_math_attention_dropout_uses_the_dropout_mask():
    """With dropout, the math path is softmax, the seeded keep mask, and the 1/(1-p) scale (folded into v)."""
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 2, 4, 8), torch.randn(2, 2, 6, 8), torch.randn(2, 2, 6, 8)
    mask = attention_mask((torch.arange(6) < torch.tensor([[6], [2]])).unsqueeze(0), 4, False)
    torch.manual_seed(3)
    got = attend_math(q, k, v, mask, 0.25)
    weights = F.scaled_dot_product_attention(q, k, torch.eye(6).expand(2, 2, 6, 6), attn_mask=mask)
    torch.manual_seed(3)
    keep, scale = keep_mask(weights, 0.25)
    torch.testing.assert_close(got, (weights * keep * scale) @ v, atol=1e-5, rtol=1e-5)
    assert (keep == 0).any() and scale == pytest.approx(4 / 3, abs=1e-4)


def test_inference_fast_paths_equal_the_autograd_paths(fusion_name):
    """Under no_grad the layers normalise and activate in place; the result is bit-identical."""
    from tests.conftest import random_modalities

    torch.manual_seed(0)
    fusion = fusions.build_fusion(fusion_name, [7, 3, 5], **tiny_hparams(fusion_name)).eval()
    xs, masks = random_modalities([7, 3, 5], [5, 6, 4], batch=3)
    with_grad = fusion(xs, masks)
    with torch.no_grad():
        assert torch.equal(fusion(xs, masks), with_grad)


def test_attention_over_a_single_key_is_its_value():
    from fusions.layers import attend

    q, k, v = torch.randn(3, 2, 5, 4), torch.randn(3, 2, 1, 4), torch.randn(3, 2, 1, 4)
    mask = torch.ones(3, 1, 1, 1, dtype=torch.bool)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(attend(q, k, v, mask, 0.0), expected, atol=0, rtol=0)

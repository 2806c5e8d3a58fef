"""The performance changes compute what the code before them computed: attention masks brought to their additive
form once per group of stacks (``additive_mask``, ``StackedTransformer.run_layers``) instead of a boolean mask
converted in every layer, and ``benchmarks.speed --compile``'s checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from benchmarks import speed
from benchmarks.cli import UsageError, run_cli
from fusions.layers import StackedTransformer, additive_mask, attend, attention_mask
from fusions.mult import CausalStacks, real_length_causal_mask


def _padding(lengths: list[int], steps: int) -> torch.Tensor:
    """``[1, len(lengths), steps]`` key masks, real steps first."""
    return (torch.arange(steps) < torch.tensor(lengths).unsqueeze(1)).unsqueeze(0)


def _old_run_group(stacks: StackedTransformer, x, source, self_mask, cross_mask):
    """The loop before the change: the boolean masks handed to every layer as they are."""
    for layer in stacks.layers:
        x = layer(x, source, self_mask, cross_mask, None)
    return x if stacks.final_norm is None else stacks.final_norm(x, None)


def test_additive_mask_is_sdpas_own_conversion_and_none_when_everything_is_allowed():
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 2, 5, 4) for _ in range(3))
    padded = attention_mask(_padding([5, 2, 4], 5), 5, causal=False)
    causal = attention_mask(_padding([5, 3, 1], 5), 5, causal=True)
    for mask in (padded, causal):
        additive = additive_mask(mask, torch.float32)
        assert additive.dtype == torch.float32 and additive.shape == mask.shape
        assert torch.equal(additive == 0, mask) and bool(torch.isneginf(additive[~mask]).all())
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        assert torch.equal(attend(q, k, v, additive, 0.0), expected)
        assert torch.equal(attend(q, k, v, mask, 0.0), expected)  # a boolean mask is still taken
    everything = attention_mask(_padding([5, 5, 5], 5), 5, causal=False)
    assert additive_mask(everything, torch.float32) is None
    assert additive_mask(None, torch.float32) is None
    assert additive_mask(torch.zeros(2, 3), torch.bfloat16).dtype == torch.bfloat16  # autocast's narrower queries


@pytest.mark.parametrize("kind", ["encoder", "decoder", "cross"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_masks_converted_once_equal_the_boolean_masks_in_every_layer(kind, causal, training):
    torch.manual_seed(1)
    stacks = StackedTransformer(1, 2, 8, 2, 16, 0.2, kind=kind, norm_first=kind == "cross", final_norm=True,
                                causal=causal, attn_dropout=0.3)
    stacks.train(training)
    x, source = torch.randn(1, 3, 5, 8), torch.randn(1, 3, 6, 8)
    x_mask, source_mask = _padding([5, 2, 4], 5), _padding([6, 1, 3], 6)
    self_mask = None if kind == "cross" else attention_mask(x_mask, 5, causal)
    cross_mask = None if kind == "encoder" else attention_mask(source_mask, 5, causal)
    source = None if kind == "encoder" else source
    torch.manual_seed(2)  # the same dropout draws for both
    got = stacks.run_group(x, x_mask, source, None if source is None else source_mask, None)
    torch.manual_seed(2)
    expected = _old_run_group(stacks, x, source, self_mask, cross_mask)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("kind", ["encoder", "cross"])
def test_mults_real_length_causal_stacks_equal_their_old_loop(kind):
    torch.manual_seed(3)
    stacks = CausalStacks(1, 2, 8, 2, 16, 0.1, kind=kind, norm_first=True, final_norm=True, causal=True,
                          activation="relu", attn_dropout=0.2, norm_source=kind == "cross")
    x, source = torch.randn(1, 3, 5, 8), torch.randn(1, 3, 6, 8)
    x_mask, source_mask = _padding([5, 2, 4], 5), _padding([6, 1, 3], 6)
    if kind == "encoder":
        masks, source, source_mask = (real_length_causal_mask(x_mask, x_mask), None), None, None
    else:
        masks = (None, real_length_causal_mask(x_mask, source_mask))
    for training in (False, True):
        stacks.train(training)
        torch.manual_seed(4)
        got = stacks.run_group(x, x_mask, source, source_mask, None)
        torch.manual_seed(4)
        assert torch.equal(got, _old_run_group(stacks, x, source, *masks))


def test_compile_needs_a_warmup_step(tmp_path):
    with pytest.raises(UsageError, match="--compile needs --warmup >= 1"):
        speed.measure_speed("concat", dict(d_model=8), batch_size=2, seq_len=3, repeats=1, warmup=0, compile=True)
    args = ["--fusions", "concat", "--compile", "--warmup", "0", "--out", str(tmp_path)]
    assert run_cli(speed.main, args) == 2
    assert not (tmp_path / "speed.csv").exists()

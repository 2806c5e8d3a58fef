"""Fusion-specific checks that tie the implementations to their papers."""

from __future__ import annotations

import math

import pytest
import torch

import fusions
from fusions.grf import GatedFusionUnit
from tests.conftest import random_modalities, tiny_hparams

GRF_PAPER = dict(d_model=64, dim_feedforward=256, num_heads=4, num_layers=4, dropout=0.2)


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_grf_paper_parameter_count():
    """The paper's MOSI model: projections, 2 steps x 2 stacks x 4 decoder layers, 2 GFUs, head + aux head."""
    predictor = fusions.build_predictor("grf", [300, 5, 20], task="regression", **GRF_PAPER)
    assert n_params(predictor) == 1_126_530
    no_aux = fusions.build_predictor("grf", [300, 5, 20], aux_weight=0.0, **GRF_PAPER)
    assert no_aux.aux_head is None and n_params(no_aux) == 1_126_530 - (64 * 32 + 32 + 33)


def test_gated_fusion_unit_against_hand_computation():
    gfu = GatedFusionUnit(2, dropout=0.0).eval()
    with torch.no_grad():
        gfu.gates.weight.copy_(torch.tensor([
            [0.5, 0.0, 0.0, 0.0],   # z_0 = sigmoid(0.5 h_0)
            [0.0, 0.0, 1.0, 0.0],   # z_1 = sigmoid(m_0)
            [0.0, 0.0, 0.0, 1.0],   # c_0 = tanh(m_1)
            [1.0, 1.0, 0.0, 0.0],   # c_1 = tanh(h_0 + h_1)
        ]))
        gfu.gates.bias.copy_(torch.tensor([0.0, -1.0, 0.0, 0.5]))
    h, m = torch.tensor([[1.0, -2.0]]), torch.tensor([[3.0, 0.5]])
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    z = [sig(0.5), sig(3.0 - 1.0)]
    c = [math.tanh(0.5), math.tanh(1.0 - 2.0 + 0.5)]
    mixed = [(1 - z[0]) * 1.0 + z[0] * c[0], (1 - z[1]) * -2.0 + z[1] * c[1]]
    mean = sum(mixed) / 2
    std = math.sqrt(sum((v - mean) ** 2 for v in mixed) / 2 + 1e-5)
    expected = torch.tensor([[(v - mean) / std for v in mixed]])
    torch.testing.assert_close(gfu(h, m), expected, atol=1e-6, rtol=1e-6)


def test_grf_decoders_are_symmetric():
    """Stack A: context as target, modality as memory; stack B: the reverse; both shape the state."""
    torch.manual_seed(0)
    fusion = fusions.build_fusion("grf", [4, 3, 5], **tiny_hparams("grf")).eval()
    xs, masks = random_modalities([4, 3, 5], [5, 6, 4], batch=2)
    seen = []
    fusion.steps[0].register_forward_hook(lambda module, args, out: seen.append((args, out)))
    fusion(xs, masks)
    (targets, target_masks, sources, source_masks), outputs = seen[0]
    context, modality = fusion.embed(xs[0], 0), fusion.embed(xs[1], 1)
    torch.testing.assert_close(targets[0], context)
    torch.testing.assert_close(sources[0], modality)
    torch.testing.assert_close(targets[1], modality)
    torch.testing.assert_close(sources[1], context)
    # Both sides reach the state: the gradient of the output with respect to each stack's output is non-zero.
    # (A random projection of the output, not its sum: the sum of a freshly initialised LayerNorm's output is
    # identically 0, so its gradient would be 0 up to float noise.)
    seen.clear()
    fused = fusion(xs, masks)
    weights = torch.randn(fused.shape, generator=torch.Generator().manual_seed(1))
    side_a, side_b = torch.autograd.grad((fused * weights).sum(), list(seen[0][1]))
    assert side_a.abs().sum() > 0 and side_b.abs().sum() > 0


def test_grf_context_is_a_single_token_after_step_one():
    torch.manual_seed(0)
    fusion = fusions.build_fusion("grf", [4, 3, 5, 2], **tiny_hparams("grf")).eval()
    xs, masks = random_modalities([4, 3, 5, 2], [5, 6, 4, 3], batch=2)
    seen = []
    for step in fusion.steps:
        step.register_forward_hook(lambda module, args, out: seen.append(args))
    result = fusion.forward_with_states(xs, masks)
    assert len(seen) == 3 and len(result.states) == 3
    assert seen[0][0][0].shape[1] == 5  # step 1: the first modality's sequence
    assert all(args[0][0].shape[1] == 1 for args in seen[1:])  # later: the single state token
    torch.testing.assert_close(result.fused, result.states[-1])


def test_grf_order_changes_which_modality_seeds_the_context():
    torch.manual_seed(0)
    fusion = fusions.build_fusion("grf", [4, 3, 5], order=[0, 2, 1], **tiny_hparams("grf")).eval()
    xs, masks = random_modalities([4, 3, 5], [5, 6, 4], batch=2)
    seen = []
    fusion.steps[0].register_forward_hook(lambda module, args, out: seen.append(args))
    fusion(xs, masks)
    torch.testing.assert_close(seen[0][2][0], fusion.embed(xs[2], 2))  # step 1 fuses modality 2


@pytest.mark.parametrize("n", [2, 3, 4, 6])
def test_pairwise_builds_every_ordered_pair(n):
    fusion = fusions.build_fusion("pairwise", [3] * n, **tiny_hparams("pairwise"))
    assert fusion.cross.stacks == n * (n - 1)
    assert sorted(fusion.pairs) == [(i, j) for i in range(n) for j in range(n) if i != j]
    assert fusion.memory.stacks == n


def test_pairwise_is_mult_structure_at_three_modalities():
    """With memory="concat" (the paper preset), n = 3 gives MulT's (n - 1) * d_model memory with no projection;
    MulT's defaults give 1,071,211 parameters with a 1-d output layer, i.e. our fusion has 1,071,211 - 181."""
    fusion = fusions.build_fusion("pairwise", [300, 5, 20], memory="concat")
    assert fusion.memory_projection is None and fusion.memory_dim == 60 and fusion.out_dim == 180
    assert len(fusion.memory.layers) == 5 and len(fusion.cross.layers) == 5
    assert n_params(fusion) == 1_071_211 - 181


def test_pairwise_causal_masks_ignore_appended_padding():
    """``causal=True`` offsets MulT's future mask by each sample's real lengths, so padding appended to one
    modality (which would move an offset taken from the padded lengths) changes nothing."""
    torch.manual_seed(0)
    dims = [11, 3, 5]
    fusion = fusions.build_fusion("pairwise", dims, causal=True, **tiny_hparams("pairwise")).eval()
    xs, masks = random_modalities(dims, [5, 5, 7], batch=3)
    padded_x = torch.cat([xs[1], torch.randn(3, 4, 3)], dim=1)
    padded_mask = torch.cat([masks[1], torch.zeros(3, 4, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(fusion([xs[0], padded_x, xs[2]], [masks[0], padded_mask, masks[2]]),
                                   fusion(xs, masks), atol=1e-5, rtol=0)


def test_pairwise_memory_options():
    projected = fusions.build_fusion("pairwise", [3] * 5, **tiny_hparams("pairwise"))
    assert projected.memory_dim == 8 and projected.memory_projection is not None
    assert projected.out_dim == 5 * 8
    concat = fusions.build_fusion("pairwise", [3] * 5, memory="concat", **tiny_hparams("pairwise"))
    assert concat.memory_dim == 4 * 8 and concat.memory_projection is None


def test_late_fusion_weights_are_a_softmax():
    torch.manual_seed(0)
    fusion = fusions.build_fusion("late", [4, 3], num_outputs=2, **tiny_hparams("late")).eval()
    xs, masks = random_modalities([4, 3], [5, 6], batch=3)
    with torch.no_grad():
        fusion.logits.copy_(torch.tensor([50.0, -50.0]))  # all weight on modality 0
        only_first = fusion(xs, masks)
        changed = [xs[0], xs[1] + 1.0]
        torch.testing.assert_close(fusion(changed, masks), only_first)
    mean = fusions.build_fusion("late", [4, 3], combine="mean", **tiny_hparams("late"))
    assert mean.logits is None

"""The shared contract of every registered fusion: shapes, padding invariance, gradients, determinism, errors."""

from __future__ import annotations

import pytest
import torch

import fusions
from tests.conftest import random_modalities, tiny_hparams

DIMS = {2: [7, 3], 3: [11, 3, 5], 5: [6, 4, 9, 3, 5]}
LENGTHS = {2: [6, 4], 3: [5, 5, 7], 5: [4, 6, 3, 5, 2]}


def build(name: str, dims: list[int], seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return fusions.build_fusion(name, dims, **tiny_hparams(name, **overrides))


@pytest.mark.parametrize("n", [2, 3, 5])
def test_output_shape(fusion_name, n):
    fusion = build(fusion_name, DIMS[n]).eval()
    xs, masks = random_modalities(DIMS[n], LENGTHS[n], batch=4)
    out = fusion(xs, masks)
    assert out.shape == (4, fusion.out_dim)
    assert torch.isfinite(out).all()
    states = fusion.forward_with_states(xs, masks).states
    assert states and all(s.shape[0] == 4 for s in states)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_padding_invariance(fusion_name, n):
    # padding="masked" reaches the fusions that take it (mult: its default follows MulT's code, which attends
    # to padding; tests/test_reference_mult.py checks that mode)
    fusion = build(fusion_name, DIMS[n], padding="masked").eval()
    xs, masks = random_modalities(DIMS[n], LENGTHS[n], batch=3)
    with torch.no_grad():
        reference = fusion(xs, masks)
        for i in range(n):
            extra = 4 + i
            padded_x = torch.cat([xs[i], torch.randn(3, extra, DIMS[n][i])], dim=1)  # garbage under the mask
            padded_mask = torch.cat([masks[i], torch.zeros(3, extra, dtype=torch.bool)], dim=1)
            out = fusion(xs[:i] + [padded_x] + xs[i + 1:], masks[:i] + [padded_mask] + masks[i + 1:])
            torch.testing.assert_close(out, reference, atol=1e-5, rtol=0)


def test_padding_changes_nothing_but_real_steps_do(fusion_name):
    """The invariance test is not vacuous: changing a real step changes the output."""
    fusion = build(fusion_name, DIMS[3]).eval()
    xs, masks = random_modalities(DIMS[3], LENGTHS[3], batch=2)
    with torch.no_grad():
        reference = fusion(xs, masks)
        changed = [x.clone() for x in xs]
        changed[1][:, 0] += 1.0
        assert not torch.allclose(fusion(changed, masks), reference, atol=1e-5)


def test_gradients_reach_every_parameter(fusion_name):
    predictor = fusions.build_predictor(fusion_name, DIMS[3], **tiny_hparams(fusion_name))
    predictor.train()
    xs, masks = random_modalities(DIMS[3], LENGTHS[3], batch=4)
    prediction = predictor(xs, masks)
    loss = prediction.output.square().sum()
    if prediction.aux_output is not None:
        loss = loss + prediction.aux_output.square().sum()
    loss.backward()
    missing = [name for name, p in predictor.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing}"


def test_deterministic_under_seed(fusion_name):
    xs, masks = random_modalities(DIMS[3], LENGTHS[3], batch=4)
    outs = []
    for _ in range(2):
        fusion = build(fusion_name, DIMS[3], seed=123, dropout=0.1).train()
        torch.manual_seed(7)
        outs.append(fusion(xs, masks))
    torch.testing.assert_close(outs[0], outs[1], atol=0, rtol=0)
    other = build(fusion_name, DIMS[3], seed=124).train()
    torch.manual_seed(7)
    assert not torch.equal(other(xs, masks), outs[0])


def test_works_for_many_modalities(fusion_name):
    """12 modalities, or as many as the fusion's stated cap allows (one more is refused with a clear error)."""
    limit = fusions.fusion_class(fusion_name).max_modalities(**tiny_hparams(fusion_name))
    n = 12 if limit is None else min(12, limit)
    fusion = build(fusion_name, [3] * n).eval()
    xs, masks = random_modalities([3] * n, [2] * n, batch=2)
    assert fusion(xs, masks).shape == (2, fusion.out_dim)
    if limit is not None:
        assert limit >= 2
        with pytest.raises(ValueError, match="cap"):
            build(fusion_name, [3] * (limit + 1))


BAD_INPUTS = {
    "too few modalities": (lambda xs, ms: (xs[:2], ms[:2]), r"expected 3 modalities"),
    "too many masks": (lambda xs, ms: (xs, ms + ms[:1]), r"expected 3 masks"),
    "wrong feature size": (
        lambda xs, ms: ([xs[0], torch.zeros(2, 5, 4), xs[2]], ms), r"modality 1: expected feature size 3"
    ),
    "mask shape": (
        lambda xs, ms: (xs, [ms[0], ms[1], torch.ones(2, 6, dtype=torch.bool)]), r"mask 2: expected shape \(2, 7\)"
    ),
    "empty batch": (
        lambda xs, ms: ([x[:0] for x in xs], [m[:0] for m in ms]), r"modality 0: empty batch"
    ),
    "not 3-d": (lambda xs, ms: ([xs[0][0], xs[1], xs[2]], ms), r"modality 0: expected a tensor \[batch, time, 11\]"),
    "float mask": (lambda xs, ms: (xs, [ms[0].float(), ms[1], ms[2]]), r"mask 0: expected a bool tensor"),
    "batch mismatch": (lambda xs, ms: ([xs[0], xs[1][:1], xs[2]], ms), r"modality 1: batch size 1 differs"),
    "leading padding": (
        lambda xs, ms: (xs, [ms[0], torch.cat([torch.zeros(2, 1, dtype=torch.bool), ms[1][:, 1:]], 1), ms[2]]),
        r"mask 1: every sample needs at least one real step",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_raises_clear_error(fusion_name, case):
    fusion = build(fusion_name, DIMS[3]).eval()
    xs, masks = random_modalities(DIMS[3], LENGTHS[3], batch=2)
    masks = [torch.ones_like(m) for m in masks]
    make, message = BAD_INPUTS[case]
    bad_xs, bad_masks = make(xs, masks)
    with pytest.raises(ValueError, match=message):
        fusion(bad_xs, bad_masks)


def test_registry_lists_the_paper_fusions():
    assert {"grf", "pairwise", "late", "concat"} <= set(fusions.list_fusions())


def test_unknown_fusion_lists_known():
    with pytest.raises(ValueError, match=r"unknown fusion 'nope'; known fusions: .*grf.*pairwise"):
        fusions.build_fusion("nope", [3, 4])


def test_unknown_hyperparameter_is_named():
    with pytest.raises(ValueError, match=r"fusion 'grf' has no hyperparameter 'depth'; it accepts: .*d_model"):
        fusions.build_fusion("grf", [3, 4], depth=3)


def test_bad_hyperparameter_values():
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        fusions.build_fusion("grf", [3, 4], d_model=10, num_heads=4)
    with pytest.raises(ValueError, match="at least 2 modalities"):
        fusions.build_fusion("concat", [3])
    with pytest.raises(ValueError, match="permutation"):
        fusions.build_fusion("grf", [3, 4, 5], order=[0, 0, 1])


def test_predictor_tasks(fusion_name):
    xs, masks = random_modalities(DIMS[3], LENGTHS[3], batch=4)
    regression = fusions.build_predictor(fusion_name, DIMS[3], **tiny_hparams(fusion_name)).eval()
    assert regression(xs, masks).output.shape == (4, 1)
    classifier = fusions.build_predictor(
        fusion_name, DIMS[3], task="classification", num_classes=5, **tiny_hparams(fusion_name)
    ).eval()
    assert classifier(xs, masks).output.shape == (4, 5)
    with pytest.raises(ValueError, match="num_classes"):
        fusions.build_predictor(fusion_name, DIMS[3], task="classification")
    with pytest.raises(ValueError, match="unknown task"):
        fusions.build_predictor(fusion_name, DIMS[3], task="ranking")

"""``mult`` against MulT's code: its padding modes, the weight mapping of ``benchmarks.reference.mult`` (no
checkout needed) and, with ``FUSIONBENCH_MULT_REPO`` pointing to a checkout of
github.com/yaohungt/Multimodal-Transformer, the eval-mode agreement with MulT's own model."""

from __future__ import annotations

import os
import warnings

import pytest
import torch

import fusions
from benchmarks.config import load_preset, preset_names
from benchmarks.reference import GOAL, REFERENCES
from benchmarks.reference.mult import NAMES, make_batch, map_weights
from fusions.mult import left_pad
from tests.conftest import random_modalities, tiny_hparams

DIMS = [7, 3, 5]


def build(seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return fusions.build_fusion("mult", DIMS, **{**tiny_hparams("mult"), **overrides}).eval()


def pad_steps(x: torch.Tensor, mask: torch.Tensor, extra: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``extra`` more padding steps (garbage under the mask)."""
    return (torch.cat([x, torch.randn(x.shape[0], extra, x.shape[2])], dim=1),
            torch.cat([mask, torch.zeros(mask.shape[0], extra, dtype=torch.bool)], dim=1))


# --- the layout ---------------------------------------------------------------------------------------------------


def test_left_pad_puts_real_steps_last_and_zeros_before():
    x = torch.arange(1.0, 9.0).view(2, 4, 1)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    expected = torch.tensor([[0.0, 0.0, 1.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0, 5.0]]).unsqueeze(-1)
    assert torch.equal(left_pad(x, mask, 5), expected)
    assert torch.equal(left_pad(x, mask, 3), expected[:, 2:])  # shorter than the input, still every real step
    x[0, 3] = float("nan")  # what is under the mask is dropped
    assert torch.equal(left_pad(x, mask, 5), expected)


def test_default_is_the_reference_padding():
    fusion = fusions.build_fusion("mult", [300, 5, 20])
    assert fusion.padding == "reference" and fusion.padded_lengths is None


def test_reference_mode_is_the_masked_mode_on_mults_layout():
    """``"reference"`` on right-padded inputs computes what the model computes on MulT's layout (left-padded,
    every row a step): the masked mode fed the left-padded tensors with all-True masks."""
    xs, masks = random_modalities(DIMS, [5, 6, 7], batch=4, seed=1)
    reference, masked = build(padding="reference"), build(padding="masked")
    lengths = [9, 6, 8]
    layout = [left_pad(x, m, length) for x, m, length in zip(xs, masks, lengths)]
    every_row = [torch.ones(x.shape[:2], dtype=torch.bool) for x in layout]
    with torch.no_grad():
        torch.testing.assert_close(build(padding="reference", padded_lengths=lengths)(xs, masks),
                                   masked(layout, every_row), atol=1e-6, rtol=0)
        stored = [left_pad(x, m, x.shape[1]) for x, m in zip(xs, masks)]  # default: the input's own length
        torch.testing.assert_close(reference(xs, masks), masked(stored, [torch.ones_like(m) for m in masks]),
                                   atol=1e-6, rtol=0)


def test_modes_agree_without_padding_and_differ_with_it():
    xs, masks = random_modalities(DIMS, [5, 6, 7], batch=4, seed=2)
    full = [torch.ones_like(m) for m in masks]
    reference, masked = build(padding="reference"), build(padding="masked")
    with torch.no_grad():
        torch.testing.assert_close(reference(xs, full), masked(xs, full), atol=1e-6, rtol=0)
        moved = (reference(xs, masks) - masked(xs, masks)).abs().amax(dim=1)
    assert moved[0] < 1e-6 and (moved[1:] > 1e-3).all()  # sample 0 has no padding; the others do


def test_reference_mode_depends_on_the_stored_length_unless_it_is_fixed():
    """As in MulT, the padded length is part of the input; ``padded_lengths`` fixes it, and then appended
    padding (the runner's trimming) changes nothing."""
    xs, masks = random_modalities(DIMS, [5, 6, 7], batch=3, seed=3)
    longer = list(xs), list(masks)
    longer[0][1], longer[1][1] = pad_steps(xs[1], masks[1], 4)
    with torch.no_grad():
        free = build()
        assert not torch.allclose(free(*longer), free(xs, masks), atol=1e-4)
        fixed = build(padded_lengths=[8, 10, 9])
        torch.testing.assert_close(fixed(*longer), fixed(xs, masks), atol=1e-6, rtol=0)


@pytest.mark.parametrize("preset", preset_names())
def test_presets_make_mult_independent_of_batch_padding(preset):
    """The runner trims each batch to its longest real sequence, so under a preset ``mult`` must give a sample
    the same output however far its batch is padded (``padding="masked"``, or a fixed ``padded_lengths``)."""
    table = load_preset(preset).get("fusions", {}).get("mult", {})
    hparams = {**table, **{k: v for k, v in tiny_hparams("mult").items() if k not in ("padding", "padded_lengths")}}
    xs, masks = random_modalities(DIMS, [5, 6, 7], batch=3, seed=5)
    longer = list(xs), list(masks)
    longer[0][2], longer[1][2] = pad_steps(xs[2], masks[2], 3)
    fusion = build(**hparams)
    with torch.no_grad():
        torch.testing.assert_close(fusion(*longer), fusion(xs, masks), atol=1e-5, rtol=0)


def test_fixed_stored_length_refuses_longer_samples():
    xs, masks = random_modalities(DIMS, [5, 6, 7], batch=3, seed=4)
    with pytest.raises(ValueError, match=r"modality 1 has a sample with 6 real steps, more than padded_lengths\[1\]=5"):
        build(padded_lengths=[5, 5, 7])(xs, masks)


@pytest.mark.parametrize("hparams, message", [
    (dict(padding="left"), r"padding must be one of 'reference', 'masked', got 'left'"),
    (dict(padding="masked", padded_lengths=50), r"padded_lengths applies to padding='reference' only"),
    (dict(padded_lengths=[50, 50]), r"padded_lengths must be a positive int or one per modality \(3\)"),
    (dict(padded_lengths=0), r"padded_lengths must be a positive int"),
    (dict(padded_lengths=2.5), r"padded_lengths must be a positive int"),
])
def test_bad_padding_options_are_refused(hparams, message):
    with pytest.raises(ValueError, match=message):
        fusions.build_fusion("mult", DIMS, **hparams)


def test_flops_follow_the_stored_length():
    fusion = build(padded_lengths=[9, 9, 9])
    assert fusion.analytic_flops([4, 5, 6]) == build().analytic_flops([9, 9, 9])


# --- the weight mapping (no checkout) -----------------------------------------------------------------------------


def mult_state(dims: list[int], d: int = 30, layers: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with the keys and shapes of MulT's ``MULTModel`` (three modalities, ``hyp_params.layers``
    ``layers``, memory stacks of ``max(layers, 3)``), every tensor distinct random numbers."""
    generator = torch.Generator().manual_seed(seed)
    shapes: dict[str, tuple] = {f"proj_{name}.weight": (d, dim, 1) for name, dim in zip(NAMES, dims)}

    def encoder(prefix: str, width: int, count: int) -> None:
        shapes[f"{prefix}.version"] = (1,)
        shapes[f"{prefix}.embed_positions._float_tensor"] = (1,)
        for layer in range(count):
            at = f"{prefix}.layers.{layer}."
            shapes.update({
                at + "self_attn.in_proj_weight": (3 * width, width), at + "self_attn.in_proj_bias": (3 * width,),
                at + "self_attn.out_proj.weight": (width, width), at + "self_attn.out_proj.bias": (width,),
                at + "fc1.weight": (4 * width, width), at + "fc1.bias": (4 * width,),
                at + "fc2.weight": (width, 4 * width), at + "fc2.bias": (width,),
            })
            for norm in (0, 1):
                shapes[f"{at}layer_norms.{norm}.weight"] = shapes[f"{at}layer_norms.{norm}.bias"] = (width,)
        shapes[f"{prefix}.layer_norm.weight"] = shapes[f"{prefix}.layer_norm.bias"] = (width,)

    for target in NAMES:
        for source in NAMES:
            if source != target:
                encoder(f"trans_{target}_with_{source}", d, layers)
        encoder(f"trans_{target}_mem", 2 * d, max(layers, 3))
    for name in ("proj1", "proj2"):
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (6 * d, 6 * d), (6 * d,)
    shapes["out_layer.weight"], shapes["out_layer.bias"] = (1, 6 * d), (1,)
    return {key: torch.randn(shape, generator=generator) for key, shape in shapes.items()}


def test_map_weights_puts_every_mult_weight_in_its_place():
    predictor = fusions.build_predictor("mult", [300, 5, 20])
    fusion = predictor.fusion
    state = mult_state([300, 5, 20])
    predictor.load_state_dict(map_weights(state, fusion.cross_pairs))  # strict: every key of ours, no other
    d = 30
    torch.testing.assert_close(fusion.projections[1].weight, state["proj_a.weight"][..., 0], atol=0, rtol=0)
    for group, pairs in zip(fusion.cross, fusion.cross_pairs):
        for slot, (target, source) in enumerate(pairs):
            at = f"trans_{NAMES[target]}_with_{NAMES[source]}.layers.3."
            packed, layer = state[at + "self_attn.in_proj_weight"], group.layers[3]
            assert torch.equal(layer.cross_attn.q.weight[slot], packed[:d].T)
            assert torch.equal(layer.cross_attn.kv.weight[slot], packed[d:].T)  # key columns, then value
            assert torch.equal(layer.cross_attn.kv.bias[slot], state[at + "self_attn.in_proj_bias"][d:])
            assert torch.equal(layer.cross_attn.out.weight[slot], state[at + "self_attn.out_proj.weight"].T)
            assert torch.equal(layer.ff_in.weight[slot], state[at + "fc1.weight"].T)
            assert torch.equal(layer.ff_out.bias[slot], state[at + "fc2.bias"])
            assert torch.equal(layer.norm_cross.weight[slot], state[at + "layer_norms.0.weight"])
            assert torch.equal(layer.norm_ff.bias[slot], state[at + "layer_norms.1.bias"])
            final = f"trans_{NAMES[target]}_with_{NAMES[source]}.layer_norm.weight"
            assert torch.equal(group.final_norm.weight[slot], state[final])
    memory = fusion.memory.layers[4]
    assert torch.equal(memory.self_attn.qkv.weight[2], state["trans_v_mem.layers.4.self_attn.in_proj_weight"].T)
    assert torch.equal(memory.norm_self.bias[0], state["trans_l_mem.layers.4.layer_norms.0.bias"])
    assert torch.equal(fusion.proj2.weight, state["proj2.weight"])
    assert torch.equal(predictor.head.weight, state["out_layer.weight"])


def test_map_weights_leaves_out_mults_unused_projection():
    """MulT builds ``proj_x`` even where ``dim == d`` and then skips it; ours has no projection there."""
    predictor = fusions.build_predictor("mult", [30, 5, 20])
    predictor.load_state_dict(map_weights(mult_state([30, 5, 20]), predictor.fusion.cross_pairs))
    assert isinstance(predictor.fusion.projections[0], torch.nn.Identity)


def test_map_weights_refuses_other_layouts():
    pairs = fusions.build_fusion("mult", [300, 5, 20]).cross_pairs
    state = mult_state([300, 5, 20])
    del state["trans_a_with_v.layers.2.fc1.bias"]
    with pytest.raises(ValueError, match=r"no 'trans_a_with_v.layers.2.fc1.bias' \(not MulT's layout\?\)"):
        map_weights(state, pairs)
    extra = {**mult_state([300, 5, 20]), "ctc.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"reference weights left unmapped: ctc.weight"):
        map_weights(extra, pairs)


@pytest.mark.parametrize("source, message", [
    ("class Other:\n    pass\n", r"--mult-repo .*: src/models.py defines no MULTModel; expected a checkout of"),
    ("class MULTModel:\n    pass\n", r"models.py: not MulT's code \(no TransformerEncoder"),
])
def test_a_checkout_without_mults_model_is_refused(tmp_path, source, message):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "models.py").write_text(source)
    with pytest.raises(ValueError, match=message):
        REFERENCES["mult"](tmp_path)


# --- against MulT's code (FUSIONBENCH_MULT_REPO) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def mult_check():
    repo = os.environ.get("FUSIONBENCH_MULT_REPO")
    if not repo:
        pytest.skip("needs FUSIONBENCH_MULT_REPO (a checkout of github.com/yaohungt/Multimodal-Transformer)")
    return REFERENCES["mult"](repo)


@pytest.mark.parametrize("steps", [(50, 50, 50), (12, 30, 20)])  # MulT's aligned MOSI; unaligned lengths
def test_mult_equals_mults_code(mult_check, steps):
    """Eval mode, MulT's weights copied in: MulT on its left-padded layout against ``padding="reference"``,
    and MulT on each sample alone (no padding) against ``padding="masked"`` on the padded batch."""
    reference, ours = mult_check.build(seed=0, device=torch.device("cpu"))
    reference.eval(), ours.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # MulT's make_positions resizes an arange buffer
        for layout in ("own", "padded"):
            batch = make_batch(layout, seed=1, device=torch.device("cpu"), steps=steps, batch_size=6)
            expected = mult_check.reference_output(reference, batch)
            assert (mult_check.our_output(ours, batch) - expected).abs().max() < GOAL, layout
        own = make_batch("own", seed=1, device=torch.device("cpu"), steps=steps, batch_size=6)
        ours.fusion.padding = "masked"  # not MulT on its layout: the check can fail
        assert (ours(own.xs, own.masks).output - mult_check.reference_output(reference, own)).abs().max() > 1e-3

"""GRF's ablation switches: each variant keeps the shared contract and its analytic FLOP count, and does what
its name says."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

import fusions
from benchmarks import cost
from benchmarks.config import resolve
from benchmarks.experiment import RunSpec, build_config
from benchmarks.train import resolve_hparams
from fusions.grf import GatedFusionUnit
from fusions.layers import sinusoidal_table
from tests.conftest import random_modalities, tiny_hparams

SWITCHES = [
    dict(gate=g, attention=a, context=c, share_weights=s)
    for g, a, c, s in itertools.product(["gfu", "gru", "none", "linear"], ["symmetric", "context", "modality"],
                                        ["pooled", "sequence"], [False, True])
] + [  # the carried context bare (the old behaviour), with every attention and context
    dict(gate="gfu", attention=a, context=c, share_weights=False, state_position=False)
    for a, c in itertools.product(["symmetric", "context", "modality"], ["pooled", "sequence"])
]
DIMS, LENGTHS = [5, 3, 4, 6], [6, 4, 5, 3]


def build(seed: int = 0, dims=DIMS, **switches):
    torch.manual_seed(seed)
    return fusions.build_fusion("grf", dims, **tiny_hparams("grf", **switches))


@pytest.mark.parametrize("switches", SWITCHES, ids=lambda s: "-".join(str(v) for v in s.values()))
def test_variant_keeps_the_contract(switches):
    fusion = build(**switches).eval()
    xs, masks = random_modalities(DIMS, LENGTHS, batch=3)
    with torch.no_grad():
        out = fusion.forward_with_states(xs, masks)
        assert out.fused.shape == (3, 8) and len(out.states) == 3
        padded = [torch.cat([x, torch.randn(3, 2, x.shape[-1])], 1) for x in xs]
        padded_masks = [torch.cat([m, torch.zeros(3, 2, dtype=torch.bool)], 1) for m in masks]
        torch.testing.assert_close(fusion(padded, padded_masks), out.fused, atol=1e-5, rtol=0)
    fusion.train()
    fusion(xs, masks).square().sum().backward()
    missing = [n for n, p in fusion.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    if switches["attention"] == "modality" and switches["context"] == "pooled" and not switches["share_weights"]:
        # After step 1 stack B attends to the one-token context: softmax over a single key is 1 whatever the
        # query, so those query projections get no gradient by construction (in full GRF stack A shares them).
        missing = [n for n in missing if not (n.split(".")[1] != "0" and ".cross_attn.q." in n)]
    assert not missing, missing

    def make():
        return fusions.build_fusion("grf", DIMS, **tiny_hparams("grf", **switches))

    with torch.device("meta"):
        analytic = make().analytic_flops(LENGTHS)
    assert cost.count_costs(make, DIMS, LENGTHS).flops == analytic


def test_gru_gate_equals_torch_gru_cell_before_its_norm():
    torch.manual_seed(0)
    unit = GatedFusionUnit(4, dropout=0.0, kind="gru")
    reference = nn.GRUCell(4, 4)
    with torch.no_grad():
        unit.input_gates.weight.copy_(reference.weight_ih)
        unit.input_gates.bias.copy_(reference.bias_ih)
        unit.hidden_gates.weight.copy_(reference.weight_hh)
        unit.hidden_gates.bias.copy_(reference.bias_hh)
    h, m = torch.randn(3, 4), torch.randn(3, 4)
    torch.testing.assert_close(unit.update(h, m), reference(m, h))


def test_simple_gates():
    h, m = torch.tensor([[1.0, 3.0]]), torch.tensor([[3.0, -1.0]])
    assert torch.equal(GatedFusionUnit(2, 0.0, "none").update(h, m), torch.tensor([[2.0, 1.0]]))
    linear = GatedFusionUnit(2, 0.0, "linear")
    torch.testing.assert_close(linear.update(h, m), linear.mix(torch.cat([h, m], -1)))
    with pytest.raises(ValueError, match="gate must be one of gfu, gru, none, linear"):
        GatedFusionUnit(2, 0.0, "lstm")


def test_one_sided_attention_builds_one_stack():
    assert build().steps[0].stacks == 2
    for side in ("context", "modality"):
        assert build(attention=side).steps[0].stacks == 1
    with pytest.raises(ValueError, match="attention must be one of symmetric, context, modality"):
        build(attention="both")
    with pytest.raises(ValueError, match="context must be one of pooled, sequence"):
        build(context="tokens")


def test_context_attention_ignores_how_the_modality_would_attend():
    """With context-only attention, the modality side is its plain masked mean: changing a modality's padding
    never matters, and the modality enters only through stack A and its mean."""
    fusion = build(attention="context").eval()
    seen = []
    fusion.steps[0].register_forward_hook(lambda module, args, out: seen.append(args))
    xs, masks = random_modalities(DIMS, LENGTHS, batch=2)
    fusion(xs, masks)
    targets, _, sources, _ = seen[0]
    assert len(targets) == 1 and targets[0].shape[1] == LENGTHS[0] and sources[0].shape[1] == LENGTHS[1]


def test_sequence_context_carries_the_first_modality_length():
    fusion = build(context="sequence").eval()
    seen = []
    for step in fusion.steps:
        step.register_forward_hook(lambda module, args, out: seen.append(args))
    xs, masks = random_modalities(DIMS, LENGTHS, batch=2)
    fusion(xs, masks)
    assert [args[0][0].shape[1] for args in seen] == [LENGTHS[0]] * 3  # the context stays a sequence


def test_shared_weights_make_parameters_constant_in_n():
    """One block for all steps: beyond the per-modality input projections, parameters do not grow with n."""
    def block_params(n):
        fusion = build(dims=[3] * n, share_weights=True)
        return sum(p.numel() for p in fusion.parameters()) - sum(p.numel() for p in fusion.projections.parameters())

    assert block_params(2) == block_params(5) == block_params(9)
    assert len(build(share_weights=True).steps) == 1 and len(build().steps) == 3


def step_inputs(fusion, xs, masks):
    """What each step's stacks receive (their forward arguments), and the fusion's output."""
    seen = []
    for step in fusion.steps:
        step.register_forward_hook(lambda module, args, out: seen.append(args))
    return seen, fusion.forward_with_states(xs, masks)


def test_carried_state_gets_the_first_position_row():
    """As in the authors' code, the state token h' enters the next step with the position table's first row
    added; ``state_position=False`` carries it bare."""
    xs, masks = random_modalities(DIMS, LENGTHS, batch=2)
    for state_position, offset in ((True, sinusoidal_table(1, 8)[0]), (False, 0.0)):
        seen, out = step_inputs(build(state_position=state_position).eval(), xs, masks)
        for step in (1, 2):
            context = seen[step][0][0]  # stack A's target
            torch.testing.assert_close(context, out.states[step - 1].unsqueeze(1) + offset)


def test_carried_state_is_dropped_out_in_training():
    """In training the positioned state token gets the embedding dropout (p = 0.5: each entry zeroed or
    doubled); carried bare it gets none."""
    xs, masks = random_modalities(DIMS, LENGTHS, batch=4)
    seen, out = step_inputs(build(dropout=0.5).train(), xs, masks)
    context, expected = seen[1][0][0].squeeze(1), out.states[0] + sinusoidal_table(1, 8)[0]
    dropped = context == 0
    assert dropped.any() and not dropped.all()
    torch.testing.assert_close(context[~dropped], 2 * expected[~dropped])
    seen, out = step_inputs(build(dropout=0.5, state_position=False).train(), xs, masks)
    assert torch.equal(seen[1][0][0].squeeze(1), out.states[0])


def test_reference_init_starts_the_layers_of_a_stack_identical():
    """``init="reference"``: every layer of a stack starts as a copy of its first (the authors'
    ``nn.TransformerDecoder`` deep-copies one layer); stacks and steps are drawn apart. The default draws
    every layer on its own."""
    fusion = build(num_layers=3, init="reference")
    for stacks in fusion.steps:
        first = stacks.layers[0].state_dict()
        for layer in stacks.layers[1:]:
            assert all(torch.equal(value, first[key]) for key, value in layer.state_dict().items())
            assert layer.ff_in.weight.data_ptr() != stacks.layers[0].ff_in.weight.data_ptr()  # copies, not shared
    weight = fusion.steps[0].layers[0].ff_in.weight
    assert not torch.equal(weight[0], weight[1]) and not torch.equal(weight, fusion.steps[1].layers[0].ff_in.weight)
    independent = build(num_layers=3).steps[0].layers
    assert not torch.equal(independent[0].ff_in.weight, independent[1].ff_in.weight)


def test_paper_preset_initialises_as_the_authors_with_the_paper_parameter_count():
    assert fusions.fusion_hparams("grf")["init"] == "independent"
    assert fusions.fusion_hparams("grf")["state_position"] is True
    mosi = {"name": "mosi", "path": None, "options": {}}
    quick = resolve(build_config(RunSpec(fusions=["grf"], preset="quick")), "grf", mosi).hparams
    assert "init" not in quick
    paper = resolve(build_config(RunSpec(fusions=["grf"], preset="paper")), "grf", mosi).hparams
    assert paper["init"] == "reference"
    torch.manual_seed(0)
    predictor = fusions.build_predictor("grf", [300, 20, 5], **resolve_hparams(paper, ["text", "vision", "audio"]))
    assert sum(p.numel() for p in predictor.parameters()) == 1_126_530
    layers = predictor.fusion.steps[1].layers
    assert torch.equal(layers[0].self_attn.qkv.weight, layers[3].self_attn.qkv.weight)


def test_bad_switch_values_get_one_clear_error():
    with pytest.raises(ValueError, match="init must be one of independent, reference, got 'authors'"):
        build(init="authors")
    with pytest.raises(ValueError, match="state_position must be true or false, got 'no'"):
        build(state_position="no")
    with pytest.raises(ValueError, match="share_weights must be true or false, got 1"):
        build(share_weights=1)

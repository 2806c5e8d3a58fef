"""Checks that tie tfn, lmf, joint and mult to their papers and code; the shared contract is in test_fusions.py."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import fusions
from benchmarks.config import resolve
from benchmarks.data import make_synthetic
from benchmarks.probes.checkpoints import DatasetCache, load_cell
from benchmarks.run import main as run_main
from benchmarks.train import build_cell_model
from fusions.lmf import LowRankFusion
from fusions.mult import MulTEmbedding, fairseq_sinusoidal_table, real_length_causal_mask
from fusions.tfn import TensorFusion, tensor_product
from tests.conftest import random_modalities, tiny_hparams


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def build(name: str, dims: list[int], seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return fusions.build_fusion(name, dims, **{**tiny_hparams(name), **overrides})


# --- mult -------------------------------------------------------------------------------------------------------


def test_mult_parameter_count_is_mults():
    """MulT's defaults (30-d, 5 layers, 5 heads) on MOSI dims with a 1-d output layer: 1,071,211 parameters."""
    predictor = fusions.build_predictor("mult", [300, 5, 20])
    assert n_params(predictor) == 1_071_211
    fusion = predictor.fusion
    assert isinstance(predictor.head, torch.nn.Linear) and predictor.head.in_features == fusion.out_dim == 180
    pairs = sorted(p for group in fusion.cross_pairs for p in group)
    assert pairs == [(i, j) for i in range(3) for j in range(3) if i != j]
    assert all(len(stacks.layers) == 5 for stacks in fusion.cross)
    assert fusion.memory.stacks == 3 and len(fusion.memory.layers) == 5 and fusion.memory_dim == 60
    assert len(fusions.build_fusion("mult", [300, 5, 20], num_layers=2).memory.layers) == 3  # max(layers, 3)


def test_mult_dropouts_are_mults():
    fusion = fusions.build_fusion("mult", [300, 5, 20])
    for stacks, pairs in zip(fusion.cross, fusion.cross_pairs):  # attention dropout of the source modality
        expected = 0.1 if all(j == 0 for _, j in pairs) else 0.0
        assert all(j == 0 for _, j in pairs) or all(j != 0 for _, j in pairs)
        assert stacks.layers[0].cross_attn.dropout == expected
        assert stacks.layers[0].dropout == 0.1 and stacks.layers[0].ff_dropout == 0.1  # res, relu
    assert fusion.memory.layers[0].self_attn.dropout == 0.1 and fusion.memory.causal
    assert fusion.embed_dropout.p == 0.25 and fusion.out_dropout.p == 0.0


def test_fairseq_position_table():
    table = fairseq_sinusoidal_table(4, 6)  # half 3: frequencies 10000^(-k / 2)
    assert table.shape == (5, 6) and table[0].abs().sum() == 0
    for p in range(1, 5):
        angles = [p * 10000 ** (-k / 2) for k in range(3)]
        expected = [math.sin(a) for a in angles] + [math.cos(a) for a in angles]
        torch.testing.assert_close(table[p], torch.tensor(expected))
    odd = fairseq_sinusoidal_table(3, 7)
    assert odd[:, -1].abs().sum() == 0 and torch.equal(odd[:, :6], fairseq_sinusoidal_table(3, 6))


def test_mult_embedding_scales_and_positions_real_steps_from_one():
    embed = MulTEmbedding(6)
    x = torch.randn(2, 4, 6)
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    out = embed(x, mask)
    table = fairseq_sinusoidal_table(4, 6)
    torch.testing.assert_close(out[0], math.sqrt(6) * x[0] + table[1:5])
    torch.testing.assert_close(out[1, :2], math.sqrt(6) * x[1, :2] + table[1:3])
    torch.testing.assert_close(out[1, 2:], math.sqrt(6) * x[1, 2:])  # padding gets the zero row, as in MulT
    assert embed(torch.zeros(1, 300, 6), torch.ones(1, 300, dtype=torch.bool)).shape == (1, 300, 6)  # grows


@pytest.mark.parametrize("query_len, key_len", [(5, 7), (7, 5), (4, 4)])
def test_causal_mask_is_buffered_future_mask_on_real_lengths(query_len, key_len):
    """MulT: ``triu(-inf, 1 + |Lk - Lq|)`` masks the future; ours gives the same on unpadded inputs, and the same on
    the real part of padded inputs (which MulT, taking padded lengths, would not)."""
    future = torch.ones(query_len, key_len).triu(1 + abs(key_len - query_len)).bool()
    ones = lambda length: torch.ones(1, 1, length, dtype=torch.bool)  # noqa: E731
    full = real_length_causal_mask(ones(query_len), ones(key_len))
    assert torch.equal(full[0, 0], ~future)
    pad_q = torch.cat([torch.ones(query_len, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)]).view(1, 1, -1)
    pad_k = torch.cat([torch.ones(key_len, dtype=torch.bool), torch.zeros(2, dtype=torch.bool)]).view(1, 1, -1)
    padded = real_length_causal_mask(pad_q, pad_k)[0, 0]
    assert torch.equal(padded[:query_len, :key_len], ~future) and not padded[:, key_len:].any()
    assert padded[:, 0].all()  # every row (padding rows too) may attend somewhere


def test_mult_crossmodal_attention_is_causal():
    """Target 0 (5 steps) attends to source 2 (7 steps): offset 2, so query t sees source steps <= t + 2.
    Changing source step 6 leaves queries 0..3 unchanged and changes query 4; without the mask, query 0 changes."""
    dims = [4, 3, 5]
    xs, masks = random_modalities(dims, [5, 6, 7], batch=2)
    masks = [torch.ones_like(m) for m in masks]
    changed = [xs[0], xs[1], xs[2].clone()]
    changed[2][:, 6] += 1.0
    for causal in (True, False):
        fusion = build("mult", dims, causal=causal).eval()
        with torch.no_grad():
            before = fusion.crossmodal(*fusion.project(xs, masks))[0, 2]
            after = fusion.crossmodal(*fusion.project(changed, masks))[0, 2]
        moved = (before - after).abs().amax(dim=(0, 2))
        if causal:
            assert moved[:4].max() == 0 and moved[4] > 0
        else:
            assert moved[0] > 0


def test_mult_memory_attention_is_causal():
    fusion = build("mult", [4, 3, 5]).eval()
    h = torch.randn(3, 2, 6, fusion.memory_dim)
    masks = [torch.ones(2, 6, dtype=torch.bool)] * 3
    changed = h.clone()
    changed[:, :, 4] += 1.0
    with torch.no_grad():
        pairs = zip(fusion.memory(list(h), masks), fusion.memory(list(changed), masks))
        moved = [(a - b).abs().amax(dim=(0, 2)) for a, b in pairs]
    assert all(m[:4].max() == 0 and m[4] > 0 for m in moved)


@pytest.mark.parametrize("n", [2, 4])
def test_mult_generalises_to_n_modalities(n):
    fusion = build("mult", [3] * n)
    assert sum(stacks.stacks for stacks in fusion.cross) == n * (n - 1)
    assert fusion.memory.stacks == n and fusion.memory_dim == (n - 1) * 8 and fusion.out_dim == n * (n - 1) * 8


def test_mult_skips_the_projection_of_a_modality_already_d_model_wide():
    fusion = build("mult", [8, 3, 5])
    assert isinstance(fusion.projections[0], torch.nn.Identity)
    assert isinstance(fusion.projections[1], torch.nn.Linear) and fusion.projections[1].bias is None


# --- tfn --------------------------------------------------------------------------------------------------------


def test_tensor_product_against_hand_computation():
    """``[1; h_1] ⊗ [1; h_2] ⊗ ...`` flattened, the 1 first (as the authors' code), the last factor fastest."""
    h1, h2 = torch.tensor([[2.0]]), torch.tensor([[3.0, -1.0]])
    # [1, 2] ⊗ [1, 3, -1]
    torch.testing.assert_close(tensor_product([h1, h2]), torch.tensor([[1.0, 3.0, -1.0, 2.0, 6.0, -2.0]]))
    h3 = torch.tensor([[0.5]])
    expected = [a * b * c for a in (1.0, 2.0) for b in (1.0, 3.0, -1.0) for c in (1.0, 0.5)]
    torch.testing.assert_close(tensor_product([h1, h2, h3]), torch.tensor([expected]))


def test_tfn_cap_refuses_with_n_size_and_cap():
    assert TensorFusion.max_modalities(d_model=32, max_tensor_size=2**20) == 3
    assert TensorFusion.max_modalities(d_model=8, max_tensor_size=9**4) == 4
    assert TensorFusion.max_modalities(d_model=[64, 4, 16]) == 3 and TensorFusion.max_modalities(d_model=[99] * 4) == 0
    assert TensorFusion.max_modalities(d_model={"text": 64, "audio": 4}) == 2  # a configuration's table by name
    fusion = build("tfn", [3] * 4, max_tensor_size=9**4)
    assert fusion.tensor_size == 9**4 and fusion.post_fusion[1].in_features == 9**4
    with pytest.raises(ValueError, match=r"n=5 .* 59,049 entries, over the cap max_tensor_size=6,561 \(at most 4"):
        build("tfn", [3] * 5, max_tensor_size=9**4)
    with pytest.raises(ValueError, match=r"n=4 .* 1,185,921 entries, over the cap max_tensor_size=1,048,576"):
        fusions.build_fusion("tfn", [3] * 4)
    assert build("tfn", [3, 4, 5], d_model=[2, 3, 4]).tensor_size == 3 * 4 * 5  # widths per modality


@pytest.mark.parametrize("kind", ["lstm", "mean"])
def test_tfn_subnetworks_ignore_padding(kind):
    fusion = build("tfn", [4, 3], subnetwork=kind).eval()
    x = torch.randn(1, 5, 4)
    padded = torch.cat([x, 100 * torch.randn(1, 3, 4)], dim=1)
    y = torch.randn(1, 2, 3)
    with torch.no_grad():
        alone = fusion.subnetworks([x, y], [torch.ones(1, 5, dtype=torch.bool), torch.ones(1, 2, dtype=torch.bool)])
        mask = torch.arange(8).unsqueeze(0) < 5
        with_padding = fusion.subnetworks([padded, y], [mask, torch.ones(1, 2, dtype=torch.bool)])
    torch.testing.assert_close(torch.cat(with_padding, 1), torch.cat(alone, 1), atol=1e-6, rtol=0)


def test_tfn_lstm_fast_path_equals_the_packed_one():
    """A batch whose samples are all full length skips packing; the outputs are those of the packed LSTM."""
    fusion = build("tfn", [4, 3]).eval()
    xs, masks = random_modalities([4, 3], [6, 5], batch=3)
    full = [torch.ones_like(m) for m in masks]
    with torch.no_grad():
        fast = fusion.subnetworks(xs, full)
        # one padding step appended to every sample forces the packed path on the same real steps
        padded = [torch.cat([x, torch.randn(3, 1, x.shape[2])], dim=1) for x in xs]
        packed = fusion.subnetworks(padded, [torch.cat([m, torch.zeros(3, 1, dtype=torch.bool)], 1) for m in full])
    torch.testing.assert_close(torch.cat(fast, 1), torch.cat(packed, 1), atol=1e-6, rtol=0)


def test_tfn_mean_subnetwork_is_the_authors_subnet_on_the_time_average():
    """``"mean"``: masked time average, BatchNorm, Dropout, three Linear -> ReLU layers; a training batch of one
    sample is normalised with the running statistics and leaves them unchanged."""
    fusion = build("tfn", [4, 3], subnetwork=["mean", "lstm"], d_model=[5, 2])
    net = fusion.subnetworks.nets[0]
    with torch.no_grad():
        net.norm.running_mean.normal_()
        net.norm.running_var.uniform_(0.5, 2.0)
    xs, masks = random_modalities([4, 3], [6, 5], batch=3)
    mean = (xs[0] * masks[0].unsqueeze(-1)).sum(1) / masks[0].sum(1, keepdim=True)
    layers = list(net.layers)
    net.eval()
    expected = net.norm(mean)
    for layer in layers:
        expected = torch.relu(layer(expected))
    torch.testing.assert_close(net(xs[0], masks[0]), expected)
    torch.testing.assert_close(net(mean.unsqueeze(1), masks[0][:, :1]), expected)  # one stored vector a sample
    net.train()
    before = net.norm.running_mean.clone()
    torch.testing.assert_close(net(xs[0][:1], masks[0][:1]), expected[:1])  # dropout 0 in the tiny settings
    assert torch.equal(net.norm.running_mean, before)
    net(xs[0], masks[0])  # a batch of three updates the statistics
    assert not torch.equal(net.norm.running_mean, before)


def test_tfn_output_is_bounded_to_the_label_range_and_logits_stay_free():
    """The authors' ``sigmoid(y) * 6 - 3`` on one output when the task's labels lie in [-3, 3] (MOSI sentiment);
    ``(low, high)`` in general. Unbounded: classification logits, a task without a label range, ``bound_output =
    False``."""
    xs, masks = random_modalities([4, 3, 5], [6, 5, 7], batch=4)
    torch.manual_seed(0)
    bounded = fusions.build_predictor("tfn", [4, 3, 5], task_label_range=(-3.0, 3.0), **tiny_hparams("tfn")).eval()
    with torch.no_grad():
        bounded.fusion.output.bias.fill_(50.0)  # saturate
        assert torch.allclose(bounded(xs, masks).output, torch.tensor(3.0))
        bounded.fusion.output.bias.fill_(0.3)
        raw = bounded.fusion.output(bounded.fusion.forward_with_states(xs, masks).states[0])
        torch.testing.assert_close(bounded(xs, masks).output, torch.sigmoid(raw) * 6 - 3)
    assert isinstance(bounded.head, torch.nn.Identity) and bounded.fusion.out_dim == 1
    shifted = fusions.build_predictor("tfn", [4, 3, 5], task_label_range=(0.0, 10.0), **tiny_hparams("tfn"))
    assert shifted.fusion.bounds == (0.0, 10.0)
    own = fusions.build_predictor("tfn", [4, 3, 5], task_label_range=(0.0, 10.0), label_range=[1, 2],
                                  **tiny_hparams("tfn"))
    assert own.fusion.bounds == (1.0, 2.0)  # given with the hyperparameters: it wins over the task's
    unbounded = [
        fusions.build_predictor("tfn", [4, 3, 5], **tiny_hparams("tfn")),  # no label range
        fusions.build_predictor("tfn", [4, 3, 5], task_label_range=(-3.0, 3.0), bound_output=False,
                                **tiny_hparams("tfn")),
        fusions.build_predictor("tfn", [4, 3, 5], task="classification", num_classes=3,
                                task_label_range=(-3.0, 3.0), **tiny_hparams("tfn")),
    ]
    for predictor in unbounded:
        predictor.eval()
        with torch.no_grad():
            predictor.fusion.output.bias.fill_(50.0)
            assert predictor.fusion.bounds is None and predictor(xs, masks).output.min() > 40  # not squashed
    assert unbounded[2](xs, masks).output.shape == (4, 3)


def test_training_bounds_tfn_by_the_datasets_task():
    """``benchmarks.train`` passes the task's label range: sentiment data (synthetic, MOSI) gets the authors' [-3, 3]
    bound, plain regression labels (no range) an unbounded output."""
    config = {"fusions": {"tfn": {"d_model": 4, "dim_feedforward": 8}}}
    cell = resolve(config, "tfn", {"name": "synthetic", "path": None, "options": {}})
    data = make_synthetic(sizes=(8, 4, 4), seq_lens=3, dims=[4, 3, 5])
    assert build_cell_model(cell, data).fusion.bounds == (-3.0, 3.0)
    assert build_cell_model(cell, dataclasses.replace(data, task="regression")).fusion.bounds is None
    config["fusions"]["tfn"]["label_range"] = [0, 2]  # a configured range wins over the task's
    cell = resolve(config, "tfn", {"name": "synthetic", "path": None, "options": {}})
    assert build_cell_model(cell, data).fusion.bounds == (0.0, 2.0)


def test_a_stored_tfn_cell_is_rebuilt_with_its_bound(tmp_path):
    """The probes rebuild a trained cell from its checkpoint: with the task's label range, as it was trained."""
    (tmp_path / "tiny.toml").write_text("[protocol]\nmax_epochs = 1\nwarmup_epochs = 0\n"
                                        "[fusions.tfn]\nd_model = 4\ndim_feedforward = 8\n"
                                        "[datasets.synthetic]\nsizes = [16, 8, 8]\nseq_lens = 4\n")
    assert run_main(["--fusions", "tfn", "--seeds", "1", "--config", str(tmp_path / "tiny.toml"),
                     "--out", str(tmp_path / "run"), "--no-report"]) == 0
    (checkpoint,) = (tmp_path / "run").rglob("checkpoint.pt")
    assert load_cell(checkpoint.parent, DatasetCache()).model.fusion.bounds == (-3.0, 3.0)


# --- lmf --------------------------------------------------------------------------------------------------------


def test_lmf_structure_is_the_authors():
    """By default fused straight to the task's outputs (the authors' ``output_dim``), the fusion's output the
    prediction; ``fused_dim`` makes a representation with a linear head."""
    predictor = fusions.build_predictor("lmf", [4, 3, 5], rank=3, **tiny_hparams("lmf"))
    fusion = predictor.fusion
    assert [tuple(f.shape) for f in fusion.fusion.factors] == [(9, 3)] * 3  # each [d + 1, rank * out]
    assert fusion.fusion.fusion_weights.shape == (1, 3) and fusion.fusion.fusion_bias.shape == (1, 1)
    assert isinstance(predictor.head, torch.nn.Identity) and fusion.out_dim == 1
    classes = fusions.build_predictor("lmf", [4, 3, 5], task="classification", num_classes=4, **tiny_hparams("lmf"))
    assert classes.fusion.fusion.factors[0].shape == (9, 4 * 4)
    wide = fusions.build_predictor("lmf", [4, 3, 5], fused_dim=6, **tiny_hparams("lmf"))
    assert wide.fusion.fusion.factors[0].shape == (9, 4 * 6) and wide.fusion.output.weight.shape == (1, 6)
    xs, masks = random_modalities([4, 3, 5], [6, 5, 7], batch=2)
    assert [tuple(s.shape) for s in predictor.fusion.forward_with_states(xs, masks).states] == [(2, 3)]  # rank x 1
    assert [tuple(s.shape) for s in wide.fusion.forward_with_states(xs, masks).states] == [(2, 6)]  # h
    per_modality = build("lmf", [4, 3, 5], d_model=[2, 3, 4], subnetwork=["lstm", "mean", "mean"])
    assert [f.shape[0] for f in per_modality.fusion.factors] == [3, 4, 5]
    big = LowRankFusion([200], 8, rank=16).factors[0]  # the authors' Xavier scale on [rank, d + 1, out]
    assert big.std().item() == pytest.approx(math.sqrt(2 / (201 * 8 + 16 * 8)), rel=0.05)


def test_lmf_equals_the_full_rank_tensor_product():
    """``sum_r w_r prod_i ([1; h_i] W_i^(r)) + b`` equals ``W · Z + b`` with ``W = sum_r w_r ⊗_i W_i^(r)`` and
    ``Z = ⊗_i [1; h_i]`` (TFN with a rank-r weight tensor), for modalities of different widths."""
    torch.manual_seed(0)
    lmf = LowRankFusion([2, 3, 1], 4, rank=3)
    with torch.no_grad():
        lmf.fusion_bias.normal_()
    hs = [torch.randn(5, d) for d in (2, 3, 1)]
    f = [factor.detach().view(factor.shape[0], 3, 4).transpose(0, 1) for factor in lmf.factors]  # [rank, d + 1, o]
    weight = torch.einsum("r,rao,rbo,rco->abco", lmf.fusion_weights[0].detach(), *f)
    z = [torch.cat([torch.ones(5, 1), h], dim=1) for h in hs]
    full = torch.einsum("na,nb,nc,abco->no", *z, weight) + lmf.fusion_bias.detach()
    fused, products = lmf(hs)
    torch.testing.assert_close(fused, full, atol=1e-5, rtol=1e-5)
    ranks = torch.stack([torch.einsum("na,rao->nro", z_i, f_i) for z_i, f_i in zip(z, f)]).prod(0)  # [n, rank, o]
    torch.testing.assert_close(products, ranks.flatten(1), atol=1e-5, rtol=1e-5)


def test_lmf_factors_train_at_their_own_learning_rate():
    """``factor_lr_scale``: the modality factors get their own optimiser group (the authors' ``factor_lr``); every
    other parameter, the fusion weights and bias included (as the authors' optimiser), the base rate."""
    predictor = fusions.build_predictor("lmf", [4, 3, 5], factor_lr_scale=3.0, **tiny_hparams("lmf"))
    base, factors = predictor.param_groups(1e-3)
    assert factors["lr"] == pytest.approx(3e-3) and base["lr"] == 1e-3
    assert {id(p) for p in factors["params"]} == {id(p) for p in predictor.fusion.fusion.factors}
    everything = [id(p) for group in (base, factors) for p in group["params"]]
    assert sorted(everything) == sorted(id(p) for p in predictor.parameters())  # each exactly once
    torch.optim.AdamW([base, factors], lr=1e-3)  # a valid optimiser
    plain = fusions.build_predictor("grf", [4, 3, 5], **tiny_hparams("grf"))
    assert [len(g["params"]) for g in plain.param_groups(1e-3)] == [len(list(plain.parameters()))]
    with pytest.raises(ValueError, match="factor_lr_scale must be > 0"):
        fusions.build_fusion("lmf", [4, 3], factor_lr_scale=0.0)


# --- joint ------------------------------------------------------------------------------------------------------


def test_joint_tokens_carry_projection_position_and_modality_embedding():
    fusion = build("joint", [4, 3]).eval()
    xs = [torch.randn(2, 5, 4), torch.randn(2, 3, 3)]
    tokens = fusion.tokens(xs)
    assert tokens.shape == (2, 8, 8)
    with torch.no_grad():
        fusion.modality_embedding.weight.zero_()
        torch.testing.assert_close(fusion.tokens(xs)[:, :5], fusion.position(fusion.projections[0](xs[0])))
        torch.testing.assert_close(fusion.tokens(xs)[:, 5:], fusion.position(fusion.projections[1](xs[1])))


def test_joint_modality_embedding_tells_modalities_apart():
    """Two modalities with the same projection: swapping their inputs only permutes the joint tokens, so the output
    is the same while the modality embeddings are equal, and differs once they are not."""
    fusion = build("joint", [4, 4]).eval()
    with torch.no_grad():
        fusion.projections[1].load_state_dict(fusion.projections[0].state_dict())
        fusion.modality_embedding.weight[1] = fusion.modality_embedding.weight[0]
    xs, masks = random_modalities([4, 4], [5, 5], batch=2)
    masks = [torch.ones_like(m) for m in masks]
    with torch.no_grad():
        torch.testing.assert_close(fusion(xs, masks), fusion(xs[::-1], masks), atol=1e-5, rtol=0)
        fusion.modality_embedding.weight[1] += 1.0
        assert not torch.allclose(fusion(xs, masks), fusion(xs[::-1], masks), atol=1e-3)


def test_joint_padding_between_modalities_is_masked():
    """Modality 0's padding sits between its real tokens and modality 1's in the joint sequence."""
    fusion = build("joint", [4, 3]).eval()
    xs, masks = random_modalities([4, 3], [3, 4], batch=2)
    padded = [torch.cat([xs[0], 1e3 * torch.randn(2, 6, 4)], dim=1), xs[1]]
    padded_masks = [torch.cat([masks[0], torch.zeros(2, 6, dtype=torch.bool)], dim=1), masks[1]]
    with torch.no_grad():
        torch.testing.assert_close(fusion(padded, padded_masks), fusion(xs, masks), atol=1e-5, rtol=0)


# --- hyperparameters and FLOPs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, hparams, message",
    [
        ("tfn", dict(d_model=0), "tfn needs d_model >= 1"),
        ("lmf", dict(rank=0), "lmf needs rank >= 1"),
        ("lmf", dict(d_model=0), "lmf needs d_model >= 1"),
        ("tfn", dict(d_model=[8, 8]), r"tfn: d_model gives 2 values \[8, 8\]; expected one per modality \(3\)"),
        ("tfn", dict(subnetwork="gru"), "tfn: unknown subnetwork 'gru'; expected one of lstm, mean"),
        ("lmf", dict(subnet_dropout=[0.1, 1.0, 0.0]), r"lmf: every subnetwork dropout must lie in \[0, 1\)"),
        ("tfn", dict(label_range=(3.0, -3.0)), r"tfn: label_range must be \(low, high\) with low < high"),
        ("tfn", dict(d_model={"text": 8}), "tfn: d_model {'text': 8} is given by modality name"),
        ("joint", dict(num_layers=0), "joint needs num_layers >= 1"),
        ("mult", dict(d_model=2, num_heads=1), "mult needs d_model >= 4"),
        ("mult", dict(attn_dropouts=[0.1, 0.0]), r"one attention dropout per modality \(3\)"),
        ("mult", dict(relu_dropout=1.0), r"mult: relu_dropout must lie in \[0, 1\)"),
        ("mult", dict(d_model=30, num_heads=4), "not divisible by num_heads"),
    ],
)
def test_bad_hyperparameters_raise_clear_errors(name, hparams, message):
    with pytest.raises(ValueError, match=message):
        fusions.build_fusion(name, [4, 3, 5], **hparams)


def _lstm_layer_flops(input_shape, w_ih_shape, w_hh_shape, *args, out_shape=None, **kwargs) -> int:
    """``aten.mkldnn_rnn_layer`` (one LSTM layer on CPU), which ``FlopCounterMode`` does not know."""
    steps = math.prod(input_shape) // input_shape[-1]
    return 2 * steps * (math.prod(w_ih_shape) + math.prod(w_hh_shape))


NO_DROPOUT = {
    "tfn": dict(dropout=0.0),
    "lmf": dict(dropout=0.0, rank=3),
    "lmf-mean": dict(dropout=0.0, rank=3, fused_dim=5, subnetwork=["lstm", "mean", "mean"], d_model=[8, 3, 4]),
    "tfn-mean": dict(dropout=0.0, subnetwork=["mean", "lstm", "mean"], d_model=[4, 8, 2], num_outputs=2),
    "joint": dict(dropout=0.0, num_layers=2),
    "mult": dict(dropout=0.0, relu_dropout=0.0, embed_dropout=0.0, attn_dropouts=[0.0, 0.0, 0.0], num_layers=2),
}


@pytest.mark.parametrize("name", sorted(NO_DROPOUT))
@pytest.mark.parametrize("lengths", [[5, 4, 6], [3, 8, 2]])
def test_analytic_flops_match_counted(name, lengths):
    dims = [7, 8, 5]  # 8 = d_model: mult skips that projection
    fusion = build(name.split("-")[0], dims, **NO_DROPOUT[name]).train()
    xs = [torch.randn(2, steps, dim) for steps, dim in zip(lengths, dims)]
    masks = [torch.ones(2, steps, dtype=torch.bool) for steps in lengths]
    counter = FlopCounterMode(display=False, custom_mapping={torch.ops.aten.mkldnn_rnn_layer: _lstm_layer_flops})
    with sdpa_kernel(SDPBackend.MATH), counter:
        fusion(xs, masks)
    counted = counter.get_total_flops() / 2
    assert fusion.analytic_flops(lengths) == pytest.approx(counted, rel=0.02)


def test_mult_analytic_flops_at_mults_defaults():
    fusion = fusions.build_fusion("mult", [300, 5, 20], **{**NO_DROPOUT["mult"], "num_layers": 5}).train()
    lengths = [8, 8, 8]  # one batched call per stack group keeps the counted run short
    xs = [torch.randn(1, steps, dim) for steps, dim in zip(lengths, [300, 5, 20])]
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fusion(xs, [torch.ones(1, steps, dtype=torch.bool) for steps in lengths])
    assert fusion.analytic_flops(lengths) == pytest.approx(counter.get_total_flops(), rel=0.02)

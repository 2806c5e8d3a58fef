"""The stacked transformer layers equal PyTorch's reference layers, and batching stacks changes nothing."""

from __future__ import annotations

import torch
from torch import nn

from fusions.layers import (
    PositionalEncoding,
    StackedLayer,
    StackedTransformer,
    attention_mask,
    last_real_step,
    masked_mean,
    sinusoidal_table,
)


def _copy_attention(ours, theirs: nn.MultiheadAttention, cross: bool) -> None:
    w, b = theirs.in_proj_weight.detach(), theirs.in_proj_bias.detach()
    d = w.shape[1]
    if cross:
        ours.q.weight.data[0] = w[:d].T
        ours.q.bias.data[0] = b[:d]
        ours.kv.weight.data[0] = w[d:].T
        ours.kv.bias.data[0] = b[d:]
    else:
        ours.qkv.weight.data[0] = w.T
        ours.qkv.bias.data[0] = b
    ours.out.weight.data[0] = theirs.out_proj.weight.detach().T
    ours.out.bias.data[0] = theirs.out_proj.bias.detach()


def _copy_norm(ours, theirs: nn.LayerNorm) -> None:
    ours.weight.data[0] = theirs.weight.detach()
    ours.bias.data[0] = theirs.bias.detach()


def _copy_feedforward(ours: StackedLayer, linear1: nn.Linear, linear2: nn.Linear) -> None:
    ours.ff_in.weight.data[0] = linear1.weight.detach().T
    ours.ff_in.bias.data[0] = linear1.bias.detach()
    ours.ff_out.weight.data[0] = linear2.weight.detach().T
    ours.ff_out.bias.data[0] = linear2.bias.detach()


def test_decoder_layer_equals_torch_decoder_layer():
    torch.manual_seed(0)
    d, heads, ff = 16, 4, 32
    reference = nn.TransformerDecoderLayer(d, heads, ff, dropout=0.0, activation="gelu", batch_first=True).eval()
    ours = StackedLayer(1, d, heads, ff, 0.0, kind="decoder", norm_first=False).eval()
    _copy_attention(ours.self_attn, reference.self_attn, cross=False)
    _copy_attention(ours.cross_attn, reference.multihead_attn, cross=True)
    _copy_norm(ours.norm_self, reference.norm1)
    _copy_norm(ours.norm_cross, reference.norm2)
    _copy_norm(ours.norm_ff, reference.norm3)
    _copy_feedforward(ours, reference.linear1, reference.linear2)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())

    tgt, memory = torch.randn(3, 6, d), torch.randn(3, 9, d)
    tgt_mask = torch.arange(6) < torch.tensor([[6], [4], [1]])
    mem_mask = torch.arange(9) < torch.tensor([[2], [9], [5]])
    expected = reference(tgt, memory, tgt_key_padding_mask=~tgt_mask, memory_key_padding_mask=~mem_mask)
    got = ours(
        tgt[None], memory[None], attention_mask(tgt_mask[None], 6, False), attention_mask(mem_mask[None], 6, False),
        None,
    )[0]
    torch.testing.assert_close(got[tgt_mask], expected[tgt_mask], atol=1e-5, rtol=1e-5)


def test_encoder_layer_equals_torch_encoder_layer():
    torch.manual_seed(1)
    d, heads, ff = 12, 3, 20
    reference = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, activation="gelu", batch_first=True)
    reference.train()  # the math path; the eval fast path returns padded rows as zeros
    ours = StackedLayer(1, d, heads, ff, 0.0, kind="encoder", norm_first=False)
    _copy_attention(ours.self_attn, reference.self_attn, cross=False)
    _copy_norm(ours.norm_self, reference.norm1)
    _copy_norm(ours.norm_ff, reference.norm2)
    _copy_feedforward(ours, reference.linear1, reference.linear2)
    x = torch.randn(2, 7, d)
    mask = torch.arange(7) < torch.tensor([[7], [3]])
    expected = reference(x, src_key_padding_mask=~mask)
    got = ours(x[None], None, attention_mask(mask[None], 7, False), None, None)[0]
    torch.testing.assert_close(got[mask], expected[mask], atol=1e-5, rtol=1e-5)


def test_grouped_stacks_equal_separate_runs():
    """Stacks with different input lengths run in shape groups (with a parameter gather); same results as
    running each stack alone."""
    torch.manual_seed(2)
    stack = StackedTransformer(3, 2, 8, 2, 16, 0.0, kind="cross", norm_first=True, final_norm=True).eval()
    lengths = [(5, 4), (5, 4), (3, 6)]
    targets = [torch.randn(2, lq, 8) for lq, _ in lengths]
    sources = [torch.randn(2, lk, 8) for _, lk in lengths]
    tmask = [torch.ones(2, lq, dtype=torch.bool) for lq, _ in lengths]
    smask = [torch.ones(2, lk, dtype=torch.bool) for _, lk in lengths]
    together = stack(targets, tmask, sources, smask)
    for p in range(3):
        alone = stack.run_group(
            targets[p][None], tmask[p][None], sources[p][None], smask[p][None], torch.tensor([p])
        )[0]
        torch.testing.assert_close(together[p], alone, atol=1e-6, rtol=1e-6)


def test_pooling_and_positions():
    x = torch.arange(12.0).reshape(1, 4, 3)
    mask = torch.tensor([[True, True, False, False]])
    torch.testing.assert_close(masked_mean(x, mask), torch.tensor([[1.5, 2.5, 3.5]]))
    torch.testing.assert_close(last_real_step(x, mask), torch.tensor([[3.0, 4.0, 5.0]]))
    table = sinusoidal_table(5, 4)
    assert torch.allclose(table[0], torch.tensor([0.0, 1.0, 0.0, 1.0]))
    assert torch.allclose(table[2, 0], torch.sin(torch.tensor(2.0)))
    encoding = PositionalEncoding(4, max_len=2)  # grows on demand
    assert torch.allclose(encoding(torch.zeros(1, 5, 4))[0], table)


def test_causal_mask_offsets_like_mult():
    mask = attention_mask(torch.ones(1, 1, 3, dtype=torch.bool), 3, causal=True)[0, 0]
    assert mask.tolist() == [[True, False, False], [True, True, False], [True, True, True]]

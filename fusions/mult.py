"""MulT as its public code builds it: Tsai et al., "Multimodal Transformer for Unaligned Multimodal Language
Sequences", ACL 2019 (yaohungt/Multimodal-Transformer: ``src/models.py`` ``MULTModel``, ``modules/``).

Structure, three modalities (l, a, v = modalities 0, 1, 2; text first, as the suite's MOSI order):

- the text input gets embedding dropout (``F.dropout(x_l, embed_dropout)``), then every modality is projected
  to ``d_model`` by a bias-free ``Conv1d(k=1)`` (here the equivalent bias-free ``Linear``; skipped, as in
  MulT, when ``dim_i == d_model``: MulT still builds the unused conv, we do not);
- for every ordered pair (target i, source j) a crossmodal ``TransformerEncoder`` of ``num_layers`` layers.
  Each encoder embeds its inputs as ``sqrt(d) * x + positions`` with dropout ``embed_dropout``; positions are
  fairseq's sinusoidal table (half sin, half cos, frequencies ``10000^(-k / (d/2 - 1))``), row ``p`` for the
  step at position ``p >= 1`` and the zero row for padding (see *Padding*). Layers are pre-norm with ReLU, the
  query's LayerNorm also normalises key and value, then a final LayerNorm. Attention dropout is the
  *source's* (MulT's ``get_network`` picks it by the key modality: ``attn_dropout`` 0.1 for text,
  ``attn_dropout_a`` / ``attn_dropout_v`` 0.0);
- per target, the ``n - 1`` crossmodal outputs are concatenated (sources in index order) into a
  ``(n - 1) * d_model`` wide sequence (``2 * d_model`` at three modalities) and passed through a self-attention
  memory encoder of ``max(num_layers, 3)`` layers (attention dropout: the text one, as in MulT);
- each target's last step, concatenated, goes through the residual block ``h + W2 Dropout(ReLU(W1 h))``
  (``out_dropout``), and one ``Linear`` output layer (``head = "linear"``: the Predictor's).

Causal masks (``attn_mask``, default true in MulT's ``main.py``): MulT's ``buffered_future_mask`` lets query
``t`` see keys ``s <= t + |L_k - L_q|``, with the lengths of its (padded) tensors.

Padding (``padding``). MulT has no masks: its pickles store every modality left-padded with zero rows to one
length per modality (50 steps in its aligned files), and its model treats every row as a step.

- ``"reference"`` (the default) computes what MulT's code computes on that layout. The suite's inputs are
  right-padded with masks, so each modality is laid out as MulT's files store it (``left_pad``): a
  ``[batch, L_i, d]`` sequence whose last ``real_b`` rows are sample ``b``'s real steps and whose earlier
  rows are zero, ``L_i = padded_lengths[i]`` (MulT's stored length; default: the input's own time length, so
  the stored tensors fed whole give MulT's layout exactly). It is applied after the projection, which is
  bias-free and per step and so maps MulT's zero rows to zero rows: the same numbers, less to copy. Then
  every row is a step, as in MulT: attention sees the zero rows, the causal diagonal is offset by the padded
  lengths, positions are absolute (row ``r`` gets position ``r + 1``, except that, as fairseq's
  ``make_positions`` does, a row whose first channel is exactly 0 gets the zero row: MulT's padding test,
  which catches its zero padding), and pooling takes the last row (each sample's last real step). The
  output therefore depends on ``L_i``: appended padding changes it unless ``padded_lengths`` fixes the stored
  length (then any input up to that length gives the same output, and a sample with more real steps is
  refused by ``check_inputs``). ``benchmarks.reference`` proves the agreement with MulT's code, weights
  copied in, in eval mode.
- ``"masked"``: padding is masked instead (keys, causal offsets from each sample's real lengths via
  ``real_length_causal_mask``, positions 1, 2, ... on real steps and the zero row on padding, pooling of the
  last real step; a real row whose first channel is exactly 0 gets the zero row, as in MulT), so appended
  padding changes nothing and each sample is fused independently of the length its batch is padded to. This
  is what the shared protocol uses (the presets set it: the runner trims each batch to its longest real
  sequence, which would move ``L_i`` from batch to batch); it equals MulT's code run on each sample alone,
  without padding. On unpadded inputs both modes are the same function.

Dropouts are MulT's defaults (``main.py``): residual ``dropout`` 0.1 (``res_dropout``), ``relu_dropout`` 0.1,
``embed_dropout`` 0.25, ``out_dropout`` 0.0, attention per source modality as above. Each stack draws its own
embedding-dropout masks, as each MulT encoder does; one mask serves a source's key and value (MulT draws two,
so in training the two differ there; the distribution of each is the same). Initialisation is MulT's:
Xavier-uniform attention and feed-forward weights with zero biases.

More or fewer than three modalities: the structure carries over as MulT defines it (``n(n - 1)`` crossmodal
stacks; each memory is the concatenation of its target's ``n - 1`` crossmodal outputs, as MultiBench
generalises MulT), so memory stacks cost ``O(n^3)`` and the residual block ``O(n^4)`` parameters; the
attention dropout is the text one for modality 0's sources and 0 for the others unless ``attn_dropouts`` says
otherwise. ``pairwise`` is the quadratic generalisation (memory projected to a fixed width).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Fusion, FusionOutput, transformer_space
from .layers import StackedTransformer, last_real_step
from .registry import register_fusion

PADDINGS = ("reference", "masked")


def fairseq_sinusoidal_table(length: int, dim: int) -> Tensor:
    """MulT's (fairseq's) position table ``[length + 1, dim]``: row 0 (padding) is zero, row ``p`` is
    ``[sin(p w_k), cos(p w_k)]`` for ``w_k = 10000^(-k / (dim // 2 - 1))``, ``k < dim // 2``, then a zero column
    if ``dim`` is odd."""
    half = dim // 2
    frequencies = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
    angles = torch.arange(length + 1, dtype=torch.float32).unsqueeze(1) * frequencies
    table = torch.cat([torch.sin(angles), torch.cos(angles), torch.zeros(length + 1, dim % 2)], dim=1)
    table[0] = 0.0
    return table


class MulTEmbedding(nn.Module):
    """The input of a MulT encoder: ``sqrt(dim) * x`` plus row ``t + 1`` of the position table at step ``t``
    where ``mask`` is True and the zero row where it is False.

    ``x [batch, time, dim]``, ``mask [batch, time]`` (the steps that get a position) -> ``[batch, time, dim]``.
    The table grows on need."""

    def __init__(self, dim: int, max_len: int = 128):
        super().__init__()
        self.dim, self.scale = dim, math.sqrt(dim)
        self.register_buffer("table", fairseq_sinusoidal_table(max_len, dim), persistent=False)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        steps = x.shape[1]
        if steps >= self.table.shape[0]:
            self.table = fairseq_sinusoidal_table(max(steps, 2 * self.table.shape[0]), self.dim).to(self.table.device)
        positions = self.table[1:steps + 1].to(x.dtype) * mask.unsqueeze(-1).to(x.dtype)
        return x * self.scale + positions


def left_pad(x: Tensor, mask: Tensor, length: int) -> Tensor:
    """A right-padded modality in the layout of MulT's pickles: zero rows first, each sample's real steps last.

    ``x [batch, time, dim]`` with ``mask [batch, time]`` (real steps first) -> ``[batch, length, dim]``, where
    sample ``b`` with ``r_b`` real steps has them at rows ``length - r_b .. length - 1`` and zeros before (what
    is under the mask is dropped). ``length`` must be at least every ``r_b`` (``check_inputs`` sees to it); it
    may be shorter or longer than ``time``. Reads no values, so it runs on ``meta`` tensors.
    """
    real = mask.sum(-1, keepdim=True)  # [batch, 1]
    source = torch.arange(length, device=x.device) - (length - real)  # [batch, length]: input step of each row
    picked = x.gather(1, source.clamp_min(0).unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    return picked.masked_fill((source < 0).unsqueeze(-1), 0.0)


def real_length_causal_mask(query_mask: Tensor, key_mask: Tensor) -> Tensor:
    """MulT's ``buffered_future_mask`` from each sample's real lengths, with key padding (True = may attend).

    ``query_mask [G, B, Lq]``, ``key_mask [G, B, Lk]`` -> ``[G * B, 1, Lq, Lk]``: query ``t`` may see real keys
    ``s <= t + |real L_k - real L_q|``. Key 0 is always allowed, so no row is empty.
    """
    groups, batch, query_len = query_mask.shape
    key_len = key_mask.shape[-1]
    offset = (key_mask.sum(-1) - query_mask.sum(-1)).abs()  # [G, B]
    device = key_mask.device
    ahead = torch.arange(key_len, device=device) - torch.arange(query_len, device=device).unsqueeze(1)
    allowed = (ahead <= offset[..., None, None]) & key_mask.unsqueeze(-2)  # [G, B, Lq, Lk]
    return allowed.reshape(groups * batch, 1, query_len, key_len)


class CausalStacks(StackedTransformer):
    """``StackedTransformer`` (``"encoder"`` or ``"cross"``) whose causal masks use real lengths
    (``real_length_causal_mask``) instead of the padded ones; without ``causal`` it is the parent unchanged."""

    def run_group(
        self, x: Tensor, x_mask: Tensor, source: Tensor | None, source_mask: Tensor | None,
        index: Tensor | slice | None,
    ) -> Tensor:
        if not self.causal:
            return super().run_group(x, x_mask, source, source_mask, index)
        if self.kind == "encoder":
            return self.run_layers(x, source, real_length_causal_mask(x_mask, x_mask), None, index)
        return self.run_layers(x, source, None, real_length_causal_mask(x_mask, source_mask), index)


def mult_init_(stacks: StackedTransformer) -> None:
    """MulT's ``Linear``/``MultiheadAttention`` init where the stacked defaults differ: Xavier-uniform attention
    output and feed-forward weights, zero biases (the packed Q/K/V init already is MulT's)."""
    for layer in stacks.layers:
        attention = layer.cross_attn if layer.cross_attn is not None else layer.self_attn
        for linear in (attention.out, layer.ff_in, layer.ff_out):
            _, fan_in, fan_out = linear.weight.shape
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            nn.init.uniform_(linear.weight, -bound, bound)
            nn.init.zeros_(linear.bias)


@register_fusion("mult")
class MultimodalTransformer(Fusion):
    """MulT (see the module docstring). Output ``[batch, n * (n - 1) * d_model]`` (180 at MulT's defaults).

    Defaults are MulT's (``main.py``, ``models.py``): ``d_model`` 30, ``num_heads`` 5, ``num_layers`` 5,
    ``dim_feedforward`` ``4 * d_model``, ``dropout`` (residual) 0.1, ``relu_dropout`` 0.1, ``embed_dropout`` 0.25,
    ``out_dropout`` 0.0, ``attn_dropouts`` one per modality (used where it is the source; modality 0's also in
    the memory stacks), default ``(0.1, 0.0, 0.0, ...)``, ``causal`` True.

    ``padding``: ``"reference"`` (default; MulT's code on its left-padded layout) or ``"masked"`` (padding
    masked; padding invariant), see the module docstring. ``padded_lengths`` (``"reference"`` only): the stored
    length every modality is left-padded to, an int for all or one per modality; None: each input's time
    length. Raises ``ValueError`` for an unknown ``padding``, ``padded_lengths`` that are not positive or not
    one per modality, or ``padded_lengths`` with ``padding="masked"``; at run time, for a sample with more real
    steps than its modality's ``padded_lengths``.
    """

    head = "linear"

    def __init__(
        self, dims: list[int], *, d_model: int = 30, num_heads: int = 5, num_layers: int = 5,
        dim_feedforward: int | None = None, dropout: float = 0.1, attn_dropouts: list[float] | None = None,
        relu_dropout: float = 0.1, embed_dropout: float = 0.25, out_dropout: float = 0.0, causal: bool = True,
        padding: str = "reference", padded_lengths: int | list[int] | None = None,
    ):
        super().__init__(dims)
        n = len(dims)
        if padding not in PADDINGS:
            raise ValueError(f"mult: padding must be one of {', '.join(map(repr, PADDINGS))}, got {padding!r}")
        if padded_lengths is not None:
            if padding != "reference":
                raise ValueError("mult: padded_lengths applies to padding='reference' only (masked padding has none)")
            if isinstance(padded_lengths, (list, tuple)):
                padded_lengths = list(padded_lengths)
            else:
                padded_lengths = [padded_lengths] * n
            valid = [isinstance(L, int) and not isinstance(L, bool) and L >= 1 for L in padded_lengths]
            if len(padded_lengths) != n or not all(valid):
                raise ValueError(
                    f"mult: padded_lengths must be a positive int or one per modality ({n}), got {padded_lengths}"
                )
        self.padding, self.padded_lengths = padding, padded_lengths
        if d_model < 4 or num_layers < 1:
            raise ValueError(
                f"mult needs d_model >= 4 (its position table divides by d_model // 2 - 1) and num_layers >= 1, "
                f"got d_model={d_model}, num_layers={num_layers}"
            )
        attn_dropouts = [0.1] + [0.0] * (n - 1) if attn_dropouts is None else [float(p) for p in attn_dropouts]
        if len(attn_dropouts) != n:
            raise ValueError(f"mult needs one attention dropout per modality ({n}), got attn_dropouts={attn_dropouts}")
        rates = [("dropout", dropout), ("relu_dropout", relu_dropout)]
        for name, p in rates + [(f"attn_dropouts[{i}]", p) for i, p in enumerate(attn_dropouts)]:
            if not 0.0 <= p < 1.0:
                raise ValueError(f"mult: {name} must lie in [0, 1), got {p}")
        self.d_model, self.memory_dim = d_model, (n - 1) * d_model
        self.dim_feedforward = dim_feedforward or 4 * d_model
        self.memory_feedforward = self.dim_feedforward * self.memory_dim // d_model
        self.out_dim = n * self.memory_dim

        self.projections = nn.ModuleList(
            nn.Identity() if dim == d_model else nn.Linear(dim, d_model, bias=False) for dim in dims
        )
        self.embed = MulTEmbedding(d_model)
        self.memory_embed = MulTEmbedding(self.memory_dim)
        self.embed_dropout = nn.Dropout(embed_dropout)
        layer = dict(norm_first=True, final_norm=True, causal=causal, activation="relu", ff_dropout=relu_dropout)
        by_dropout: dict[float, list[tuple[int, int]]] = {}  # stacks sharing an attention dropout run batched
        for i in range(n):
            for j in range(n):
                if j != i:  # target i attends to source j
                    by_dropout.setdefault(attn_dropouts[j], []).append((i, j))
        self.cross_pairs = list(by_dropout.values())
        self.cross = nn.ModuleList(
            CausalStacks(
                len(pairs), num_layers, d_model, num_heads, self.dim_feedforward, dropout, kind="cross",
                norm_source=True, attn_dropout=p, **layer,
            )
            for p, pairs in by_dropout.items()
        )
        self.memory = CausalStacks(
            n, max(num_layers, 3), self.memory_dim, num_heads, self.memory_feedforward, dropout, kind="encoder",
            attn_dropout=attn_dropouts[0], **layer,
        )
        for stacks in (*self.cross, self.memory):
            mult_init_(stacks)
        self.proj1 = nn.Linear(self.out_dim, self.out_dim)
        self.proj2 = nn.Linear(self.out_dim, self.out_dim)
        self.out_dropout = nn.Dropout(out_dropout)

    def check_inputs(self, xs: list[Tensor], masks: list[Tensor]) -> None:
        """The shared checks, and with fixed ``padded_lengths`` that no sample has more real steps than its
        modality's stored length (``ValueError`` naming the modality, its longest sample and the length)."""
        super().check_inputs(xs, masks)
        if self.padded_lengths is None:
            return
        longest = torch.stack([mask.sum(-1).max() for mask in masks]).tolist()  # one device sync
        for i, (steps, length) in enumerate(zip(longest, self.padded_lengths)):
            if steps > length:
                raise ValueError(
                    f"mult: modality {i} has a sample with {steps} real steps, more than padded_lengths[{i}]="
                    f"{length} (padding='reference' left-pads every sample to that stored length); give the "
                    "stored lengths of the data, or padding='masked'"
                )

    def project(self, xs: list[Tensor], masks: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Text dropout and the projections, laid out for the stacks: ``[batch, L_i, d_model]`` per modality
        and its mask ``[batch, L_i]``. ``"masked"``: the inputs' steps and masks. ``"reference"``: each modality
        left-padded to its stored length (``left_pad``) with every row a step (all-True masks), as MulT's code
        sees its pickles. The projection is bias-free and per step, so re-padding after it gives what
        projecting MulT's zero rows gives (zero rows), with a tenth of the copying for 300-d text."""
        xs = [self.embed_dropout(xs[0])] + list(xs[1:])
        projected = [proj(x) for proj, x in zip(self.projections, xs)]
        if self.padding == "masked":
            return projected, masks
        lengths = self.padded_lengths or [x.shape[1] for x in xs]
        projected = [left_pad(h, mask, length) for h, mask, length in zip(projected, masks, lengths)]
        return projected, [torch.ones(h.shape[:2], dtype=torch.bool, device=h.device) for h in projected]

    def positioned(self, h: Tensor, mask: Tensor) -> Tensor:
        """The steps of an encoder input ``h [batch, time, dim]`` that get a position: those whose first channel
        is not exactly 0 (fairseq's ``make_positions`` test, MulT's padding detector), and with ``"masked"``
        padding only real steps. ``[batch, time]`` bool."""
        return h[..., 0] != 0 if self.padding == "reference" else (h[..., 0] != 0) & mask

    def crossmodal(self, hs: list[Tensor], masks: list[Tensor]) -> dict[tuple[int, int], Tensor]:
        """Embeddings and every crossmodal stack on the sequences of ``project``: ``(i, j)`` ->
        ``[batch, L_i, d_model]`` (target ``i``'s sequence after attending to source ``j``)."""
        embedded = [self.embed(h, self.positioned(h, mask)) for h, mask in zip(hs, masks)]
        drop = self.embed_dropout
        crossed = {}
        for stacks, pairs in zip(self.cross, self.cross_pairs):
            outputs = stacks(
                [drop(embedded[i]) for i, _ in pairs], [masks[i] for i, _ in pairs],
                [drop(embedded[j]) for _, j in pairs], [masks[j] for _, j in pairs],
            )
            crossed.update(zip(pairs, outputs))
        return crossed

    def fuse(self, xs: list[Tensor], masks: list[Tensor]) -> FusionOutput:
        n = self.n_modalities
        hs, masks = self.project(xs, masks)
        crossed = self.crossmodal(hs, masks)
        per_target = [torch.cat([crossed[i, j] for j in range(n) if j != i], dim=-1) for i in range(n)]
        remembered = self.memory(
            [self.embed_dropout(self.memory_embed(h, self.positioned(h, mask))) for h, mask in zip(per_target, masks)],
            masks,
        )
        last = torch.cat([last_real_step(h, mask) for h, mask in zip(remembered, masks)], dim=-1)
        fused = last + self.proj2(self.out_dropout(F.relu(self.proj1(last))))
        return FusionOutput(fused=fused, states=[fused])

    def analytic_flops(self, seq_lens: list[int]) -> int:
        """Projections; per crossmodal layer Q, K/V, scores, weighted sum, output projection and feed-forward;
        the same per memory layer; the residual block. ``seq_lens``: each modality's steps (all real); with
        fixed ``padded_lengths`` the stacks run over those lengths instead."""
        d, f, m, fm = self.d_model, self.dim_feedforward, self.memory_dim, self.memory_feedforward
        seq_lens = self.padded_lengths or seq_lens
        flops = sum(2 * t * dim * d for t, dim in zip(seq_lens, self.dims) if dim != d)
        for stacks, pairs in zip(self.cross, self.cross_pairs):
            for i, j in pairs:
                ti, tj = seq_lens[i], seq_lens[j]
                layer = 2 * ti * d * d + 2 * tj * d * 2 * d + 4 * ti * tj * d + 2 * ti * d * d + 4 * ti * d * f
                flops += len(stacks.layers) * layer
        for t in seq_lens:
            flops += len(self.memory.layers) * (2 * t * m * 3 * m + 4 * t * t * m + 2 * t * m * m + 4 * t * m * fm)
        return flops + 2 * 2 * self.out_dim * self.out_dim

    @classmethod
    def search_space(cls, trial, modality_names: list[str]) -> dict:
        """Around MulT's code defaults (30-d, 5 heads, 5 layers, feed-forward 4x, residual dropout 0.1): d_model
        20-60 with 1, 2 or 5 heads (each divides every d_model and every ``(n - 1) * d_model`` memory), 1-5
        layers, feed-forward 1-4x, residual dropout 0-0.3; MulT's other dropouts stay at its defaults."""
        return transformer_space(trial, [20, 30, 40, 60], [1, 2, 5], max_layers=5)

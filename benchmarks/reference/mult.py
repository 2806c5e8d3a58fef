"""``mult`` against MulT's code: github.com/yaohungt/Multimodal-Transformer, ``src/models.py`` (``MULTModel``).

Both models at MulT's defaults (``main.py``: 30-d, 5 heads, 5 levels, attention dropout 0.1 for text and 0 for
audio and vision, ReLU and residual dropout 0.1, embedding dropout 0.25, output dropout 0, causal masks on),
MOSI's feature sizes (text 300, audio 5, vision 20, MulT's l, a, v) and one regression output; batch 32, 50
steps per modality (MulT's aligned MOSI pickle).

Input layouts:

- ``own``: MulT's pickles. Every modality stored at its length and left-padded: each sample's real steps (1 to
  50 of them, one sample full) last, zero rows before. MulT gets these tensors; ours gets the same data
  right-padded with masks (what the suite's loader makes of MulT's files) and, with ``padding="reference"``
  (its default), lays them out as MulT's files store them again.
- ``padded``: the same kind of data right-padded with true lengths. MulT has no masks, so it is told the
  true lengths the only way its code allows: each sample runs alone, cut to its real steps (no padding at
  all); ours runs the padded batch with ``padding="masked"``. This checks the masked mode, sample by sample.

Training step (timed, on the ``own`` batch): MulT's ``src/train.py`` objective and optimiser, the same for both
models: L1 loss, Adam (lr 1e-3), gradient norm clipped to 0.8.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace

import torch
from torch import Tensor, nn

from fusions import build_predictor
from fusions.mult import left_pad
from tasks import get_task

from . import LAYOUTS, Batch, ReferenceCheck, StateReader, register_reference

NAMES = ["l", "a", "v"]  # MulT's names of our modalities 0, 1, 2 (text, audio, vision)
DIMS = [300, 5, 20]
BATCH_SIZE, STEPS = 32, (50, 50, 50)
# MulT's main.py defaults (nlevels = layers), as attributes of its ``hyp_params``.
MULT_ARGS = dict(
    num_heads=5, layers=5, attn_dropout=0.1, attn_dropout_a=0.0, attn_dropout_v=0.0, relu_dropout=0.1,
    res_dropout=0.1, out_dropout=0.0, embed_dropout=0.25, attn_mask=True, lonly=True, aonly=True, vonly=True,
)
CLIP = 0.8  # main.py --clip
UNUSED = ("version", "embed_positions._float_tensor")  # buffers of MulT's encoders that hold no weights


def mult_hparams(dims: Sequence[int]) -> SimpleNamespace:
    """MulT's ``hyp_params`` for ``MULTModel`` at its defaults, feature sizes ``dims`` (l, a, v), 1 output."""
    return SimpleNamespace(orig_d_l=dims[0], orig_d_a=dims[1], orig_d_v=dims[2], output_dim=1, **MULT_ARGS)


def _encoder_layer(ref: Mapping[str, Tensor], prefix: str, dim: int, cross: bool) -> dict[str, Tensor]:
    """One MulT ``TransformerEncoderLayer`` (keys under ``prefix``) as one stack slice of our ``StackedLayer``.

    Our ``StackedLinear`` weights are ``[in, out]`` (``nn.Linear``'s transposed). MulT's packed in-projection
    ``[3d, d]`` (rows: query, key, value) becomes ``q`` and ``kv`` (crossmodal layers) or ``qkv`` (memory);
    ``fc1`` / ``fc2`` are ``ff_in`` / ``ff_out``; ``layer_norms.0`` (which MulT also applies to key and value)
    is the attention norm, ``layer_norms.1`` the feed-forward norm."""
    weight, bias = ref[prefix + "self_attn.in_proj_weight"], ref[prefix + "self_attn.in_proj_bias"]
    attention = "cross_attn" if cross else "self_attn"
    if cross:
        mapped = {"cross_attn.q.weight": weight[:dim].T, "cross_attn.q.bias": bias[:dim],
                  "cross_attn.kv.weight": weight[dim:].T, "cross_attn.kv.bias": bias[dim:]}
    else:
        mapped = {"self_attn.qkv.weight": weight.T, "self_attn.qkv.bias": bias}
    for ours, theirs in ((f"{attention}.out", "self_attn.out_proj"), ("ff_in", "fc1"), ("ff_out", "fc2")):
        mapped[f"{ours}.weight"] = ref[f"{prefix}{theirs}.weight"].T
        mapped[f"{ours}.bias"] = ref[f"{prefix}{theirs}.bias"]
    for ours, theirs in (("norm_cross" if cross else "norm_self", "layer_norms.0"), ("norm_ff", "layer_norms.1")):
        for kind in ("weight", "bias"):
            mapped[f"{ours}.{kind}"] = ref[f"{prefix}{theirs}.{kind}"]
    return mapped


def _stack(ref: Mapping[str, Tensor], encoders: Sequence[str], dim: int, cross: bool, into: str) -> dict:
    """MulT's ``TransformerEncoder``s named ``encoders`` as the stacks (in that order) of our stacked module
    ``into``: per layer and key the encoders' slices stacked on a leading dimension, and the final norms."""
    layers = sum(1 for key in ref if key.startswith(f"{encoders[0]}.layers.") and key.endswith(".fc1.weight"))
    if not layers:
        raise ValueError(f"reference state dict has no {encoders[0]}.layers.*.fc1.weight (not MulT's layout?)")
    out = {}
    for layer in range(layers):
        slices = [_encoder_layer(ref, f"{name}.layers.{layer}.", dim, cross) for name in encoders]
        for key in slices[0]:
            out[f"{into}.layers.{layer}.{key}"] = torch.stack([s[key] for s in slices])
    for kind in ("weight", "bias"):
        out[f"{into}.final_norm.{kind}"] = torch.stack([ref[f"{name}.layer_norm.{kind}"] for name in encoders])
    return out


def map_weights(
    reference: Mapping[str, Tensor], cross_pairs: Sequence[Sequence[tuple[int, int]]]
) -> dict[str, Tensor]:
    """MulT's ``MULTModel`` state dict (three modalities l, a, v) as the state dict of our ``mult`` predictor;
    a pure function (tensors are shared, sliced or stacked, never changed).

    ``cross_pairs``: our fusion's ``cross_pairs`` (per crossmodal stack group, the ``(target, source)`` pairs
    it holds, in order), since ours groups pairs by attention dropout. ``trans_{t}_with_{s}`` becomes pair
    ``(t, s)`` of its group, ``trans_{t}_mem`` stack ``t`` of ``fusion.memory``; ``proj_{x}``'s ``Conv1d``
    kernel ``[d, dim, 1]`` becomes the ``Linear`` weight ``[d, dim]`` (left out where ``dim == d``: MulT
    builds that conv and never uses it, ours has no projection there); ``proj1`` / ``proj2`` are the same;
    ``out_layer`` is the predictor's ``head``. Raises ``ValueError`` naming the key when a key is missing or a
    weight is left unmapped (not MulT's layout).
    """
    seen = StateReader(reference, "MulT's layout")
    out: dict[str, Tensor] = {}
    for i, name in enumerate(NAMES):
        kernel = seen[f"proj_{name}.weight"]
        if kernel.shape[0] != kernel.shape[1]:
            out[f"fusion.projections.{i}.weight"] = kernel[..., 0]
    d = seen["proj_l.weight"].shape[0]
    for group, pairs in enumerate(cross_pairs):
        encoders = [f"trans_{NAMES[t]}_with_{NAMES[s]}" for t, s in pairs]
        out.update(_stack(seen, encoders, d, cross=True, into=f"fusion.cross.{group}"))
    out.update(_stack(seen, [f"trans_{name}_mem" for name in NAMES], 2 * d, cross=False, into="fusion.memory"))
    for ours, theirs in (("fusion.proj1", "proj1"), ("fusion.proj2", "proj2"), ("head", "out_layer")):
        for kind in ("weight", "bias"):
            out[f"{ours}.{kind}"] = seen[f"{theirs}.{kind}"]
    seen.check_all_read(ignore=UNUSED)
    return out


def contiguous_positions(models: ModuleType) -> None:
    """Let MulT's code (written for PyTorch 1.0) run on today's PyTorch, changing no value it computes.

    Its ``modules/position_embedding.py`` ends with ``positions.view(-1)`` on what ``make_positions`` returns, a
    ``clone`` of the transposed first input channel; today's ``clone`` keeps transposed strides where they are
    dense (the memory encoders' inputs), and ``view`` refuses them. ``make_positions`` in that module (found
    through the imported ``models`` module's ``TransformerEncoder``) is wrapped to return its result as a
    contiguous tensor (the same numbers); nothing else of the checkout is touched, nothing of it is copied.
    Raises ``ValueError`` when ``models`` is not built that way (not MulT's code)."""
    try:
        embedding = models.TransformerEncoder.__init__.__globals__["SinusoidalPositionalEmbedding"]
        namespace = embedding.forward.__globals__
        original = namespace["make_positions"]
    except (AttributeError, KeyError) as error:
        raise ValueError(f"{models.__file__}: not MulT's code (no TransformerEncoder with fairseq's "
                         f"SinusoidalPositionalEmbedding and make_positions: {error!r})") from None
    if getattr(original, "contiguous_wrapper", False):
        return

    def make_positions(*args, **kwargs) -> Tensor:
        return original(*args, **kwargs).contiguous()

    make_positions.contiguous_wrapper = True
    namespace["make_positions"] = make_positions


@dataclass
class MulTBatch(Batch):
    """A ``Batch`` that also says which ``padding`` mode of ours reads it (``"reference"`` for the ``own``
    layout, ``"masked"`` for ``padded``); ``reference`` holds MulT's ``forward`` arguments ``(x_l, x_a, x_v)``,
    or for ``padded`` one such tuple per sample, cut to its real steps."""

    padding: str = "reference"


def make_batch(
    layout: str, seed: int, device: torch.device, steps: Sequence[int] = STEPS, batch_size: int = BATCH_SIZE,
    dims: Sequence[int] = DIMS,
) -> MulTBatch:
    """A seeded batch in ``layout`` (``own`` or ``padded``, see the module docstring): modality ``i`` stored at
    ``steps[i]`` steps, true lengths drawn from 1 to ``steps[i]`` (sample 0 full), normal features on real
    steps and zero rows on padding. Raises ``ValueError`` for an unknown layout."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    generator = torch.Generator().manual_seed(seed)
    xs, masks = [], []
    for dim, length in zip(dims, steps):
        true = torch.randint(1, length + 1, (batch_size,), generator=generator)
        true[0] = length
        mask = torch.arange(length).unsqueeze(0) < true.unsqueeze(1)
        xs.append(torch.randn(batch_size, length, dim, generator=generator) * mask.unsqueeze(-1))
        masks.append(mask)
    target = torch.rand(batch_size, generator=generator) * 6 - 3
    if layout == "own":
        reference = tuple(left_pad(x, mask, x.shape[1]).to(device) for x, mask in zip(xs, masks))
    else:
        reference = tuple(
            tuple(x[b:b + 1, :int(mask[b].sum())].to(device) for x, mask in zip(xs, masks))
            for b in range(batch_size)
        )
    return MulTBatch(
        reference, [x.to(device) for x in xs], [m.to(device) for m in masks], target.to(device),
        padding="reference" if layout == "own" else "masked",
    )


@register_reference("mult")
class MulTReference(ReferenceCheck):
    flag, env = "--mult-repo", "FUSIONBENCH_MULT_REPO"
    url = "https://github.com/yaohungt/Multimodal-Transformer"
    model_file = "src/models.py"
    own_layout = "left-padded to the stored length, no masks (MulT's pickles)"

    def __init__(self, repo: str | Path):
        super().__init__(repo)
        if not hasattr(self.module, "MULTModel"):
            raise ValueError(f"{self.flag} {repo}: {self.model_file} defines no MULTModel; expected a checkout of "
                             f"{self.url}")
        contiguous_positions(self.module)

    def build(self, seed: int, device: torch.device) -> tuple[nn.Module, nn.Module]:
        torch.manual_seed(seed)
        reference = self.module.MULTModel(mult_hparams(DIMS))
        ours = build_predictor("mult", DIMS, task="regression")  # its defaults are MulT's
        ours.load_state_dict(map_weights(reference.state_dict(), ours.fusion.cross_pairs))
        return reference.to(device), ours.to(device)

    def batch(self, layout: str, seed: int, device: torch.device) -> Batch:
        return make_batch(layout, seed, device)

    def reference_output(self, model: nn.Module, batch: Batch) -> Tensor:
        if batch.padding == "reference":
            return model(*batch.reference)[0]
        return torch.cat([model(*sample)[0] for sample in batch.reference])

    def our_output(self, model: nn.Module, batch: Batch) -> Tensor:
        model.fusion.padding = batch.padding  # the same weights, read in the batch's padding mode
        return model(batch.xs, batch.masks).output

    def training_steps(
        self, reference: nn.Module, ours: nn.Module, batch: Batch
    ) -> tuple[Callable[[], None], Callable[[], None]]:
        def step(model: nn.Module, output: Callable[[nn.Module, Batch], Tensor]) -> Callable[[], None]:
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

            def run() -> None:
                optimizer.zero_grad(set_to_none=True)
                get_task("sentiment").loss(output(model, batch), batch.target).backward()
                nn.utils.clip_grad_norm_(model.parameters(), max_norm=CLIP)
                optimizer.step()

            return run

        return step(reference, self.reference_output), step(ours, self.our_output)

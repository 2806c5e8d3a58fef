"""``grf`` against the authors' code: github.com/yushi2006/GRF, ``src/model.py`` (``HierarchicalFusionModel``).

Both models at the GRF paper's MOSI settings (d_model 64, 4 heads, 4 decoder layers per stack, feed-forward
256, dropout 0.2, auxiliary weight 0.4), MOSI's feature sizes (text 300, audio 5, vision 20) and the authors'
order (text, vision, audio); batch 32, 50 steps per modality.

Input layouts: ``own`` is the authors' data layout, every sample as long as the padded length (their loader
gives every sample the padded length, so padding rows count as real steps; ours gets all-True masks);
``padded`` is right-padded with true lengths from 1 to 50 and zero padding rows, the reference given the true
lengths (its ``forward`` takes them and masks attention and pooling by them), ours the masks.

Training step (timed): AdamW (lr 1e-3, weight decay 1e-2), L1 loss plus 0.4 times the auxiliary head's L1 loss,
gradient norm clipped to 1.0, as the authors' ``src/engine.py``; the same for both models.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace

import torch
from torch import Tensor, nn

from fusions import build_predictor
from tasks import get_task

from . import LAYOUTS, Batch, ReferenceCheck, StateReader, register_reference

NAMES = ["text", "audio", "vision"]  # our modality order
DIMS = [300, 5, 20]
ORDER = ["text", "vision", "audio"]  # the authors' MOSI order (their config.json)
HPARAMS = dict(d_model=64, num_heads=4, num_layers=4, dim_feedforward=256, dropout=0.2, aux_weight=0.4)
BATCH_SIZE, STEPS = 32, 50
STACKS = ("decoder_1", "decoder_2")  # the authors' stack A (target: the state) and stack B (target: the modality)


def _layer_weights(ref: Mapping[str, Tensor], prefix: str, dim: int) -> dict[str, Tensor]:
    """One ``nn.TransformerDecoderLayer`` (keys under ``prefix``) as one stack slice of our ``StackedLayer``:
    our ``StackedLinear`` weights are ``[in, out]`` (``nn.Linear``'s transposed); the cross-attention's packed
    in-projection splits into our ``q`` and ``kv``; ``norm1/2/3`` are our self, cross and feed-forward norms."""
    cross_w, cross_b = ref[prefix + "multihead_attn.in_proj_weight"], ref[prefix + "multihead_attn.in_proj_bias"]
    mapped = {
        "self_attn.qkv.weight": ref[prefix + "self_attn.in_proj_weight"].T,
        "self_attn.qkv.bias": ref[prefix + "self_attn.in_proj_bias"],
        "cross_attn.q.weight": cross_w[:dim].T,
        "cross_attn.q.bias": cross_b[:dim],
        "cross_attn.kv.weight": cross_w[dim:].T,
        "cross_attn.kv.bias": cross_b[dim:],
    }
    for ours, theirs in (("self_attn.out", "self_attn.out_proj"), ("cross_attn.out", "multihead_attn.out_proj"),
                         ("ff_in", "linear1"), ("ff_out", "linear2")):
        mapped[f"{ours}.weight"] = ref[f"{prefix}{theirs}.weight"].T
        mapped[f"{ours}.bias"] = ref[f"{prefix}{theirs}.bias"]
    for ours, theirs in (("norm_self", "norm1"), ("norm_cross", "norm2"), ("norm_ff", "norm3")):
        for kind in ("weight", "bias"):
            mapped[f"{ours}.{kind}"] = ref[f"{prefix}{theirs}.{kind}"]
    return mapped


def map_weights(reference: Mapping[str, Tensor], names: Sequence[str]) -> dict[str, Tensor]:
    """The authors' ``HierarchicalFusionModel`` state dict as the state dict of our ``grf`` predictor (fusion,
    head, auxiliary head) for modalities ``names`` in our order; a pure function (tensors are shared or
    sliced, not copied).

    Per step ``i`` and layer ``l``, ``decoder_1`` / ``decoder_2`` become stack 0 / 1 of ``fusion.steps.i``;
    ``gfus.i``'s separate gate and candidate maps become our packed ``gates`` (gate rows first); the position
    tables (``pos_encoder.pe``) are not weights and are left out (ours recomputes the same table). Raises
    ``ValueError`` naming the key when a key is missing or a key is left unmapped (not the authors' layout).
    """
    steps = sum(1 for key in reference if key.startswith("gfus.") and key.endswith(".norm.weight"))
    layers = sum(1 for key in reference
                 if key.startswith("fusion_encoders.0.decoder_1.layers.") and key.endswith(".norm1.weight"))
    if not steps or not layers:
        raise ValueError("not the authors' GRF state dict: no gfus.*.norm.weight or "
                         "fusion_encoders.0.decoder_1.layers.*.norm1.weight keys")
    dim = reference["gfus.0.norm.weight"].shape[0]
    seen = StateReader(reference, "the authors' GRF layout")
    out: dict[str, Tensor] = {}
    for i, name in enumerate(names):
        for kind in ("weight", "bias"):
            out[f"fusion.projections.{i}.{kind}"] = seen[f"projectors.{name}.{kind}"]
    for step in range(steps):
        for layer in range(layers):
            slices = [_layer_weights(seen, f"fusion_encoders.{step}.{stack}.layers.{layer}.", dim) for stack in STACKS]
            for key in slices[0]:
                out[f"fusion.steps.{step}.layers.{layer}.{key}"] = torch.stack([s[key] for s in slices])
        gfu = f"gfus.{step}."
        for kind in ("weight", "bias"):
            out[f"fusion.gates.{step}.gates.{kind}"] = torch.cat(
                [seen[f"{gfu}linear_gate.{kind}"], seen[f"{gfu}linear_candidate.{kind}"]])
            out[f"fusion.gates.{step}.norm.{kind}"] = seen[f"{gfu}norm.{kind}"]
    for ours, theirs in (("head", "regressor"), ("aux_head", "auxiliary_regressor")):
        for index in (0, 3):  # Linear, ReLU, Dropout, Linear
            for kind in ("weight", "bias"):
                out[f"{ours}.{index}.{kind}"] = seen[f"{theirs}.regressor.{index}.{kind}"]
    seen.check_all_read(ignore=("pos_encoder.pe",))
    return out


@register_reference("grf")
class GRFReference(ReferenceCheck):
    flag, env = "--grf-repo", "FUSIONBENCH_GRF_REPO"
    url = "https://github.com/yushi2006/GRF"
    model_file = "src/model.py"
    own_layout = "full length (the authors' loader: every step real)"

    def build(self, seed: int, device: torch.device) -> tuple[nn.Module, nn.Module]:
        torch.manual_seed(seed)
        config = {"order": ORDER, "model": {
            "d_model": HPARAMS["d_model"], "num_heads": HPARAMS["num_heads"], "num_layers": HPARAMS["num_layers"],
            "d_ffn": HPARAMS["dim_feedforward"], "dropout": HPARAMS["dropout"],
            "aux_loss_weight": HPARAMS["aux_weight"]}}
        # The model reads only ``features.shape[-1]`` of each modality's training data.
        info = {name: SimpleNamespace(features=torch.empty(0, 0, dim)) for name, dim in zip(NAMES, DIMS)}
        reference = self.module.HierarchicalFusionModel(config, info)
        ours = build_predictor("grf", DIMS, task="regression", order=[NAMES.index(n) for n in ORDER], **HPARAMS)
        ours.load_state_dict(map_weights(reference.state_dict(), NAMES))
        return reference.to(device), ours.to(device)

    def batch(self, layout: str, seed: int, device: torch.device) -> Batch:
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        generator = torch.Generator().manual_seed(seed)
        xs, masks = [], []
        for dim in DIMS:
            if layout == "own":
                true = torch.full((BATCH_SIZE,), STEPS)
            else:  # right-padded, one full-length sample
                true = torch.randint(1, STEPS + 1, (BATCH_SIZE,), generator=generator)
                true[0] = STEPS
            mask = torch.arange(STEPS).unsqueeze(0) < true.unsqueeze(1)
            xs.append((torch.randn(BATCH_SIZE, STEPS, dim, generator=generator) * mask.unsqueeze(-1)).to(device))
            masks.append(mask.to(device))
        # The reference's forward: (features, lengths [batch] int64) per modality, in its order.
        reference = tuple(t for name in ORDER for t in (xs[NAMES.index(name)], masks[NAMES.index(name)].sum(-1)))
        target = (torch.rand(BATCH_SIZE, generator=generator) * 6 - 3).to(device)
        return Batch(reference, xs, masks, target)

    def reference_output(self, model: nn.Module, batch: Batch) -> Tensor:
        return torch.cat(model(*batch.reference), dim=1)

    def our_output(self, model: nn.Module, batch: Batch) -> Tensor:
        prediction = model(batch.xs, batch.masks)
        return torch.cat([prediction.output, prediction.aux_output], dim=1)

    def training_steps(
        self, reference: nn.Module, ours: nn.Module, batch: Batch
    ) -> tuple[Callable[[], None], Callable[[], None]]:
        def step(model: nn.Module, output: Callable[[nn.Module, Batch], Tensor]) -> Callable[[], None]:
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)

            def run() -> None:
                optimizer.zero_grad(set_to_none=True)
                main, aux = output(model, batch).split(1, dim=1)
                task_loss = get_task("sentiment").loss
                loss = task_loss(main, batch.target)
                (loss + HPARAMS["aux_weight"] * task_loss(aux, batch.target)).backward()
                nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
                optimizer.step()

            return run

        return step(reference, self.reference_output), step(ours, self.our_output)

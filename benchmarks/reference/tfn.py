"""``tfn`` against the LMF authors' TFN code: github.com/Justin1904/TensorFusionNetworks, ``model.py`` (``TFN``).

The reference is built as that repository's ``train.py`` builds it: ``TFN(dims, (4, 16, 128), 64, (0.3, 0.3, 0.3,
0.3), 32)`` (audio and vision subnetworks of 4 and 16 units, a 128-unit text LSTM into 64, post-fusion width 32,
output ``sigmoid(y) * 6 - 3``), at MOSI's feature sizes of this suite (text 300, audio 5, vision 20). Ours is
``tfn`` with the ``paper`` preset's MOSI hyperparameters (so the check also proves that preset); batch 32,
20 steps per modality (the scripts' ``max_len``).

Input layouts (shared with ``benchmarks.reference.lmf``, whose model takes the same inputs):

- ``own``: the scripts' data: every modality left-padded with zero rows to 20 steps (the CMU SDK's ``pad``: each
  sample's real steps last), audio and vision then averaged over all 20 rows into one vector per sample (TFN's
  ``train.py``; LMF's pickles store them so), text read whole. Ours gets the same tensors, audio and vision as
  sequences of one step, text with every row marked real (as the authors' loader presents them), so its LSTM
  reads the same rows.
- ``padded``: right-padded with true lengths (1 to 20, drawn per modality; sample 0 full) and zero rows after.
  The reference has no masks, so it is told the true lengths the only way its code allows: each sample runs
  alone, cut to its real steps (audio and vision averaged over those), as a batch of two copies (its
  ``squeeze()`` drops the batch dimension of a batch of one). Ours runs the padded batch with masks.

Weights: the reference's own initialisation, except that its BatchNorm layers (freshly built: weight 1, bias 0,
running mean 0, variance 1) get random affine weights and running statistics, so that a misplaced statistic
shows in the eval outputs.

Training step (timed, on the ``own`` batch): ``train.py``'s objective and optimiser for both: L1 loss summed
over the batch, Adam at its default learning rate 1e-3, no clipping.
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fusions import build_predictor

from ..config import load_preset, merge_layers, resolve
from ..train import resolve_hparams
from . import LAYOUTS, Batch, ReferenceCheck, StateReader, register_reference

NAMES = ["text", "audio", "vision"]  # our modality order (MOSI's)
DIMS = [300, 5, 20]
REFERENCE_NAMES = ["text", "audio", "video"]  # the authors' names of our modalities 0, 1, 2
REFERENCE_ORDER = ["audio", "video", "text"]  # the order of their forward's arguments and of their tensor product
BATCH_SIZE, STEPS = 32, 20
LR = 1e-3
# train.py: TFN(input_dims, (4, 16, 128), 64, (0.3, 0.3, 0.3, 0.3), 32)
TFN_ARGS = dict(hidden_dims=(4, 16, 128), text_out=64, dropouts=(0.3, 0.3, 0.3, 0.3), post_fusion_dim=32)
LABEL_RANGE = (-3.0, 3.0)  # MOSI sentiment's, which our tfn's output is bounded to


def paper_hparams(fusion: str) -> dict:
    """``fusion``'s hyperparameters in the ``paper`` preset on MOSI, per-modality tables as lists in our order."""
    config = merge_layers([("preset 'paper'", load_preset("paper"))])
    return resolve_hparams(resolve(config, fusion, {"name": "mosi"}).hparams, NAMES)


def is_lstm(ref: StateReader, prefix: str) -> bool:
    """Whether the authors' subnetwork under ``prefix`` is their ``TextSubNet`` (an LSTM) or their ``SubNet``."""
    return f"{prefix}rnn.weight_ih_l0" in ref.state


def subnetwork_weights(ref: StateReader, prefix: str, into: str) -> dict[str, Tensor]:
    """One of the authors' subnetworks (keys under ``prefix``, e.g. ``"text_subnet."``) as our subnetwork's
    state (keys under ``into``): ``TextSubNet`` (``rnn``, ``linear_1``) as our ``LSTMSubnetwork`` (``lstm``,
    ``out``); ``SubNet`` (``norm``, ``linear_1..3``) as our ``MeanSubnetwork`` (``norm``, ``layers.0..2``)."""
    if is_lstm(ref, prefix):
        pairs = [(f"lstm.{kind}_{part}_l0", f"rnn.{kind}_{part}_l0") for kind in ("weight", "bias")
                 for part in ("ih", "hh")]
        pairs += [(f"out.{kind}", f"linear_1.{kind}") for kind in ("weight", "bias")]
    else:
        pairs = [(f"norm.{key}", f"norm.{key}")
                 for key in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
        pairs += [(f"layers.{k}.{kind}", f"linear_{k + 1}.{kind}") for k in range(3) for kind in ("weight", "bias")]
    return {f"{into}{ours}": ref[f"{prefix}{theirs}"] for ours, theirs in pairs}


def subnetwork_width(ref: StateReader, prefix: str) -> int:
    """The output width of the authors' subnetwork under ``prefix`` (its last layer's output size)."""
    last = "linear_1" if is_lstm(ref, prefix) else "linear_3"
    return ref[f"{prefix}{last}.weight"].shape[0]


def map_weights(
    reference: Mapping[str, Tensor], names: Sequence[str] = REFERENCE_NAMES,
    bounds: tuple[float, float] = LABEL_RANGE,
) -> dict[str, Tensor]:
    """The authors' ``TFN`` state dict as the state dict of our ``tfn`` predictor for modalities ``names`` (the
    authors' name of each of ours, in our order); a pure function (tensors are shared or permuted, not changed).

    ``{name}_subnet`` becomes ``fusion.subnetworks.nets.{i}`` (see ``subnetwork_weights``); the post-fusion
    layers 1, 2 and 3 become ``fusion.post_fusion.1``, ``.3`` and ``fusion.output``, the columns of the first
    reordered from the authors' tensor product (audio, video, text; each ``[1; h]``) to ours (our modality
    order). Their fixed ``output_range`` / ``output_shift`` (6 and -3) must describe ours, ``sigmoid(y) *
    (high - low) + low`` for ``bounds = (low, high)``. Raises ``ValueError`` naming the key when a key is missing,
    a weight is left unmapped or the output constants differ (not the authors' TFN).
    """
    seen = StateReader(reference, "the authors' TFN layout")
    out: dict[str, Tensor] = {}
    for i, name in enumerate(names):
        out.update(subnetwork_weights(seen, f"{name}_subnet.", f"fusion.subnetworks.nets.{i}."))
    sizes = {name: subnetwork_width(seen, f"{name}_subnet.") + 1 for name in REFERENCE_ORDER}
    first = seen["post_fusion_layer_1.weight"]
    permuted = first.reshape(first.shape[0], *(sizes[name] for name in REFERENCE_ORDER))
    permuted = permuted.permute(0, *(1 + REFERENCE_ORDER.index(name) for name in names)).reshape(first.shape[0], -1)
    out["fusion.post_fusion.1.weight"] = permuted
    out["fusion.post_fusion.1.bias"] = seen["post_fusion_layer_1.bias"]
    for ours, theirs in (("fusion.post_fusion.3", "post_fusion_layer_2"), ("fusion.output", "post_fusion_layer_3")):
        for kind in ("weight", "bias"):
            out[f"{ours}.{kind}"] = seen[f"{theirs}.{kind}"]
    scale, shift = float(seen["output_range"]), float(seen["output_shift"])
    low, high = bounds
    if (scale, shift) != (high - low, low):
        raise ValueError(f"the reference's output is sigmoid(y) * {scale:g} + {shift:g}, not ours bounded to "
                         f"[{low:g}, {high:g}] (sigmoid(y) * {high - low:g} + {low:g})")
    seen.check_all_read()
    return out


def randomise_batchnorm(model: nn.Module, seed: int) -> None:
    """Random affine weights and running statistics for every ``BatchNorm1d`` of ``model`` (seeded), so that
    their mapping is tested by the eval outputs; a fresh BatchNorm is the identity up to its epsilon."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d):
                shape = module.running_mean.shape
                module.weight.copy_(1 + 0.3 * torch.randn(shape, generator=generator))
                module.bias.copy_(0.3 * torch.randn(shape, generator=generator))
                module.running_mean.copy_(0.1 * torch.randn(shape, generator=generator))
                module.running_var.copy_(0.03 + 0.07 * torch.rand(shape, generator=generator))


def make_batch(layout: str, seed: int, device: torch.device, batch_size: int = BATCH_SIZE,
               steps: int = STEPS) -> Batch:
    """A seeded batch in ``layout`` (see the module docstring). ``reference``: for ``own`` the arguments
    ``(audio [b, dim], video [b, dim], text [b, steps, dim])`` of the authors' ``forward``; for ``padded`` one
    such tuple per sample (two copies of the sample, cut to its real steps). Raises ``ValueError`` for an
    unknown layout."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    generator = torch.Generator().manual_seed(seed)
    xs, masks = [], []
    for name, dim in zip(REFERENCE_NAMES, DIMS):
        true = torch.randint(1, steps + 1, (batch_size,), generator=generator)
        true[0] = steps
        real = torch.arange(steps).unsqueeze(0) < true.unsqueeze(1)
        if layout == "own":  # the real steps last, zero rows before; every row a step
            real = real.flip(1)
        x = torch.randn(batch_size, steps, dim, generator=generator) * real.unsqueeze(-1)
        if layout == "own" and name != "text":  # the authors' average over every stored row, one vector a sample
            x = x.mean(1, keepdim=True)
        xs.append(x)
        masks.append(torch.ones(x.shape[:2], dtype=torch.bool) if layout == "own" else real)
    target = torch.rand(batch_size, generator=generator) * 6 - 3
    xs, masks = [x.to(device) for x in xs], [mask.to(device) for mask in masks]
    if layout == "own":
        reference = reference_arguments(xs)
    else:
        reference = tuple(reference_arguments([x[b, mask[b]].repeat(2, 1, 1) for x, mask in zip(xs, masks)])
                          for b in range(batch_size))
    return Batch(reference, xs, masks, target.to(device))


def reference_arguments(xs: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """The authors' ``forward`` arguments from our modalities ``xs`` (``[batch, time, dim]``, our order): audio
    and video averaged over time, text as it is, in their order."""
    return tuple(xs[REFERENCE_NAMES.index(name)] if name == "text" else xs[REFERENCE_NAMES.index(name)].mean(1)
                 for name in REFERENCE_ORDER)


def l1_sum(output: Tensor, target: Tensor) -> Tensor:
    """The authors' ``nn.L1Loss(size_average=False)``: the absolute errors summed over the batch."""
    return F.l1_loss(output.view(-1), target, reduction="sum")


class AuthorsCheck(ReferenceCheck):
    """What the TFN and LMF checks share: their models take ``(audio, video, text)`` and return ``[batch, 1]``;
    the batches of ``make_batch``; a training step of L1 summed over the batch with Adam."""

    own_layout = "text left-padded to 20 rows; audio and vision averaged over those rows (the authors' scripts)"

    def build_reference(self, name: str, *args, **kwargs) -> nn.Module:
        """The checkout's model class ``name`` built with these arguments, without the warnings its 2018 code
        raises on today's PyTorch (the deprecated ``xavier_normal``; an LSTM dropout with one layer, which has
        no effect)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (UserWarning, FutureWarning, DeprecationWarning))
            return getattr(self.module, name)(*args, **kwargs)

    def batch(self, layout: str, seed: int, device: torch.device) -> Batch:
        return make_batch(layout, seed, device)

    def reference_output(self, model: nn.Module, batch: Batch) -> Tensor:
        if isinstance(batch.reference[0], Tensor):
            return model(*batch.reference)
        return torch.cat([model(*sample)[:1] for sample in batch.reference])

    def our_output(self, model: nn.Module, batch: Batch) -> Tensor:
        return model(batch.xs, batch.masks).output

    @abstractmethod
    def optimisers(self, reference: nn.Module, ours: nn.Module) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        """The reference code's optimiser for each model: ``(reference's, ours)``."""

    def training_steps(
        self, reference: nn.Module, ours: nn.Module, batch: Batch
    ) -> tuple[Callable[[], None], Callable[[], None]]:
        def step(model: nn.Module, optimizer, output: Callable[[nn.Module, Batch], Tensor]) -> Callable[[], None]:
            def run() -> None:
                optimizer.zero_grad(set_to_none=True)
                l1_sum(output(model, batch), batch.target).backward()
                optimizer.step()

            return run

        reference_optimizer, our_optimizer = self.optimisers(reference, ours)
        return step(reference, reference_optimizer, self.reference_output), step(ours, our_optimizer, self.our_output)


@register_reference("tfn")
class TFNReference(AuthorsCheck):
    flag, env = "--tfn-repo", "FUSIONBENCH_TFN_REPO"
    url = "https://github.com/Justin1904/TensorFusionNetworks"
    model_file = "model.py"

    def __init__(self, repo):
        super().__init__(repo)
        if not hasattr(self.module, "TFN"):
            raise ValueError(f"{self.flag} {repo}: {self.model_file} defines no TFN; expected a checkout of "
                             f"{self.url}")

    def build(self, seed: int, device: torch.device) -> tuple[nn.Module, nn.Module]:
        torch.manual_seed(seed)
        dims = {name: DIMS[REFERENCE_NAMES.index(name)] for name in REFERENCE_ORDER}
        reference = self.build_reference("TFN", tuple(dims.values()), **TFN_ARGS)
        randomise_batchnorm(reference, seed)
        ours = build_predictor("tfn", DIMS, task="regression", task_label_range=LABEL_RANGE, **paper_hparams("tfn"))
        ours.load_state_dict(map_weights(reference.state_dict(), REFERENCE_NAMES, ours.fusion.bounds))
        return reference.to(device), ours.to(device)

    def optimisers(self, reference: nn.Module, ours: nn.Module):
        # train.py: Adam over every parameter but the first two (its fixed output range and shift)
        return (torch.optim.Adam(list(reference.parameters())[2:], lr=LR),
                torch.optim.Adam(ours.param_groups(LR), lr=LR))

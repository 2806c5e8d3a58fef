"""Shape-only counts of a fusion (parameters, FLOPs, saved-activation bytes) from a run on the ``meta`` device;
conventions in the package docstring."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from fusions import Fusion

COUNT_BATCH = 2  # FLOPs are counted on a batch of 2 and divided: per-sample, and no batch-of-one special case


def make_inputs(
    dims: list[int], seq_lens: list[int], batch_size: int, device: torch.device | str = "cpu", seed: int = 0,
) -> tuple[list[Tensor], list[Tensor]]:
    """Random modalities ``[batch, seq_lens[i], dims[i]]`` with all-True masks (every step real, the case the
    analytic FLOP formulas describe). On ``meta`` the tensors have shapes only."""
    device = torch.device(device)
    if device.type == "meta":
        xs = [torch.empty(batch_size, length, dim, device=device) for length, dim in zip(seq_lens, dims)]
    else:
        generator = torch.Generator().manual_seed(seed)
        xs = [torch.randn(batch_size, length, dim, generator=generator).to(device) for length, dim in
              zip(seq_lens, dims)]
    masks = [torch.ones(batch_size, length, dtype=torch.bool, device=device) for length in seq_lens]
    return xs, masks


def count_params(module: nn.Module) -> int:
    """Number of parameters (shared tensors counted once)."""
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())


def training_loss(output: Tensor) -> Tensor:
    """The loss of a cost-measurement training step: ``mean(output^2)`` (a scalar; its FLOPs are not counted)."""
    return output.float().square().mean()


@dataclass
class Counts:
    """Shape-only counts for one fusion and input shape (from a ``meta`` run).

    ``params``: parameters. ``flops`` / ``train_flops``: forward / forward+backward FLOPs per sample (see the
    module docstring). ``saved_bytes_per_sample``: bytes of the activations autograd saves for the backward
    pass, per sample (the bulk of a training step's memory). ``where``: ``"meta"``, or ``"cpu"`` when the
    fusion could not run on ``meta`` (e.g. it reads tensor values) and was counted on real tensors.
    """

    params: int
    flops: int
    train_flops: int
    saved_bytes_per_sample: int
    where: str = "meta"

    def estimate_train_bytes(self, batch_size: int, input_bytes: int = 0) -> int:
        """Estimated peak bytes of one training step: parameters, gradients and Adam's two moments
        (``4 x 4`` bytes per float32 parameter), the saved activations, and the inputs."""
        return 16 * self.params + self.saved_bytes_per_sample * batch_size + input_bytes


def storage_key(t: Tensor) -> tuple:
    storage = t.untyped_storage()
    return (storage._cdata, storage.nbytes()) if t.device.type == "meta" else (storage.data_ptr(), storage.nbytes())


def _run_counts(build: Callable[[], Fusion], dims, seq_lens, device: str) -> Counts:
    with torch.device(device):
        fusion = build()
    fusion.train()
    xs, masks = make_inputs(dims, seq_lens, COUNT_BATCH, device)
    param_keys = {storage_key(p) for p in fusion.parameters()}
    saved: dict[tuple, int] = {}

    def pack(t: Tensor) -> Tensor:
        key = storage_key(t)
        if key not in param_keys:
            saved[key] = key[1]
        return t

    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            output = fusion.fuse(xs, masks).fused
        forward = counter.get_total_flops()
        training_loss(output).backward()
        total = counter.get_total_flops()
    return Counts(
        params=count_params(fusion), flops=forward // COUNT_BATCH, train_flops=total // COUNT_BATCH,
        saved_bytes_per_sample=sum(saved.values()) // COUNT_BATCH, where=device,
    )


def count_costs(build: Callable[[], Fusion], dims: list[int], seq_lens: list[int]) -> Counts:
    """Count parameters, FLOPs and saved-activation bytes of ``build()`` on inputs of ``seq_lens`` steps.

    ``build`` makes the fusion (called under ``torch.device("meta")``); it runs ``fusion.fuse`` directly,
    without the input checks (they read tensor values, which ``meta`` tensors do not have). A fusion that
    cannot run on ``meta`` (it reads values, e.g. ``pack_padded_sequence`` lengths) is counted on CPU tensors
    instead (``Counts.where``), with oneDNN off: ``FlopCounterMode`` has no formula for oneDNN's fused LSTM
    (``mkldnn_rnn_layer``), while PyTorch's own LSTM is made of counted matrix products.
    """
    try:
        return _run_counts(build, dims, seq_lens, "meta")
    except (NotImplementedError, RuntimeError, ValueError):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # oneDNN's TF32 notice when toggling its flags
            with torch.backends.mkldnn.flags(enabled=False):
                return _run_counts(build, dims, seq_lens, "cpu")

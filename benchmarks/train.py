"""One training cell: a fusion trained with one seed under its protocol, evaluated on test.

The protocol (``config.Protocol``; the shared one by default, the same for every fusion): AdamW, linear warm-up
then cosine decay, early stopping on the validation score, the best-validation weights evaluated on test, gradient
clipping. The ``reference`` protocol changes these per fusion (Adam, a per-epoch or plateau schedule, selection
on validation loss, full-length padding, rounded labels: ``Protocol``'s fields; ``protocol_data`` prepares the
data). Loss: the dataset's task's (``tasks``: L1 for sentiment, mean squared error for plain regression,
cross-entropy for classification, binary cross-entropy with logits for multi-label), plus ``aux_weight`` times
the auxiliary head's loss for fusions that have one; the validation score that selects the best epoch is the
task's too (or the loss: ``Protocol.selection``). Data stays as tensors; a batch is gathered by index and trimmed
to its longest real sequence (fusions are padding invariant, so trimming changes no result, only time).

A cell can be resumed: with ``state_path`` set, the full training state (weights, optimiser, schedule,
random generators, curves, best weights) is written atomically after every epoch and picked up on restart,
so an interrupted run loses at most the epoch in progress and ends with the same result. The state records
what it was computed from (the cell's hash, the seed, the data's fingerprint, autocast); a state saved for
anything else is not resumed: training starts from epoch 0.

Divergence: a non-finite (NaN or infinite) training loss, validation loss or prediction, or test prediction
raises ``Diverged`` with the epoch and the reason; nothing else counts as divergence (a finite result,
however large, is a result: an extreme feature value gives one, and the loaders warn about those).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from fusions import Predictor, build_predictor
from tasks import get_task

from .config import CellConfig, Protocol
from .cost.counts import count_params
from .data import Dataset, Split
from .store import atomic_torch_save


class Diverged(ValueError):
    """A cell's loss or predictions became non-finite (NaN or infinite). ``reason`` says which; ``epoch`` is the
    1-based epoch it happened in (None when raised outside training, by ``evaluate``)."""

    def __init__(self, reason: str, epoch: int | None = None):
        self.reason, self.epoch = reason, epoch
        super().__init__(reason if epoch is None else f"training diverged at epoch {epoch}: {reason}")


def data_fingerprint(data: Dataset) -> str:
    """A 16-hex digest of what a cell learns from and is scored on: task, classes, modality names, and every
    split's ids, labels, features and masks (byte for byte; ``extras`` are not read by training)."""
    digest = hashlib.sha256(json.dumps([data.task, data.num_classes, list(data.modality_names)]).encode())
    for name, split in data.splits.items():
        digest.update(json.dumps([name, list(split.ids)]).encode())
        for tensor in (split.labels, *split.xs, *split.masks):
            digest.update(str((tensor.dtype, tuple(tensor.shape))).encode())
            digest.update(memoryview(tensor.detach().cpu().contiguous().numpy()).cast("B"))
    return digest.hexdigest()[:16]


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (the cell's model initialisation and dropout)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_hparams(hparams: dict, modality_names: list[str]) -> dict:
    """Hyperparameters ready for ``build_fusion``: a modality ``order`` given by names becomes indices, and a
    per-modality value given as a table by modality name (e.g. ``d_model = {text = 64, audio = 4, vision = 16}``)
    becomes a list in the dataset's modality order. A table that does not name each modality exactly once raises
    ``ValueError``."""
    resolved = dict(hparams)
    for key, value in hparams.items():
        if isinstance(value, dict):
            if sorted(value) != sorted(modality_names):
                raise ValueError(f"{key} {value} must name each modality once; this dataset's modalities: "
                                 f"{', '.join(modality_names)}")
            resolved[key] = [value[name] for name in modality_names]
    order = resolved.get("order")
    if order is not None and any(isinstance(item, str) for item in order):
        missing = [name for name in order if name not in modality_names]
        if missing or len(order) != len(modality_names):
            raise ValueError(
                f"order {order} must name each modality once; this dataset's modalities: {', '.join(modality_names)}"
            )
        resolved["order"] = [modality_names.index(name) for name in order]
    return resolved


def build_cell_model(cell: CellConfig, data: Dataset) -> Predictor:
    """The cell's predictor for this dataset's feature sizes and task (the task's kind names the head; its label
    range reaches a fusion that bounds its output, TFN, unless the configuration gives one)."""
    task = get_task(data.task)
    return build_predictor(
        cell.fusion, data.dims, task=task.kind, num_classes=data.num_classes, task_label_range=task.label_range,
        **resolve_hparams(cell.hparams, data.modality_names),
    )


def protocol_data(data: Dataset, protocol: Protocol) -> Dataset:
    """``data`` as ``protocol`` trains, selects and tests on it (every split):

    - ``padding = "full"``: every sample as long as its split's padded length: each modality ``[N, time, dim]``
      with the sample's zero rows moved before its real steps (``time - real`` zero rows, then the real steps in
      order: MulT's pickles' layout, which the GRF authors' loader reads) and every mask True;
    - ``labels = "rounded"``: labels rounded to integers (half to even, as ``numpy.round`` in the GRF authors'
      loader), float32 kept.

    Returns ``data`` itself when neither applies or it is laid out so already (so the shared protocol's data is
    the loaded data, and preparing twice changes nothing). The cell's identity covers the result: its hash holds
    the protocol and the code version (this module). Raises ``ValueError`` for rounded labels on a task that is
    not a regression."""
    full = protocol.padding == "full" and not all(bool(mask.all()) for split in data.splits.values()
                                                  for mask in split.masks)
    rounded = protocol.labels == "rounded"
    if rounded and get_task(data.task).kind != "regression":
        raise ValueError(f"protocol.labels = 'rounded' applies to regression tasks; dataset {data.name!r} has task "
                         f"{data.task!r}")
    rounded = rounded and not all(torch.equal(split.labels, split.labels.round()) for split in data.splits.values())
    if not (full or rounded):
        return data
    splits = {}
    for name, split in data.splits.items():
        if full:
            split = replace(split, xs=[_left_padded(x, mask) for x, mask in zip(split.xs, split.masks)],
                            masks=[torch.ones_like(mask) for mask in split.masks])
        splits[name] = replace(split, labels=split.labels.round()) if rounded else split
    return replace(data, **splits)


def _left_padded(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` ``[N, time, dim]`` (real steps first, ``mask`` ``[N, time]``) with each sample's padding rows, as
    zeros, moved before its real steps: row ``t`` of the result is row ``(t + real) % time`` of ``x``."""
    index = (torch.arange(x.shape[1]) + mask.sum(1, keepdim=True)) % x.shape[1]
    return (x * mask.unsqueeze(-1)).gather(1, index.unsqueeze(-1).expand_as(x))


class Batches:
    """Index-gathered batches of a split, trimmed to the longest real sequence in the batch, on ``device``.

    On CUDA the whole split is copied to the device once, when it takes at most ``DEVICE_SHARE`` of the device's
    free memory (MOSI's splits take a few MiB), and every batch is gathered there with no host copy; a larger
    split stays on the host and each batch goes through pinned memory with non-blocking copies."""

    def __init__(self, split: Split, device: torch.device):
        self.device = device
        self.lengths = [mask.sum(1) for mask in split.masks]  # on the host: a batch's steps without a device sync
        self.pin = device.type == "cuda"
        if self.pin and _fits_on_device(split, device):
            split, self.pin = replace(split, xs=[x.to(device) for x in split.xs],
                                      masks=[m.to(device) for m in split.masks], labels=split.labels.to(device)), False
        self.split = split

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.pin:
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def gather(self, index: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """``xs`` [b, time_i, dim_i], ``masks`` [b, time_i], ``labels`` [b] (multi-label: [b, K]) for the samples
        at ``index``."""
        xs, masks = [], []
        rows = index.to(self.split.labels.device)
        for x, mask, lengths in zip(self.split.xs, self.split.masks, self.lengths):
            steps = int(lengths.index_select(0, index).max())
            xs.append(self._to_device(x[:, :steps].index_select(0, rows)))
            masks.append(self._to_device(mask[:, :steps].index_select(0, rows)))
        return xs, masks, self._to_device(self.split.labels.index_select(0, rows))

    def ordered(self, batch_size: int):
        """Batches in sample order (evaluation)."""
        for start in range(0, len(self.split), batch_size):
            yield self.gather(torch.arange(start, min(start + batch_size, len(self.split))))

    def shuffled(self, batch_size: int, generator: torch.Generator):
        """Batches in a random order drawn from ``generator`` (training); the last batch may be smaller."""
        order = torch.randperm(len(self.split), generator=generator)
        for start in range(0, len(order), batch_size):
            yield self.gather(order[start:start + batch_size])


DEVICE_SHARE = 0.25
"""The largest share of a CUDA device's free memory a split may take to be held on the device (``Batches``)."""


def _fits_on_device(split: Split, device: torch.device) -> bool:
    """Whether ``split``'s features, masks and labels take at most ``DEVICE_SHARE`` of ``device``'s free memory."""
    size = sum(t.nbytes for t in (*split.xs, *split.masks, split.labels))
    free, _ = torch.cuda.mem_get_info(device)
    return size <= DEVICE_SHARE * free


def prediction_loss(model: Predictor, prediction, labels: torch.Tensor, task: str) -> torch.Tensor:
    """The training objective of one batch: task ``task``'s loss (``tasks.Task.loss``) of ``prediction.output``,
    plus ``model.aux_weight`` times the loss of the auxiliary head's output where the fusion has one (GRF)."""
    task_loss = get_task(task).loss
    loss = task_loss(prediction.output, labels)
    if prediction.aux_output is not None:
        loss = loss + model.aux_weight * task_loss(prediction.aux_output, labels)
    return loss


def autocast(device: torch.device, amp: bool):
    """bf16 autocast on CUDA when ``amp``; nothing otherwise."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if amp and device.type == "cuda" else nullcontext()


@dataclass
class Evaluation:
    """Outputs on a split: ``outputs`` [N] (regression tasks) or [N, K] (the logits of K classes or labels), the
    mean task loss, the task's metrics, and optionally every fused state per sample (``states``: list of [N, dim_k]
    arrays)."""

    outputs: np.ndarray
    loss: float
    metrics: dict[str, float]
    states: list[np.ndarray] | None = None


def evaluate(
    model: Predictor, split: Split, task: str, device: torch.device, batch_size: int = 256, amp: bool = False,
    keep_states: bool = False,
) -> Evaluation:
    """Run ``model`` over ``split`` in eval mode under ``torch.inference_mode`` and score it as task ``task``
    (a registered name). Raises ``Diverged`` when an output or the loss is not finite."""
    task = get_task(task)
    model.eval()
    outputs, states, loss_sum = [], [], 0.0
    with torch.inference_mode(), autocast(device, amp):
        for xs, masks, labels in Batches(split, device).ordered(batch_size):
            prediction = model(xs, masks)
            loss_sum += float(task.loss(prediction.output, labels)) * len(labels)
            outputs.append(prediction.output.float().cpu())
            if keep_states:
                states.append([s.float().cpu() for s in prediction.states])
    output = task.outputs(torch.cat(outputs).numpy())
    bad = int((~np.isfinite(output.reshape(len(output), -1))).any(axis=1).sum())
    if bad:
        raise Diverged(f"{bad} of {len(output)} predictions are not finite")
    if not math.isfinite(loss_sum):
        raise Diverged(f"the loss is {loss_sum}")
    labels = split.labels.numpy()
    return Evaluation(
        outputs=output, loss=loss_sum / len(split), metrics=task.evaluate(labels, output),
        states=[torch.cat(parts).numpy() for parts in zip(*states)] if keep_states else None,
    )


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Learning-rate multiplier at optimiser ``step``: linear warm-up to 1, then cosine decay to ``min_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model: Predictor, protocol: Protocol) -> torch.optim.Optimizer:
    """The protocol's optimiser over the model's parameter groups (``Predictor.param_groups``, e.g. LMF's factors
    at their own rate): ``"adamw"`` (decoupled weight decay) or ``"adam"`` (weight decay as an L2 term)."""
    kind = torch.optim.AdamW if protocol.optimizer == "adamw" else torch.optim.Adam
    return kind(model.param_groups(protocol.lr), lr=protocol.lr, weight_decay=protocol.weight_decay)


def make_schedule(optimizer: torch.optim.Optimizer, protocol: Protocol, steps_per_epoch: int):
    """The protocol's learning-rate scheduler and when it steps: ``"step"`` (after every optimiser step),
    ``"epoch"`` (after every epoch) or ``"valid"`` (after every epoch, given the validation loss). See
    ``Protocol.schedule``; ``"constant"`` is a scheduler that never changes the rate."""
    if protocol.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", patience=protocol.plateau_patience, factor=protocol.plateau_factor), "valid"
    if protocol.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0), "epoch"
    per_epoch = steps_per_epoch if protocol.schedule == "warmup_cosine" else 1
    warmup, total = protocol.warmup_epochs * per_epoch, protocol.max_epochs * per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup, total, protocol.min_lr / protocol.lr)
    )
    return schedule, "step" if protocol.schedule == "warmup_cosine" else "epoch"


@dataclass
class CellResult:
    """What a finished cell produced. ``curves``: one dict per epoch (epoch, train_loss, valid_loss, valid
    metrics, lr, seconds); ``train_seconds``: wall-clock of the training epochs (validation included)."""

    test: Evaluation
    valid: Evaluation
    curves: list[dict]
    best_epoch: int
    epochs: int
    train_seconds: float
    params: int
    best_state: dict = field(repr=False, default_factory=dict)


EpochCallback = Callable[[int, float, dict], None]
Say = Callable[[str], None]


def _validation_score(protocol: Protocol, task: str, evaluation: Evaluation) -> float:
    """The model-selection score on validation, lower is better: the task's (``tasks.Task.selection_score``), or
    the validation loss when ``protocol.selection`` is ``"valid_loss"``."""
    if protocol.selection == "valid_loss":
        return evaluation.loss
    return get_task(task).selection_score(evaluation.metrics, evaluation.loss)


def train_cell(
    cell: CellConfig, data: Dataset, seed: int, device: torch.device | str = "cpu", amp: bool = False,
    state_path: Path | None = None, on_epoch: EpochCallback | None = None, say: Say | None = None,
) -> CellResult:
    """Train ``cell`` on ``data`` with ``seed`` and evaluate its best-validation weights on test (the only
    time the test split is read).

    ``on_epoch(epoch, valid_score, curve_row)`` is called after every epoch (it may raise to stop, e.g.
    Optuna's pruning). ``state_path``: where to keep the resumable training state (written after every epoch;
    the caller deletes it once the result is stored). ``say(line)`` receives one line when training resumes
    from the state or refuses a state saved for other inputs. Raises ``Diverged`` (with the epoch) when the
    training loss, a validation output or loss, or a test output is not finite; the state of the last finite
    epoch is kept. The cell trains and is scored on ``protocol_data(data, cell.protocol)`` (``data`` itself under
    the shared protocol); ``ValueError`` when that does not apply to the data.
    """
    device = torch.device(device)
    protocol: Protocol = cell.protocol
    data = protocol_data(data, protocol)
    seed_everything(seed)
    model = build_cell_model(cell, data).to(device)
    optimizer = make_optimizer(model, protocol)
    schedule, steps = make_schedule(optimizer, protocol, math.ceil(len(data.train) / protocol.batch_size))
    order = torch.Generator().manual_seed(seed)
    train_batches = Batches(data.train, device)
    state = {"epoch": 0, "best_score": math.inf, "best_epoch": 0, "best_state": None, "curves": [], "seconds": 0.0}
    if state_path is not None:
        identity = {"config_hash": cell.hash, "seed": seed, "data": data_fingerprint(data), "amp": amp}
        state["identity"] = identity
        if state_path.exists():
            saved = torch.load(state_path, map_location="cpu", weights_only=False)
            if saved.get("identity") == identity:
                state = _restore(saved, model, optimizer, schedule, order)
                if say is not None:
                    say(f"resuming from epoch {state['epoch']} of {protocol.max_epochs} (saved training state)")
            elif say is not None:
                changed = [k for k in identity if saved.get("identity", {}).get(k) != identity[k]]
                say(f"the saved training state {state_path.name} was computed from other inputs "
                    f"({', '.join(changed)}); training from epoch 0")

    while state["epoch"] < protocol.max_epochs and (
        protocol.patience == 0 or state["epoch"] - state["best_epoch"] < protocol.patience
    ):
        started = time.perf_counter()
        model.train()
        loss_sum, seen = torch.zeros((), device=device), 0
        for xs, masks, labels in train_batches.shuffled(protocol.batch_size, order):
            with autocast(device, amp):
                loss = prediction_loss(model, model(xs, masks), labels, data.task)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if protocol.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), protocol.grad_clip)
            optimizer.step()
            if steps == "step":
                schedule.step()
            loss_sum += loss.detach() * len(labels)
            seen += len(labels)
        epoch = state["epoch"] + 1
        train_loss = float(loss_sum) / seen
        if not math.isfinite(train_loss):
            raise Diverged(f"the training loss is {train_loss}", epoch)
        try:
            valid = evaluate(model, data.valid, data.task, device, protocol.eval_batch_size, amp)
        except Diverged as error:
            raise Diverged(f"validation: {error.reason}", epoch) from None
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        state["seconds"] += time.perf_counter() - started
        state["epoch"] = epoch
        if steps == "epoch":
            schedule.step()
        elif steps == "valid":
            schedule.step(valid.loss)
        score = _validation_score(protocol, data.task, valid)
        row = {
            "epoch": epoch, "train_loss": train_loss, "valid_loss": valid.loss,
            **{f"valid_{k}": v for k, v in valid.metrics.items()}, "lr": schedule.get_last_lr()[0],
            "seconds": state["seconds"],
        }
        state["curves"].append(row)
        if score < state["best_score"]:
            state.update(best_score=score, best_epoch=state["epoch"], best_state=_cpu_copy(model.state_dict()))
        if state_path is not None:
            _save(state_path, state, model, optimizer, schedule, order)
        if on_epoch is not None:
            on_epoch(state["epoch"], score, row)

    model.load_state_dict(state["best_state"])
    try:
        test = evaluate(model, data.test, data.task, device, protocol.eval_batch_size, amp)
    except Diverged as error:
        raise Diverged(f"test: {error.reason} (best-validation weights of epoch {state['best_epoch']})",
                       state["epoch"]) from None
    return CellResult(
        test=test, valid=evaluate(model, data.valid, data.task, device, protocol.eval_batch_size, amp),
        curves=state["curves"], best_epoch=state["best_epoch"], epochs=state["epoch"],
        train_seconds=state["seconds"], params=count_params(model),
        best_state=state["best_state"],
    )


def _cpu_copy(state_dict: dict) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in state_dict.items()}


def _save(path: Path, state: dict, model, optimizer, schedule, order: torch.Generator) -> None:
    atomic_torch_save(
        {
            **state, "model": _cpu_copy(model.state_dict()), "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(), "order": order.get_state(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "numpy_rng": np.random.get_state(), "python_rng": random.getstate(),
        },
        path,
    )


def _restore(saved: dict, model, optimizer, schedule, order: torch.Generator) -> dict:
    """Load a saved state (as ``_save`` wrote it) into the training objects; returns the loop's state."""
    model.load_state_dict(saved.pop("model"))
    optimizer.load_state_dict(saved.pop("optimizer"))
    schedule.load_state_dict(saved.pop("schedule"))
    order.set_state(saved.pop("order"))
    torch.set_rng_state(saved.pop("torch_rng"))
    cuda_rng = saved.pop("cuda_rng")
    if cuda_rng is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_rng)
    np.random.set_state(saved.pop("numpy_rng"))
    random.setstate(saved.pop("python_rng"))
    return saved

"""Seeded synthetic data with MOSI's shapes, built so that fusion matters. No download.

Default: three modalities named text / audio / vision with MOSI's aligned shapes (50 steps of 300, 5 and 20
features) and MOSI's split sizes 1284 / 229 / 686; continuous labels in [-3, 3]. Any number of modalities,
feature sizes and lengths can be asked for.

The generative model, per sample and modality ``i`` of ``n``:

* latent evidence ``e_i ~ N(0, 1)`` and a switch ``s_i`` = +1 or -1 with equal odds;
* true signal ``f = 3 tanh(0.7 z)`` with ``z = (sum_i e_i + rho * sum_i e_i * s_{i+1 mod n}) /
  sqrt(n (1 + rho^2))`` (``rho`` = ``interaction``, default 1): every modality's evidence is scaled and
  flipped by the next modality's switch, so no single modality and no additive model can reach the
  ceiling; ``z`` has unit variance for any ``n`` and ``f`` has a standard deviation of about 1.5;
* label ``y = clip(f + noise_std * eps, -3, 3)`` with ``eps ~ N(0, 1)`` (``noise_std`` default 0.5);
* a true length ``l_i`` uniform in ``[max(time_i // 3, evidence_steps), time_i]``; features at real steps are
  ``N(0, 1)`` noise plus ``switch_strength * s_i * w_i`` at every real step, plus
  ``evidence_strength * (v_i + e_i * u_i)`` at ``evidence_steps`` random real steps (``v_i`` marks where the
  evidence is, so attention over time pays); ``u_i, v_i, w_i`` are fixed random unit directions per
  modality (orthonormal where ``dim_i >= 3``); padding steps are zero.

The best achievable MAE is that of predicting ``f`` (the conditional median, since clipping is monotone):
``E|y - f|`` = ``noise_std * sqrt(2 / pi)`` = 0.399 for the default noise before clipping, a little less
after. ``info["reference_mae"][split]`` holds, measured on each split: ``oracle`` (predicting ``f``),
``additive`` (the least-squares fit of ``y`` on the latents ``e_i, s_i`` of all modalities, fitted on train:
what an additive model that read the latents perfectly would reach) and ``constant`` (the train median).
On the generator's default data (MOSI's shapes) they are 0.382, 0.967 and 1.280 on the test split: a fusion
below the additive reference has learnt the interaction. The ``quick`` preset, hence the default run (``make
run``), asks for 20 steps and 4000 training samples (``seq_lens=20, sizes=(4000, 229, 686)``; see
``benchmarks/configs/quick.toml`` for why); there they are 0.388, 0.982 and 1.260. The split's ``extras``
hold ``signal`` (``f``), ``evidence`` (``e``, ``[N, n]``) and ``switch`` (``s``, ``[N, n]``).
"""

from __future__ import annotations

import math

import torch

from .dataset import SPLITS, DataError, Dataset, Split
from .registry import register_dataset

MOSI_DIMS = (300, 5, 20)
MOSI_SIZES = (1284, 229, 686)
MOSI_NAMES = ("text", "audio", "vision")


def _directions(dim: int, generator: torch.Generator) -> torch.Tensor:
    """Three unit directions ``[3, dim]`` (evidence u, marker v, switch w); orthonormal when ``dim >= 3``."""
    raw = torch.randn(dim, 3, generator=generator)
    if dim >= 3:
        return torch.linalg.qr(raw)[0].T.contiguous()
    return (raw / raw.norm(dim=0, keepdim=True)).T.contiguous()


def make_synthetic(
    n_modalities: int = 3, dims: list[int] | None = None, seq_lens: list[int] | int | None = None,
    sizes: tuple[int, int, int] = MOSI_SIZES, noise_std: float = 0.5, interaction: float = 1.0,
    evidence_steps: int = 3, evidence_strength: float = 4.0, switch_strength: float = 0.5, seed: int = 0,
) -> Dataset:
    """Generate the synthetic dataset (see the module docstring). Same arguments, same data.

    ``dims``: feature size per modality (default MOSI's (300, 5, 20) for 3 modalities, 32 each otherwise);
    ``seq_lens``: padded length per modality, or one for all (default 50); ``sizes``: train/valid/test sizes.
    """
    n = int(n_modalities)
    if n < 2:
        raise DataError(f"synthetic data needs at least 2 modalities, got {n}")
    dims = list(dims) if dims is not None else (list(MOSI_DIMS) if n == 3 else [32] * n)
    if isinstance(seq_lens, int) or seq_lens is None:
        seq_lens = [seq_lens or 50] * n
    seq_lens = list(seq_lens)
    if len(dims) != n or len(seq_lens) != n:
        raise DataError(f"expected {n} dims and {n} sequence lengths, got {dims} and {seq_lens}")
    if min(seq_lens) < evidence_steps:
        raise DataError(f"sequence lengths {seq_lens} must be at least evidence_steps={evidence_steps}")
    if len(sizes) != 3 or min(sizes) < 1:
        raise DataError(f"sizes must be three positive split sizes (train, valid, test), got {sizes}")
    generator = torch.Generator().manual_seed(seed)
    total = sum(sizes)

    evidence = torch.randn(total, n, generator=generator)
    switch = torch.randint(0, 2, (total, n), generator=generator).float() * 2 - 1
    z = (evidence.sum(1) + interaction * (evidence * switch.roll(-1, dims=1)).sum(1)) / math.sqrt(
        n * (1 + interaction**2)
    )
    signal = 3 * torch.tanh(0.7 * z)
    labels = (signal + noise_std * torch.randn(total, generator=generator)).clamp(-3, 3)

    xs, masks = [], []
    for i, (dim, steps) in enumerate(zip(dims, seq_lens)):
        u, v, w = _directions(dim, generator)
        low = max(steps // 3, evidence_steps)
        lengths = torch.randint(low, steps + 1, (total,), generator=generator)
        mask = torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)
        x = torch.randn(total, steps, dim, generator=generator) + switch_strength * switch[:, i, None, None] * w
        scores = torch.rand(total, steps, generator=generator).masked_fill(~mask, -1.0)
        spots = scores.topk(evidence_steps, dim=1).indices  # evidence_steps distinct real steps per sample
        bump = evidence_strength * (v + evidence[:, i, None] * u)  # [total, dim]
        x.scatter_add_(1, spots.unsqueeze(-1).expand(-1, -1, dim), bump.unsqueeze(1).expand(-1, evidence_steps, -1))
        xs.append(x * mask.unsqueeze(-1))
        masks.append(mask)

    names = list(MOSI_NAMES) if n == 3 else [f"m{i}" for i in range(n)]
    bounds = torch.tensor([0, *sizes]).cumsum(0).tolist()
    latents = torch.cat([evidence, switch, torch.ones(total, 1)], dim=1).double()
    train = slice(0, sizes[0])
    additive = torch.linalg.lstsq(latents[train], labels[train].double().unsqueeze(1)).solution[:, 0]
    constant = labels[train].median()
    splits, reference = {}, {}
    for split_name, start, stop in zip(SPLITS, bounds[:-1], bounds[1:]):
        part = slice(start, stop)
        splits[split_name] = Split(
            xs=[x[part] for x in xs], masks=[m[part] for m in masks], labels=labels[part],
            ids=[f"synthetic_{seed}_{k}" for k in range(start, stop)],
            extras={"signal": signal[part], "evidence": evidence[part], "switch": switch[part]},
        )
        y = labels[part].double()
        reference[split_name] = {
            "oracle": float((y - signal[part]).abs().mean()),
            "additive": float((y - latents[part] @ additive).abs().mean()),
            "constant": float((y - constant).abs().mean()),
        }
    info = {
        "source": "synthetic", "seed": seed, "noise_std": noise_std, "interaction": interaction,
        "evidence_steps": evidence_steps, "evidence_strength": evidence_strength, "reference_mae": reference,
        "expected_oracle_mae": noise_std * math.sqrt(2 / math.pi),
    }
    return Dataset(name="synthetic", **splits, modality_names=names, task="sentiment", info=info)


@register_dataset("synthetic")
def load_synthetic(path=None, **options) -> Dataset:
    """The seeded MOSI-shaped generator; options are ``make_synthetic``'s arguments (no files read). A
    ``path`` raises ``DataError``: nothing is read."""
    if path is not None:
        raise DataError("the synthetic dataset is generated, not read: drop --data-path")
    return make_synthetic(**options)


load_synthetic.options_signature = make_synthetic  # the options load_dataset checks (benchmarks.data.registry)

"""Shared building blocks, one module per job: ``dropout`` (fast CPU dropout), ``stacked`` (stacked parameters and
shape groups), ``attention`` (kernels, masks, multi-head attention), ``positions`` (sinusoidal encodings),
``pooling`` (masked pooling and the task head), ``transformer`` (stacked layers and their FLOPs).

Shape conventions: a sequence is ``[batch, time, dim]`` with a boolean mask ``[batch, time]`` (True = a
real step). Real steps come first, padding after, so position 0 is always the first real step.

``StackedTransformer`` runs ``P`` independent transformer stacks (same hyperparameters, separate weights)
as one batched computation: every parameter has a leading stack dimension and every matrix product is a
``baddbmm`` over that dimension. Pairwise cross-attention (``n(n-1)`` stacks), the late-fusion encoders
(``n`` stacks) and the two symmetric decoders of a GRF step (2 stacks) all use it, so every fusion gets the
same kernels and none pays Python-loop overhead that another avoids. Stacks whose inputs have different
lengths cannot share one batched call; they are grouped by shape and each group runs batched (consecutive
stacks select their parameters by a slice, a view, rather than a gather whose backward is a slow scatter).

Speed on CPU (profiled on the paper's MOSI settings): attention is ``F.scaled_dot_product_attention`` (its fused
kernel) whenever attention dropout is off; with dropout PyTorch's CPU kernel falls back to a slow math path,
so ``attend_math`` computes the same function with fewer passes over the score tensors. Attention masks are
brought to SDPA's additive form once per group of stacks (``additive_mask``), not in every layer, and a CPU
mask that allows every key (a batch without padding) is dropped, so the fused kernel reads none. Dropout everywhere is
``dropout`` / ``Dropout``: the same distribution as ``F.dropout`` from a quarter of the random draws.
``layer_flops`` gives each layer's matrix-product FLOPs in closed form for the fusions' ``analytic_flops``.
"""

from .attention import StackedAttention, additive_mask, attend, attend_math, attention_mask
from .dropout import Dropout, dropout, keep_mask
from .pooling import last_real_step, masked_mean, mlp_head, pool
from .positions import PositionalEncoding, sinusoidal_table
from .stacked import StackedLayerNorm, StackedLinear, StackIndex, shape_groups, stacked_apply
from .transformer import StackedLayer, StackedTransformer, layer_flops

__all__ = [
    "additive_mask",
    "attend",
    "attend_math",
    "attention_mask",
    "Dropout",
    "dropout",
    "keep_mask",
    "last_real_step",
    "layer_flops",
    "masked_mean",
    "mlp_head",
    "pool",
    "PositionalEncoding",
    "shape_groups",
    "sinusoidal_table",
    "stacked_apply",
    "StackedAttention",
    "StackedLayer",
    "StackedLayerNorm",
    "StackedLinear",
    "StackedTransformer",
    "StackIndex",
]

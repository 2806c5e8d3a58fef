"""Multimodal fusions behind one interface: ``forward(xs, masks) -> [batch, out_dim]``.

``list_fusions()`` names them, ``build_fusion(name, dims, **hparams)`` builds one, ``build_predictor`` adds a
task head. Every module in this package that registers a fusion is imported here, so adding a fusion is
adding one file with a ``@register_fusion`` class.
"""

import importlib
import pkgutil

from .base import Fusion, FusionOutput, check_modalities
from .predictor import Prediction, Predictor, build_predictor
from .registry import build_fusion, fusion_class, fusion_hparams, list_fusions, register_fusion

_INFRASTRUCTURE = {"base", "layers", "predictor", "registry"}
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _INFRASTRUCTURE:
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "Fusion", "FusionOutput", "Prediction", "Predictor", "build_fusion", "build_predictor", "check_modalities",
    "fusion_class", "fusion_hparams", "list_fusions", "register_fusion",
]

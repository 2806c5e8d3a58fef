"""Register fusions by name and build them, like timm's ``register_model`` / ``create_model``."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from .base import Fusion

_FUSIONS: dict[str, type[Fusion]] = {}


def register_fusion(name: str) -> Callable[[type[Fusion]], type[Fusion]]:
    """Class decorator: ``@register_fusion("grf")`` makes ``build_fusion("grf", dims)`` build the class."""

    def decorate(cls: type[Fusion]) -> type[Fusion]:
        if name in _FUSIONS and _FUSIONS[name] is not cls:
            raise ValueError(f"fusion {name!r} is already registered by {_FUSIONS[name].__qualname__}")
        _FUSIONS[name] = cls
        cls.registered_name = name
        return cls

    return decorate


def list_fusions() -> list[str]:
    """The registered fusion names, sorted."""
    return sorted(_FUSIONS)


def fusion_class(name: str) -> type[Fusion]:
    """The class registered under ``name``; an unknown name raises ``ValueError`` listing the known ones."""
    try:
        return _FUSIONS[name]
    except KeyError:
        raise ValueError(f"unknown fusion {name!r}; known fusions: {', '.join(list_fusions())}") from None


def fusion_hparams(name: str) -> dict[str, object]:
    """The hyperparameters a fusion accepts, with their defaults (``inspect.Parameter.empty`` if required)."""
    signature = inspect.signature(fusion_class(name).__init__)
    return {
        key: param.default
        for key, param in signature.parameters.items()
        if key not in ("self", "dims") and param.kind is param.KEYWORD_ONLY
    }


def build_fusion(name: str, dims: list[int], **hparams) -> Fusion:
    """Build the fusion ``name`` for modalities with feature sizes ``dims`` (a list, one per modality).

    Hyperparameters use PyTorch's names (``d_model``, ``num_heads``, ``num_layers``, ``dim_feedforward``,
    ``dropout``); one the fusion does not take raises ``ValueError`` listing those it does.
    """
    cls = fusion_class(name)
    accepted = fusion_hparams(name)
    unknown = sorted(set(hparams) - set(accepted))
    if unknown:
        raise ValueError(
            f"fusion {name!r} has no hyperparameter {', '.join(map(repr, unknown))}; "
            f"it accepts: {', '.join(sorted(accepted))}"
        )
    return cls(list(dims), **hparams)

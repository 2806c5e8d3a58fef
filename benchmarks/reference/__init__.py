"""Our models against their authors' public code: ``python -m benchmarks.reference --grf-repo DIR ...``.

A user's checkout of the original code is imported at run time from the folder given (nothing of it is copied
into this project); the reference model is built with its own code, its weights are copied into ours by a pure
function on state dicts (unit-tested without the checkout), and both run on the same inputs: the largest
absolute difference of their eval-mode outputs on the reference code's own input layout and on padded inputs
(goal: below ``GOAL``), and their training steps timed interleaved in one run.

Each model is a ``ReferenceCheck`` subclass registered with ``@register_reference(name)`` in a module of this
package (``grf``, ``mult``, ``tfn``, ``lmf``); the modules register themselves on import, and importing this
package imports them.
"""

from __future__ import annotations

import importlib.util
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import ClassVar

import torch
from torch import Tensor, nn

GOAL = 1e-5  # largest absolute eval-output difference for a model to count as the reference's
LAYOUTS = ("own", "padded")  # the reference code's own input layout; right-padded inputs with true lengths

REFERENCES: dict[str, type[ReferenceCheck]] = {}


@dataclass
class Batch:
    """One batch in both models' layouts. ``reference``: the positional arguments of the reference model's
    ``forward``; ``xs`` / ``masks``: ours (``[batch, time_i, dim_i]`` and bool ``[batch, time_i]``, real steps
    first); ``target``: regression labels ``[batch]`` for the training steps."""

    reference: tuple
    xs: list[Tensor]
    masks: list[Tensor]
    target: Tensor


class ReferenceCheck(ABC):
    """One model checked against its authors' code, built from the checkout folder ``repo``.

    Class attributes (each subclass sets them): ``flag`` (the command-line option, e.g. ``"--grf-repo"``),
    ``env`` (the environment variable the tests read, e.g. ``"FUSIONBENCH_GRF_REPO"``), ``url`` (the public
    repository), ``model_file`` (the file of the checkout that defines the model, relative to its root),
    ``own_layout`` (the reference code's own input layout, in words). ``name`` is set by ``register_reference``.

    Construction checks the folder and imports ``model_file`` into ``self.module``; a missing folder or file,
    or a file that does not import, raises ``ValueError`` naming the flag, the folder and what was expected.
    """

    name: ClassVar[str]
    flag: ClassVar[str]
    env: ClassVar[str]
    url: ClassVar[str]
    model_file: ClassVar[str]
    own_layout: ClassVar[str]

    def __init__(self, repo: str | Path):
        self.repo = checkout_folder(repo, self.flag, self.model_file, self.url)
        self.module = import_from_checkout(self.repo, self.model_file, f"fusionbench_reference_{self.name}")

    @abstractmethod
    def build(self, seed: int, device: torch.device) -> tuple[nn.Module, nn.Module]:
        """The reference model (built by its own code, seeded with ``seed``) and ours with matching
        hyperparameters holding the reference's weights (copied by this check's pure mapping function)."""

    @abstractmethod
    def batch(self, layout: str, seed: int, device: torch.device) -> Batch:
        """A seeded batch in ``layout`` (one of ``LAYOUTS``): ``"own"`` the reference code's own layout,
        ``"padded"`` right-padded inputs of varying true lengths, each model told the true lengths its way."""

    @abstractmethod
    def reference_output(self, model: nn.Module, batch: Batch) -> Tensor:
        """The reference model's outputs on ``batch``, ``[batch, k]`` (as ``our_output``)."""

    @abstractmethod
    def our_output(self, model: nn.Module, batch: Batch) -> Tensor:
        """Our model's outputs on ``batch``, ``[batch, k]``, column for column as ``reference_output``."""

    @abstractmethod
    def training_steps(
        self, reference: nn.Module, ours: nn.Module, batch: Batch
    ) -> tuple[Callable[[], None], Callable[[], None]]:
        """One training step on ``batch`` for each model (the reference code's objective, optimiser and
        clipping, the same for both), as closures for timing: ``(reference_step, our_step)``."""


class StateReader(Mapping):
    """A read-only view of a reference state dict for a weight mapping: it records the keys read, so that
    ``check_all_read`` can name a weight left unmapped. ``layout`` says what the state dict should be, in words,
    for the errors (e.g. ``"the authors' GRF layout"``); a missing key raises ``ValueError`` naming it."""

    def __init__(self, state: Mapping[str, Tensor], layout: str):
        self.state, self.layout, self.used = state, layout, set()

    def __getitem__(self, key: str) -> Tensor:
        if key not in self.state:
            raise ValueError(f"reference state dict has no {key!r} (not {self.layout}?)")
        self.used.add(key)
        return self.state[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.state)

    def __len__(self) -> int:
        return len(self.state)

    def check_all_read(self, ignore: tuple[str, ...] = ()) -> None:
        """Raise ``ValueError`` naming the first keys never read, apart from those ending with ``ignore``
        (buffers that hold no weights)."""
        left = sorted(key for key in self.state if key not in self.used and not key.endswith(ignore))
        if left:
            raise ValueError(f"reference weights left unmapped: {', '.join(left[:5])} (not {self.layout}?)")


def register_reference(name: str) -> Callable[[type[ReferenceCheck]], type[ReferenceCheck]]:
    """Class decorator: ``@register_reference("grf")`` adds the check to ``REFERENCES`` under ``name``."""

    def decorate(cls: type[ReferenceCheck]) -> type[ReferenceCheck]:
        if name in REFERENCES and REFERENCES[name] is not cls:
            raise ValueError(f"reference check {name!r} is already registered by {REFERENCES[name].__qualname__}")
        cls.name = name
        REFERENCES[name] = cls
        return cls

    return decorate


def checkout_folder(repo: str | Path, flag: str, model_file: str, url: str) -> Path:
    """``repo`` as an absolute path after checking it is a folder holding ``model_file``; else ``ValueError``."""
    folder = Path(repo).expanduser().resolve()
    if not folder.is_dir():
        raise ValueError(f"{flag} {repo}: no such folder; expected a checkout of {url}")
    if not (folder / model_file).is_file():
        raise ValueError(f"{flag} {repo}: no {model_file} in this folder; expected a checkout of {url}")
    return folder


def import_from_checkout(repo: Path, relative: str, module_name: str) -> ModuleType:
    """Import the file ``repo / relative`` as a module named ``module_name``.

    The checkout's root is on ``sys.path`` while the file runs, so its own imports (``from modules.x import
    y``) resolve inside the checkout; afterwards the root leaves ``sys.path`` and the checkout's modules leave
    ``sys.modules``, so two checkouts with same-named packages (``src``) do not meet. A file that fails to
    import raises ``ValueError`` naming it and the error.
    """
    path = repo / relative
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    before = set(sys.modules)
    sys.path.insert(0, str(repo))
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # any import-time failure of foreign code is bad input, said in one line
        raise ValueError(f"cannot import {path}: {type(error).__name__}: {error}") from error
    finally:
        sys.path.remove(str(repo))
        for name in set(sys.modules) - before:
            if _inside(sys.modules[name], repo):
                del sys.modules[name]
    return module


def _inside(module: ModuleType, repo: Path) -> bool:
    """Whether ``module`` comes from ``repo``: its file, or for a namespace package (no file) its path."""
    origin = getattr(module, "__file__", None)
    places = [origin] if origin else list(getattr(module, "__path__", []))
    return any(Path(place).is_relative_to(repo) for place in places)


from . import grf, lmf, mult, tfn  # noqa: E402, F401  (the checks register themselves)

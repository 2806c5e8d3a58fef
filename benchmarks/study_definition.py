"""One study, one question: the definition a tuning study keeps and checks on every resume.

A study stores, as its user attribute ``definition``, what its trials' values depend on (built by
``benchmarks.tune.study_definition``: fusion, dataset, modalities, feature and split sizes, objective, search
space, the configuration that is not searched). ``check_definition`` stores it in a new study and compares it
with the stored one on every later open: a study tuned on something else raises ``ValueError`` naming the first
difference in words, before any trial is added (Optuna itself refuses a changed categorical parameter only once
a trial runs). A study made before definitions were stored is compared on what its trials show.
"""

from __future__ import annotations

import json

import optuna
from optuna.distributions import distribution_to_json

DEFINITION = "definition"
"""The study user attribute that holds its definition."""


def recorded_definition(study: optuna.Study) -> dict | None:
    """For a study made before definitions were stored: what its first trial that ran shows of it (fusion,
    dataset, modalities, the distributions of its parameters); None when no trial ran."""
    for trial in study.get_trials(deepcopy=False):
        config = trial.user_attrs.get("config")
        if config and trial.distributions:
            return {
                "fusion": config["fusion"], "dataset": config["dataset"]["name"],
                "modalities": config["dataset"]["modalities"],
                "search_space": {name: json.loads(distribution_to_json(d)) for name, d in trial.distributions.items()},
            }
    return None


def check_definition(study: optuna.Study, definition: dict, where: str) -> None:
    """Store ``definition`` in a study that has none, or compare it with the stored one; a study tuned on
    something else raises ``ValueError`` naming the first difference (nothing is written then). A study made
    before definitions were stored is compared on what its trials show (``recorded_definition``)."""
    stored = study.user_attrs.get(DEFINITION)
    if stored is None:
        recorded = recorded_definition(study)
        if recorded is not None:
            space = {name: definition["search_space"].get(name) for name in recorded["search_space"]}
            _raise_on_difference(study, recorded, {**{key: definition[key] for key in recorded},
                                                   "search_space": space}, where)
        study.set_user_attr(DEFINITION, definition)
        stored = study.user_attrs[DEFINITION]  # two processes opening a fresh study: the one written last counts
    _raise_on_difference(study, stored, definition, where)


def _raise_on_difference(study: optuna.Study, stored: dict, current: dict, where: str) -> None:
    keys = [key for key in {**stored, **current} if stored.get(key) != current.get(key)]
    if not keys:
        return
    key, others = keys[0], [other.replace("_", " ") for other in keys[1:]]
    raise ValueError(
        f"study {study.study_name!r} in {where} was tuned with {_difference(key, stored.get(key), current.get(key))}"
        + (f" (also different: {', '.join(others)})" if others else "")
        + "; its trials cannot be compared with this run's: use another --study-name (or another --out)"
    )


def _difference(key: str, old, new) -> str:
    """One difference in words: ``modalities text, audio (this run: text, audio, vision)``."""
    label = key.replace("_", " ")
    if isinstance(old, dict) and isinstance(new, dict):
        old_leaves, new_leaves = _leaves(old), _leaves(new)
        paths = [path for path in {**old_leaves, **new_leaves} if old_leaves.get(path) != new_leaves.get(path)]
        if key == "search_space":  # choices lists are long: name the parameters
            return f"other search space: {', '.join(dict.fromkeys(path.split('.')[0] for path in paths))}"
        return f"other {label}: " + ", ".join(
            f"{path} {_words(old_leaves.get(path))} (this run: {_words(new_leaves.get(path))})" for path in paths[:3])
    return f"{label} {_words(old)} (this run: {_words(new)})"


def _leaves(value: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}, "c": 2}`` -> ``{"a.b": 1, "c": 2}``."""
    leaves = {}
    for key, item in value.items():
        path = f"{prefix}{key}"
        leaves.update(_leaves(item, f"{path}.") if isinstance(item, dict) and item else {path: item})
    return leaves


def _words(value) -> str:
    if value is None:
        return "none"
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)

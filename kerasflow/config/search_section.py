"""The ``search:`` section of a recipe: what ``python -m kerasflow.tune`` varies, and how.

``factors`` maps recipe keys, dotted as ``--set`` writes them (``model.flow.num_layers``,
``stages.flow.learning_rate``), to the values a trial tries: a list, or, for ``bayesian``, a range
``{min, max, sampling}``. Only the shape is checked here; whether each value is one its key accepts
is checked by ``kerasflow.tuning`` against the whole recipe, before any training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from kerasflow.config.validation import join_key, option
from kerasflow.models.kinds import STAGE_ORDER

SEARCH_MODES = ("grid", "one_at_a_time", "bayesian")
SAMPLINGS = ("linear", "log")
RANGE_KEYS = ("min", "max", "sampling")


@dataclass(frozen=True)
class SearchConfig:
    """An ablation or hyperparameter search over the recipe.

    ``mode``: ``grid`` (every combination of the factors' values, each distinct model once),
    ``one_at_a_time`` (one factor varied at a time, the others at the recipe's values: the paper's
    Tables 5-7) or ``bayesian`` (keras-tuner's BayesianOptimization, ``max_trials`` trials).
    ``stages``: the training stages a trial runs, e.g. ``[flow]`` for the representation-flow stream
    alone (null: every stage of ``model.kind``). The objective is the validation top-1 of the model
    the last of them trains.
    """

    factors: Any = option(
                          doc="recipe keys, dotted as --set writes them (model.flow.num_layers, "
                              "stages.flow.learning_rate), each with the list of values its trials take; bayesian "
                              "also takes a range {min, max, sampling: linear or log}")
    mode: str = option("grid", choices=SEARCH_MODES,
                       doc="grid (every combination; two that make the same model run once), one_at_a_time (one "
                           "factor varied at a time, the others at the recipe's values: the paper's tables) or "
                           "bayesian (keras-tuner's Bayesian optimisation, max_trials trials; needs pip install "
                           '"kerasflow[bayesian]")')
    stages: Optional[list[str]] = option(None, choices=STAGE_ORDER,
                                         doc="the stages a trial trains, e.g. [flow]: the representation-flow stream "
                                             "alone, as the paper's ablations (null: every stage of model.kind)")
    max_trials: int = option(10, minimum=1, doc="bayesian only: how many trials")

    @staticmethod
    def _finish(values, key, checker):
        factors, where = values["factors"], join_key(key, "factors")
        if not isinstance(factors, dict) or not factors:
            checker.invalid(where, factors, "a mapping of recipe keys to lists of values, e.g. "
                                            "{model.flow.num_layers: [0, 1, 2, 3]}")
        for name, choices in factors.items():
            check_factor(name, choices, values["mode"], f"{where}.{name}", checker)


def check_factor(name, choices, mode, where, checker):
    """Fail through ``checker`` unless ``name`` is a recipe key a trial may set and ``choices`` a list
    of distinct values or, in ``bayesian`` mode, a numeric range."""
    if not isinstance(name, str) or not name.strip():
        checker.fail(f"{where}: a factor is named by a recipe key such as model.flow.iterations")
    if name.split(".")[0] == "search" or name == "runtime.output_dir":
        checker.fail(f"{where}: {name} cannot be a factor (the search sets it for each trial)")
    if isinstance(choices, dict) and mode == "bayesian":
        _check_range(choices, where, checker)
        return
    if isinstance(choices, dict):
        checker.invalid(where, choices, "a list of values (a range {min, max} needs search.mode: bayesian)")
    if not isinstance(choices, list) or not choices:
        checker.invalid(where, choices, "a non-empty list of values, e.g. [10, 20, 30, 50]")
    if any(choices.index(value) != index for index, value in enumerate(choices)):
        checker.invalid(where, choices, "a list of distinct values")


def _check_range(bounds, where, checker):
    numbers = [bounds.get(end) for end in ("min", "max")]
    if (set(bounds) - set(RANGE_KEYS) or any(isinstance(n, bool) or not isinstance(n, (int, float)) for n in numbers)
            or not numbers[0] < numbers[1] or bounds.get("sampling", "linear") not in SAMPLINGS):
        checker.invalid(where, bounds, "a list of values or a range {min: number, max: larger number, "
                                       "sampling: linear or log}")
    if bounds.get("sampling") == "log" and numbers[0] <= 0:
        checker.invalid(where, bounds, "a range with min > 0 for sampling: log")

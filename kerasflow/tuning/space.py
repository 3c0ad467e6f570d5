"""A search's space: its factors, the recipe each trial trains, and the trials grid and
one-at-a-time searches plan.

A trial is a value for every factor (``{recipe key: value}``). Its recipe is the search's recipe
(its ``overrides`` included) with those keys set, without the ``search:`` section, with the
``model.kind`` that trains ``search.stages`` only, and with its own ``runtime.output_dir``. Keys are
set on the recipe as written, before defaults are filled in, so a key that follows another
(``model.flow_backbone`` follows ``model.backbone``) still follows it. Nothing here imports TensorFlow.
"""

import copy
import dataclasses
import itertools
import json
import math
import re
from typing import Any, Optional

import yaml

from kerasflow.config import recipe_from_dict, recipe_to_dict
from kerasflow.config.loading import apply_override, load_raw_recipe
from kerasflow.config.validation import show_value
from kerasflow.errors import UserError
from kerasflow.models.kinds import get_kind, kind_names

PLAN_LIMIT = 500  # value combinations a grid or one-at-a-time search plans without a larger max_trials


def yaml_text(value) -> str:
    """``value`` as one line of YAML that reads back as the same value (``0.001``, ``resnet34``, ``[0, 1]``)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=float("inf")).strip()
    return text.removesuffix("\n...").strip()


def show(value) -> str:
    """A factor's value as tables and progress lines print it (a float to 4 significant digits)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else yaml_text(value)


def describe(values: dict) -> str:
    """``model.flow.num_layers=2, model.backbone=resnet34``."""
    return ", ".join(f"{key}={show(value)}" for key, value in values.items())


@dataclasses.dataclass(frozen=True)
class Factor:
    """One factor: a recipe key, the values trials give it (``choices``, in the recipe's order) or a
    numeric range (``bounds``: ``{min, max, sampling}``), and the recipe's own value of the key."""

    key: str
    choices: Optional[tuple]
    bounds: Optional[dict]
    base: Any


class SearchSpace:
    """The search of the recipe ``source`` (``KEY=VALUE`` ``overrides`` applied; ``factors``, a
    ``{key: values}`` dict as the ``search.factors`` section holds, replaces its factors), checked
    before any training.

    Every factor value, alone, must make a valid recipe; so must every trial a grid or
    one-at-a-time search plans; each failure is one ``UserError`` line naming the key and value.
    """

    def __init__(self, source, overrides=(), factors=None):
        self.raw, self.name = load_raw_recipe(source, overrides)
        if factors and isinstance(self.raw, dict):
            search = self.raw.get("search") if isinstance(self.raw.get("search"), dict) else {}
            self.raw["search"] = {**search, "factors": factors}
        self.recipe = recipe_from_dict(self.raw, source=self.name)
        if self.recipe.search is None:
            raise UserError(f"{self.name} has no search: section; add one (e.g. search: {{factors: "
                            "{model.flow.num_layers: [0, 1, 2, 3]}}) or give the factors to search")
        self.search = self.recipe.search
        kind_training(self.recipe, self.search.stages, self.name)
        resolved = recipe_to_dict(self.recipe)
        self.factors = []
        for key, values in self.search.factors.items():
            for value in [values["min"], values["max"]] if isinstance(values, dict) else values:
                self.trial_recipe({key: value})
            self.factors.append(Factor(key, None if isinstance(values, dict) else tuple(values),
                                       values if isinstance(values, dict) else None, value_at(resolved, key)))

    @property
    def folder(self):
        """The search folder: the recipe's ``runtime.output_dir``."""
        return self.recipe.runtime.output_dir

    @property
    def base_values(self) -> dict:
        """``{key: the recipe's value}`` of every factor."""
        return {factor.key: factor.base for factor in self.factors}

    def trial_recipe(self, values: dict, output_dir=None):
        """The ``Recipe`` a trial with the factor ``values`` trains (in ``output_dir``; default: the
        search folder). ``UserError`` naming the values when they do not make a valid recipe."""
        raw = copy.deepcopy(self.raw)
        raw.pop("search", None)
        for key, value in values.items():
            apply_override(raw, f"{key}={yaml_text(value)}")
        if output_dir is not None:
            apply_override(raw, f"runtime.output_dir={yaml_text(str(output_dir))}")
        source = f"{self.name}, {describe(values)}"
        recipe = recipe_from_dict(raw, source=source)
        kind = kind_training(recipe, self.recipe.search.stages, source)
        if kind != recipe.model.kind:
            apply_override(raw, f"model.kind={kind}")
            recipe = recipe_from_dict(raw, source=source)
        return recipe

    def plan_size(self) -> int:
        """The value combinations a grid (the product of the factors' value counts) or one-at-a-time
        search (their sum) plans, before trials that make the same model are merged."""
        counts = [len(factor.choices) for factor in self.factors]
        return math.prod(counts) if self.search.mode == "grid" else sum(counts)

    def check_plan_size(self, max_trials=None):
        """Refuse (``ValueError``), before the minutes planning takes, a grid or one-at-a-time search of
        more value combinations than ``max_trials`` (default ``PLAN_LIMIT``); a bayesian search runs
        ``search.max_trials`` instead, and refuses a ``max_trials``. Returns the plan's size."""
        if self.search.mode == "bayesian":
            if max_trials is not None:
                raise ValueError(f"`max_trials` applies to grid and one_at_a_time searches; {self.name}'s bayesian "
                                 f"search runs the recipe's search.max_trials trials. "
                                 f"Received: max_trials={max_trials}")
            return self.search.max_trials
        size, limit = self.plan_size(), max_trials or PLAN_LIMIT
        if size > limit:
            counts = " x ".join(str(len(factor.choices)) for factor in self.factors)
            default = "" if max_trials else f" (default {PLAN_LIMIT})"
            raise ValueError(f"`max_trials`{default} must be at least the {size} trials {self.name}'s "
                             f"{self.search.mode} search plans ({counts} values of "
                             f"{', '.join(factor.key for factor in self.factors)}) to plan them all; or give the "
                             f"factors fewer values. Received: max_trials={max_trials}")
        return size

    def planned_trials(self) -> list[dict]:
        """The trials of a ``grid`` or ``one_at_a_time`` search, in order, each distinct model once
        (e.g. one trial without flow layers, whatever the iterations)."""
        if self.search.mode == "grid":
            keys = [factor.key for factor in self.factors]
            candidates = [dict(zip(keys, values))
                          for values in itertools.product(*(factor.choices for factor in self.factors))]
        else:
            candidates = [{**self.base_values, factor.key: value}
                          for factor in self.factors for value in factor.choices]
        same_model = {}
        for values in candidates:
            same_model.setdefault(model_identity(self.trial_recipe(values)), []).append(values)
        # Of the values that make one model, the trial records those nearest the recipe's (no flow layer
        # at the recipe's iterations), where the factor tables look for it.
        base = self.base_values
        return [max(group, key=lambda values: sum(values[key] == base[key] for key in values))
                for group in same_model.values()]


def model_identity(recipe) -> str:
    """What makes two trials the same run: the recipe without its output folder, and without the
    ``model.flow`` keys nothing reads (all but ``num_layers`` when there is no representation-flow
    layer)."""
    values = recipe_to_dict(recipe)
    del values["runtime"]["output_dir"]
    if not recipe.kind.flow_layers or recipe.model.flow.num_layers == 0:
        values["model"]["flow"] = {"num_layers": recipe.model.flow.num_layers}
    return json.dumps(values, sort_keys=True)


def kind_training(recipe, stages, source) -> str:
    """The model kind that trains just ``stages`` (None: all of ``recipe``'s) with the streams of
    ``recipe.model.kind``, e.g. ``representation_flow`` for ``[flow]`` of a ``two_stream`` recipe."""
    if stages is None or tuple(stages) == recipe.kind.stages:
        return recipe.model.kind
    fitting = [name for name in kind_names()
               if all(recipe.kind.inputs.get(model) == inputs for model, inputs in get_kind(name).inputs.items())]
    for name in fitting:
        if get_kind(name).stages == tuple(stages):
            return name
    allowed = ", ".join("[" + ", ".join(get_kind(name).stages) + "]" for name in fitting)
    raise UserError(f"{source}: search.stages = {show_value(list(stages))} is not allowed: expected the stages of "
                    f"one model of model.kind {recipe.model.kind}: {allowed}")


def value_at(values: dict, key: str):
    """The value at the dotted ``key`` of a resolved recipe dict; a stage is named by index or name."""
    node = values
    for part in re.sub(r"\[([^\]]*)\]", r".\1", key).split("."):
        if isinstance(node, list):
            node = node[int(part)] if part.lstrip("-").isdigit() else next(s for s in node if s.get("name") == part)
        elif isinstance(node, dict):
            node = node.get(part)
    return node

"""Training recipes: a YAML file checked strictly into an immutable ``Recipe``.

A recipe has four sections: ``data`` (which videos, how many frames, batch size), ``model`` (which
network), ``stages`` (the training stages in order, each with its optimizer and learning-rate
schedule) and ``runtime`` (output folder, seed, distribution, mixed precision). ``load_recipe`` reads
the file with ``yaml.safe_load``, applies ``--set KEY=VALUE`` overrides and checks every key, type,
value and cross-key rule before returning, so a bad recipe fails with one line before any work.

Path keys (``data.root``, ``data.flow_root``, ``model.weights``, ``runtime.output_dir``) are resolved
against the current working directory when the recipe is loaded; the ``Recipe`` (and the copy saved
in a run folder) holds absolute paths.

Numbers such as ``1e-3`` may be written as in Python: PyYAML reads them as strings (YAML 1.1 wants
``1.0e-3``), and float keys accept such numeric strings.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from kerasflow.errors import UserError
from kerasflow.files import write_text

DATASETS = ("gtea61", "egtea", "hmdb51", "folder", "synthetic")
SPLITS_PER_DATASET = {"gtea61": 4, "egtea": 3, "hmdb51": 3, "folder": 1, "synthetic": 1}
MODEL_KINDS = ("two_stream", "rgb", "representation_flow", "optical_flow", "two_stream_optical_flow")
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "tiny")
STAGE_NAMES = ("rgb_stage1", "rgb_stage2", "flow", "joint")
STAGES_BY_KIND = {
    "rgb": ("rgb_stage1", "rgb_stage2"),
    "representation_flow": ("flow",),
    "optical_flow": ("flow",),
    "two_stream": STAGE_NAMES,
    "two_stream_optical_flow": STAGE_NAMES,
}
REPRESENTATION_FLOW_KINDS = ("two_stream", "representation_flow")
OPTICAL_FLOW_KINDS = ("optical_flow", "two_stream_optical_flow")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("multistep", "exponential", "constant")
DISTRIBUTIONS = ("none", "mirrored", "multi_worker_mirrored")
ON_BAD_VIDEO = ("skip", "fail")

# Keras defaults, written into the resolved recipe when a stage leaves them out.
DEFAULT_SGD_MOMENTUM = 0.0
DEFAULT_ADAM_EPSILON = 1e-7
DEFAULT_MULTISTEP_GAMMA = 0.1


def _option(default=dataclasses.MISSING, *, choices=None, minimum=None, maximum=None, above=None,
            below=None, path=False):
    """A dataclass field with the checks ``_convert`` applies (inclusive/exclusive bounds, choices)."""
    metadata = {"choices": choices, "minimum": minimum, "maximum": maximum, "above": above,
                "below": below, "path": path}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class SyntheticConfig:
    """Options of the generated motion dataset (``data.dataset: synthetic``), made on first use."""

    classes: int = _option(4, minimum=2)
    videos_per_class: int = _option(24, minimum=2)
    frames: int = _option(32, minimum=2)
    size: int = _option(64, minimum=16)
    seed: int = _option(0, minimum=0)  # the dataset's own seed: runtime.seed does not change the data


@dataclass(frozen=True)
class PackedConfig:
    """TFRecord files of the train and test subsets (``python -m kerasflow.data pack``).

    When given, the RGB clips are read from them by the pure-TF reader instead of decoding videos.
    """

    train: str = _option(path=True)
    test: str = _option(path=True)


@dataclass(frozen=True)
class DataConfig:
    """Which videos, how they are sampled, and the default batch size."""

    dataset: str = _option(choices=DATASETS)
    root: str = _option(path=True)
    split: int = _option(1, minimum=1)
    frame_size: int = _option(224, minimum=32)
    rgb_frames: int = _option(25, minimum=1)
    flow_frames: int = _option(16, minimum=1)
    flow_stack: int = _option(5, minimum=1)
    flow_root: Optional[str] = _option(None, path=True)
    batch_size: int = _option(32, minimum=1)
    on_bad_video: str = _option("skip", choices=ON_BAD_VIDEO)
    random_flip: bool = _option(True)
    synthetic: Optional[SyntheticConfig] = _option(None)
    packed: Optional[PackedConfig] = _option(None)

    @staticmethod
    def _finish(values, key, checker):
        dataset = values["dataset"]
        splits = SPLITS_PER_DATASET[dataset]
        if values["split"] > splits:
            allowed = "1" if splits == 1 else f"an integer from 1 to {splits}"
            checker.invalid(_join(key, "split"), values["split"],
                            f"{allowed} ({dataset} has {splits} split{'s' if splits > 1 else ''})")
        if dataset == "synthetic" and values["synthetic"] is None:
            values["synthetic"] = SyntheticConfig()
        elif dataset != "synthetic" and values["synthetic"] is not None:
            checker.fail(f"{_join(key, 'synthetic')} is only read with data.dataset: synthetic "
                         f"(data.dataset is {dataset}); remove it")


@dataclass(frozen=True)
class ModelConfig:
    """The network: which streams, backbone, ImageNet weights and representation-flow settings."""

    kind: str = _option(choices=MODEL_KINDS)
    backbone: str = _option("resnet34", choices=BACKBONES)
    weights: Optional[str] = _option(None, path=True)
    num_flow_layers: int = _option(2, minimum=0, maximum=3)
    flow_iterations: int = _option(20, minimum=1)
    flow_position: int = _option(2, minimum=1, maximum=3)
    flow_bottleneck: int = _option(32, minimum=1)
    rgb_dropout: float = _option(0.7, minimum=0.0, below=1.0)
    flow_dropout: float = _option(0.5, minimum=0.0, below=1.0)
    fusion_dropout: float = _option(0.5, minimum=0.0, below=1.0)
    convlstm_units: int = _option(512, minimum=1)
    num_head_classes: int = _option(1000, minimum=1)


@dataclass(frozen=True)
class ScheduleConfig:
    """Per-epoch learning-rate schedule: ``multistep`` (x gamma at each milestone epoch),
    ``exponential`` (x gamma every epoch) or ``constant``."""

    type: str = _option(choices=SCHEDULES)
    milestones: Optional[list[int]] = _option(None, minimum=1)
    gamma: Optional[float] = _option(None, above=0.0, maximum=1.0)

    def factor(self, epoch: int) -> float:
        """Multiplier of the base learning rate in 0-based ``epoch``.

        ``multistep``: gamma ** (number of milestones <= epoch), i.e. PyTorch ``MultiStepLR`` as
        EgoRCNN steps it; ``exponential``: gamma ** epoch; ``constant``: 1.
        """
        if self.type == "multistep":
            return self.gamma ** sum(1 for milestone in self.milestones if milestone <= epoch)
        if self.type == "exponential":
            return self.gamma ** epoch
        return 1.0

    @staticmethod
    def _finish(values, key, checker):
        kind, milestones, gamma = values["type"], values["milestones"], values["gamma"]
        if kind == "multistep":
            if not milestones:
                checker.fail(f"missing required key {_join(key, 'milestones')} "
                             "(a list of increasing epochs, e.g. [25, 75, 150]) for type: multistep")
            if any(later <= earlier for earlier, later in zip(milestones, milestones[1:])):
                checker.invalid(_join(key, "milestones"), milestones, "strictly increasing epochs")
            if gamma is None:
                values["gamma"] = DEFAULT_MULTISTEP_GAMMA
            return
        if milestones is not None:
            checker.fail(f"{_join(key, 'milestones')} is only read with type: multistep "
                         f"(type is {kind}); remove it")
        if kind == "exponential" and gamma is None:
            checker.fail(f"missing required key {_join(key, 'gamma')} "
                         "(the per-epoch decay factor, e.g. 0.99) for type: exponential")
        if kind == "constant" and gamma is not None:
            checker.fail(f"{_join(key, 'gamma')} is not read with type: constant; remove it")


@dataclass(frozen=True)
class StageConfig:
    """One training stage: what it trains is given by ``name``; how, by the other keys.

    ``batch_size`` and ``frames`` are per-stage overrides of ``data.batch_size`` and of the stage's
    frame count (``data.rgb_frames`` for the RGB stages, ``data.flow_frames`` for the
    representation-flow stage). ``flow_learning_rate`` (joint stage only) is the base learning rate of
    the flow stream's fine-tuned layers (EgoRCNN: 1e-4 while the rest uses 1e-2); null = same as
    ``learning_rate``.
    """

    name: str = _option(choices=STAGE_NAMES)
    epochs: int = _option(minimum=1)
    optimizer: str = _option(choices=OPTIMIZERS)
    learning_rate: float = _option(above=0.0)
    weight_decay: float = _option(0.0, minimum=0.0)
    momentum: Optional[float] = _option(None, minimum=0.0, below=1.0)
    epsilon: Optional[float] = _option(None, above=0.0)
    schedule: ScheduleConfig = _option(ScheduleConfig("constant"))
    batch_size: Optional[int] = _option(None, minimum=1)
    frames: Optional[int] = _option(None, minimum=1)
    flow_learning_rate: Optional[float] = _option(None, above=0.0)

    def learning_rate_at(self, epoch: int) -> float:
        """Learning rate in 0-based ``epoch``: ``learning_rate * schedule.factor(epoch)``."""
        return self.learning_rate * self.schedule.factor(epoch)

    @staticmethod
    def _finish(values, key, checker):
        optimizer = values["optimizer"]
        for name, owner, default in (("momentum", "sgd", DEFAULT_SGD_MOMENTUM),
                                     ("epsilon", "adam", DEFAULT_ADAM_EPSILON)):
            if optimizer == owner and values[name] is None:
                values[name] = default
            elif optimizer != owner and values[name] is not None:
                checker.fail(f"{_join(key, name)} is only read with optimizer: {owner} "
                             f"(optimizer is {optimizer}); remove it")
        if values["name"] == "joint" and values["frames"] is not None:
            checker.fail(f"{_join(key, 'frames')} is not read by the joint stage; "
                         "set data.rgb_frames and data.flow_frames instead")
        if values["name"] != "joint" and values["flow_learning_rate"] is not None:
            checker.fail(f"{_join(key, 'flow_learning_rate')} is only read by the joint stage "
                         f"(this stage is {values['name']}); remove it")
        if values["flow_learning_rate"] is not None and optimizer != "sgd":
            checker.fail(f"{_join(key, 'flow_learning_rate')} needs optimizer: sgd (a second learning rate "
                         f"is a gradient scale, exact for SGD only); remove it or use sgd")


@dataclass(frozen=True)
class RuntimeConfig:
    """Where the run folder goes and how training is executed."""

    output_dir: str = _option(path=True)
    seed: int = _option(0, minimum=0)
    distribution: str = _option("none", choices=DISTRIBUTIONS)
    mixed_precision: bool = _option(False)


@dataclass(frozen=True)
class Recipe:
    """A checked training recipe. Build it with ``load_recipe`` or ``recipe_from_dict``."""

    data: DataConfig = _option()
    model: ModelConfig = _option()
    stages: list[StageConfig] = _option()
    runtime: RuntimeConfig = _option()

    def stage(self, name: str) -> StageConfig:
        """The stage called ``name``; ``KeyError`` when this recipe has none."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def batch_size_for(self, stage: StageConfig) -> int:
        """The stage's batch size: its own ``batch_size`` or ``data.batch_size``."""
        return stage.batch_size if stage.batch_size is not None else self.data.batch_size

    def frames_for(self, stage: StageConfig) -> tuple[int, int]:
        """``(rgb_frames, flow_frames)`` that ``stage`` samples per video, overrides applied."""
        rgb, flow = self.data.rgb_frames, self.data.flow_frames
        if stage.frames is not None and stage.name in ("rgb_stage1", "rgb_stage2"):
            rgb = stage.frames
        elif stage.frames is not None and stage.name == "flow":
            flow = stage.frames
        return rgb, flow

    @staticmethod
    def _finish(values, key, checker):
        data, model, stages = values["data"], values["model"], values["stages"]
        _check_stage_names(model.kind, [stage.name for stage in stages], checker)
        recipe = Recipe(**values)
        for index, stage in enumerate(stages):
            if model.kind in OPTICAL_FLOW_KINDS and stage.name == "flow" and stage.frames is not None:
                checker.fail(f"stages[{index}].frames is not read by the optical-flow stream; "
                             "set data.flow_stack (flow frames per stack) instead")
        if model.kind in REPRESENTATION_FLOW_KINDS:
            needed = model.num_flow_layers + 1
            for where, frames in [("data.flow_frames", data.flow_frames)] + [
                    (f"stages[{index}].frames", stage.frames) for index, stage in enumerate(stages)
                    if stage.name == "flow" and stage.frames is not None]:
                if frames < needed:
                    checker.invalid(where, frames, f"at least {needed} (each of the "
                                    f"model.num_flow_layers = {model.num_flow_layers} representation-"
                                    "flow layers uses one frame pair)")
        if data.synthetic is not None:
            longest = max(max(recipe.frames_for(stage)) for stage in stages)
            if data.synthetic.frames < longest:
                checker.invalid("data.synthetic.frames", data.synthetic.frames,
                                f"at least {longest}, the most frames a stage samples per video")


def _check_stage_names(kind, names, checker):
    expected = list(STAGES_BY_KIND[kind])
    if names == expected:
        return
    problems = [f"missing {', '.join(n for n in expected if n not in names)}"
                if any(n not in names for n in expected) else "",
                f"not used by this kind: {', '.join(n for n in names if n not in expected)}"
                if any(n not in expected for n in names) else "",
                f"repeated: {', '.join(sorted({n for n in names if names.count(n) > 1}))}"
                if len(set(names)) < len(names) else ""]
    detail = "; ".join(p for p in problems if p) or "wrong order"
    checker.fail(f"stages: model.kind {kind} trains {', '.join(expected)} in this order; "
                 f"got {', '.join(names) or 'no stages'} ({detail})")


# --------------------------------------------------------------------------------------------
# Checking a raw mapping into dataclasses


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class _Checker:
    """Raises one-line ``UserError``s prefixed with the recipe's source (its file name)."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, message: str):
        raise UserError(f"{self.source}: {message}")

    def invalid(self, key: str, value: Any, allowed: str):
        self.fail(f"{key} = {_show(value)} is not allowed: expected {allowed}")


def _describe(kind, meta, nouns=False) -> str:
    """What a field accepts, in words, e.g. 'an integer >= 1' or 'one of adam, sgd' (``nouns``:
    the plural 'integers >= 1' that follows 'a list of')."""
    if meta.get("choices"):
        return "one of " + ", ".join(meta["choices"])
    if meta.get("path"):
        return "a path"
    base = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[kind]
    if nouns:
        base = {int: "integers", float: "numbers"}.get(kind, base)
    bounds = [f">= {meta['minimum']}" if meta.get("minimum") is not None else "",
              f"> {meta['above']}" if meta.get("above") is not None else "",
              f"<= {meta['maximum']}" if meta.get("maximum") is not None else "",
              f"< {meta['below']}" if meta.get("below") is not None else ""]
    bounds = " and ".join(b for b in bounds if b)
    return f"{base} {bounds}".strip()


def _convert(kind, value, key, meta, checker, nullable=False):
    """Check ``value`` against the annotated type ``kind`` and the field's ``meta``; return it."""

    def reject(allowed):
        checker.invalid(key, value, allowed + (" or null" if nullable else ""))

    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        (inner,) = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return None if value is None else _convert(inner, value, key, meta, checker, nullable=True)
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            reject(f"a mapping with keys {', '.join(_names(kind))}")
        return _build(kind, value, key, checker)
    if typing.get_origin(kind) is list:
        (inner,) = typing.get_args(kind)
        if not isinstance(value, list):
            reject("a list of mappings" if dataclasses.is_dataclass(inner)
                   else f"a list of {_describe(inner, meta, nouns=True)}")
        return [_convert(inner, item, f"{key}[{index}]", meta, checker)
                for index, item in enumerate(value)]
    if kind is bool:
        if not isinstance(value, bool):
            reject("true or false")
        return value
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            reject(_describe(int, meta))
        number = value
    elif kind is float:
        number = value
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            number = float(value)
        if not isinstance(number, (int, float)) or isinstance(number, bool) or not math.isfinite(number):
            reject(_describe(float, meta))
        number = float(number)
    elif kind is str:
        if not isinstance(value, str) or not value.strip():
            reject(_describe(str, meta))
        if meta.get("choices") and value not in meta["choices"]:
            close = difflib.get_close_matches(value, meta["choices"], n=1)
            reject(_describe(str, meta) + (f" (did you mean {close[0]}?)" if close else ""))
        return os.path.abspath(os.path.expanduser(value)) if meta.get("path") else value
    else:  # pragma: no cover - a schema annotation this function does not know
        raise TypeError(f"unsupported recipe field type {kind!r}")
    if ((meta.get("minimum") is not None and number < meta["minimum"])
            or (meta.get("above") is not None and number <= meta["above"])
            or (meta.get("maximum") is not None and number > meta["maximum"])
            or (meta.get("below") is not None and number >= meta["below"])):
        reject(_describe(kind, meta))
    return number


def _names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _build(cls, raw: dict, key: str, checker: _Checker):
    """Check the mapping ``raw`` found at ``key`` and build the dataclass ``cls`` from it."""
    names = _names(cls)
    for name in raw:
        if name not in names:
            full = _join(key, str(name))
            close = difflib.get_close_matches(str(name), names, n=1, cutoff=0.5)
            hint = (f"did you mean {_join(key, close[0])}?" if close
                    else f"valid keys: {', '.join(names)}")
            checker.fail(f"unknown key {full}; {hint}")
    hints = typing.get_type_hints(cls)
    values = {}
    for spec in dataclasses.fields(cls):
        full = _join(key, spec.name)
        if spec.name in raw:
            values[spec.name] = _convert(hints[spec.name], raw[spec.name], full, spec.metadata,
                                         checker)
        elif spec.default is not dataclasses.MISSING:
            values[spec.name] = spec.default
        else:
            checker.fail(f"missing required key {full}")
    finish = getattr(cls, "_finish", None)
    if finish is not None:
        finish(values, key, checker)
    return cls(**values)


# --------------------------------------------------------------------------------------------
# Public API


def recipe_from_dict(raw: dict, source: str = "recipe") -> Recipe:
    """Check a recipe mapping (as ``yaml.safe_load`` returns it) and build the ``Recipe``.

    ``source`` starts every error message (normally the recipe file name).
    """
    checker = _Checker(source)
    if not isinstance(raw, dict):
        checker.fail(f"expected a mapping with sections {', '.join(_names(Recipe))}, "
                     f"got {type(raw).__name__ if raw is not None else 'an empty document'}")
    return _build(Recipe, raw, "", checker)


def load_recipe(path, overrides=()) -> Recipe:
    """Read the YAML recipe at ``path``, apply ``overrides`` and check everything.

    Each override is a ``--set`` string ``KEY=VALUE``: KEY is a dotted path (``data.root``,
    ``model.flow_iterations``); a stage is addressed by index or name (``stages.0.epochs``,
    ``stages.joint.schedule.gamma``, also ``stages[0].epochs``); VALUE is parsed as YAML
    (``3``, ``1e-3``, ``[10, 20]``, ``{type: constant}``, ``null``; empty = null). Overrides apply in
    order, before any check. Raises ``UserError`` with one line on any problem.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"recipe file not found: {path}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text (UTF-8) YAML recipe") from None
    except OSError as error:
        raise UserError(f"cannot read recipe file {path}: {error.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "cannot parse"
        raise UserError(f"{path} is not valid YAML: {problem}{where}") from None
    if isinstance(raw, dict):
        for override in overrides:
            _apply_override(raw, override)
    return recipe_from_dict(raw, source=str(path))


def recipe_to_dict(recipe: Recipe) -> dict:
    """The recipe as plain YAML-ready data; ``recipe_from_dict`` of it gives an equal ``Recipe``."""
    return dataclasses.asdict(recipe)


def save_recipe(recipe: Recipe, path) -> None:
    """Write ``recipe`` as YAML to ``path`` atomically; ``load_recipe(path)`` returns an equal ``Recipe``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ("# Resolved kerasflow recipe (defaults filled in, paths absolute).\n"
            + yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False, default_flow_style=False))
    write_text(path, text)


# --------------------------------------------------------------------------------------------
# --set overrides


def _apply_override(raw: dict, override: str) -> None:
    """Set one ``KEY=VALUE`` override in the raw recipe mapping (checks come later)."""
    key, separator, value_text = override.partition("=")
    key = re.sub(r"\[([^\]]*)\]", r".\1", key.strip())
    parts = key.split(".")
    if not separator or not all(parts):
        raise UserError(f"--set {override!r}: expected KEY=VALUE with a dotted KEY, "
                        "e.g. --set data.root=/data/egtea or --set stages.joint.epochs=3")
    try:
        value = yaml.safe_load(value_text)
    except yaml.YAMLError:
        raise UserError(f"--set {override!r}: the value {value_text!r} is not valid YAML") from None
    node = raw
    for depth, part in enumerate(parts[:-1]):
        node = _child(node, part, ".".join(parts[:depth + 1]), override)
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, key, override)] = value
    else:
        node[last] = value


def _child(node, part: str, walked: str, override: str):
    """The container under ``node[part]`` for an override, creating missing mappings."""
    if isinstance(node, list):
        child = node[_list_index(node, part, walked, override)]
    else:
        if node.get(part) is None:
            node[part] = {}
        child = node[part]
    if not isinstance(child, (dict, list)):
        raise UserError(f"--set {override!r}: {walked} is {_show(child)}, not a section "
                        "that has keys")
    return child


def _list_index(items: list, part: str, walked: str, override: str) -> int:
    """Index of ``part`` in a list: a number, or the ``name`` of a stage."""
    if re.fullmatch(r"-?\d+", part):
        index = int(part)
        if not -len(items) <= index < len(items):
            raise UserError(f"--set {override!r}: {walked} is out of range "
                            f"(the list has {len(items)} entries)")
        return index
    names = [item.get("name") for item in items if isinstance(item, dict)]
    if part in names:
        return names.index(part)
    raise UserError(f"--set {override!r}: no stage named {part!r} in stages "
                    f"(have {', '.join(map(str, names)) or 'none'}); use a name or an index")

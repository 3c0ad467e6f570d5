"""The recipe key reference, ``docs/recipe-keys.md``, rendered from the schema and the registries.

``recipe_key_reference()`` walks the ``Recipe`` dataclasses: each key's default, what it accepts (the
words the schema's own error messages use, ``validation.describe``) and its ``doc`` metadata; then the
tables of the names the registries give (model kinds, backbone presets, datasets, flow networks). The
page is written by ``python -m kerasflow.config reference``; ``tests/test_docs.py`` fails when the
committed page differs. Imports no TensorFlow.
"""

import dataclasses
import re
import types
import typing

from kerasflow.backbones.registry import PRESETS, imagenet_checkpoint, preset_names
from kerasflow.config.schema import Recipe
from kerasflow.config.validation import choices_of, describe
from kerasflow.data.datasets import dataset_names, get_dataset
from kerasflow.models.flow_networks import flow_network_names, get_flow_network
from kerasflow.models.kinds import STAGE_MODEL, get_kind, kind_names

COMMAND = "python -m kerasflow.config reference > docs/recipe-keys.md"

_INTRO = """\
Every key a recipe may have: its default (`required` when it has none), what it accepts and what it
means. A recipe is checked against these before any work starts; a wrong key or value is one line that
names it (see [recipes.md](recipes.md) for how recipes are written, overridden with `--set` and
checked). The names a key accepts come from the registries listed after the keys."""


def _union_members(kind):
    """``(types, nullable)`` of an annotation: ``Optional[X]`` -> ``([X], True)``."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        members = typing.get_args(kind)
        return [member for member in members if member is not type(None)], type(None) in members
    return [kind], False


def accepts(kind, meta) -> str:
    """What a key of annotated type ``kind`` accepts, in the schema's words."""
    members, nullable = _union_members(kind)
    words = []
    for member in members:
        if member is typing.Any:
            words.append("a mapping (checked as the description says)")
        elif dataclasses.is_dataclass(member):
            words.append("a mapping (its keys below)")
        elif typing.get_origin(member) is list and dataclasses.is_dataclass(typing.get_args(member)[0]):
            words.append("a list of mappings (their keys below)")
        elif typing.get_origin(member) in (typing.Union, types.UnionType):
            words.append(accepts(member, meta))
        elif member is str and len(choices_of(meta)) == 1:
            words.append(choices_of(meta)[0])
        elif meta.get("choices") and typing.get_origin(member) is list:
            words.append("a list of names from " + ", ".join(choices_of(meta)))
        else:
            words.append(describe(member, meta))
    return " or ".join(words + (["null"] if nullable else []))


def show_default(value) -> str:
    """A default as a recipe writes it (YAML): null, true, [0, 1], a name."""
    if value is dataclasses.MISSING:
        return "required"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(show_default(item) for item in value) + "]"
    if dataclasses.is_dataclass(value):  # the keys it sets besides their own defaults, e.g. {type: constant}
        fields = {spec.name: getattr(value, spec.name) for spec in dataclasses.fields(value)
                  if getattr(value, spec.name) != spec.default}
        if not fields:
            return "(its keys' defaults)"
        return "{" + ", ".join(f"{name}: {show_default(item)}" for name, item in fields.items()) + "}"
    return str(value)


def _cell(text) -> str:
    """Text for a Markdown table cell, on one line: pipes escaped, and ``<`` where it would open an HTML tag."""
    return re.sub(r"<(?=[A-Za-z/!])", r"\\<", " ".join(str(text).split()).replace("|", "\\|"))


def _summary(cls) -> str:
    """The first paragraph of a dataclass's docstring, on one line."""
    return " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split()).replace("``", "`")


def _nested(kind):
    """The dataclass a key's annotation holds (directly, optional, or as list items), or None."""
    for member in _union_members(kind)[0]:
        if typing.get_origin(member) is list:
            member = typing.get_args(member)[0]
        if dataclasses.is_dataclass(member):
            return member
    return None


def _key_of(prefix, name, kind):
    """How a nested section's keys are written: ``model.flow``, ``stages[]`` (a list of mappings)."""
    key = f"{prefix}.{name}" if prefix else name
    return key + ("[]" if any(typing.get_origin(member) is list for member in _union_members(kind)[0]) else "")


def _row(key, spec, kind) -> str:
    """One table row: the key, its default, what it accepts, its ``doc``."""
    return (f"| `{key}` | `{show_default(spec.default)}` | {_cell(accepts(kind, spec.metadata))} | "
            f"{_cell(spec.metadata.get('doc', ''))} |")


def _section(cls, key, lines, level):
    """The table of ``cls``'s keys under ``key``, then one section per nested dataclass."""
    lines += [f"{'#' * level} `{key}`", "", _summary(cls), "", "| key | default | accepts | what it is |",
              "|---|---|---|---|"]
    hints = typing.get_type_hints(cls)
    nested = []
    for spec in dataclasses.fields(cls):
        kind = hints[spec.name]
        lines.append(_row(f"{key}.{spec.name}", spec, kind))
        if _nested(kind) is not None:
            nested.append((_nested(kind), _key_of(key, spec.name, kind)))
    lines.append("")
    renamed = getattr(cls, "_renamed", {})
    if renamed:
        lines += ["Keys of earlier versions, refused with a line naming their new place: " + ", ".join(
            f"`{key}.{old}` is now `{key}.{new}`" for old, new in renamed.items()) + ".", ""]
    for inner, inner_key in nested:
        _section(inner, inner_key, lines, level + 1)


def _registries(lines):
    lines += ["## Names the registries give", "",
              "### Model kinds (`model.kind`, `kerasflow.models.kinds`)", "",
              "| kind | stages, in order | models (inputs) | what it is |", "|---|---|---|---|"]
    for kind in map(get_kind, kind_names()):
        models = ", ".join(f"{model} ({', '.join(inputs)})" for model, inputs in kind.inputs.items())
        lines.append(f"| `{kind.name}` | {', '.join(kind.stages)} | {models} | {_cell(kind.summary)} |")
    lines += ["", "Stages train these models: " + ", ".join(f"{stage} the {model} model"
                                                             for stage, model in STAGE_MODEL.items()) + ".", ""]
    lines += ["### Backbone presets (`model.backbone`, `model.flow_backbone`, `kerasflow.backbones.registry`)", "",
              "| preset | what it is | ImageNet checkpoint (`weights: imagenet`) |", "|---|---|---|"]
    for name in preset_names():
        checkpoint = f"`{imagenet_checkpoint(name)}`" if imagenet_checkpoint(name) else "none"
        lines.append(f"| `{name}` | {_cell(PRESETS[name]['description'])} | {checkpoint} |")
    lines += ["", "### Datasets (`data.dataset`, `kerasflow.data.datasets`)", "",
              "| dataset | `data.root` holds | splits | `data.validation: null` means |", "|---|---|---:|---|"]
    for dataset in map(get_dataset, dataset_names()):
        lines.append(f"| `{dataset.name}` | {_cell(dataset.summary)} | {dataset.splits} | `{dataset.validation}` |")
    lines += ["", "### Flow networks (`model.flow_network`, `kerasflow.models.flow_networks`)", "",
              "| network | what it is |", "|---|---|"]
    for network in map(get_flow_network, flow_network_names()):
        lines.append(f"| `{network.name}` | {_cell(network.summary)} |")
    lines.append("")


def recipe_key_reference() -> str:
    """``docs/recipe-keys.md``: every recipe key and the registries' names, as Markdown."""
    lines = ["# Recipe keys", "",
             f"<!-- Generated from kerasflow/config/schema.py and the registries by `{COMMAND}`; "
             "do not edit: tests/test_docs.py fails when this page differs from what the command writes. -->", "",
             _INTRO, "", "## Sections", "", "| section | default | accepts | what it is |", "|---|---|---|---|"]
    hints = typing.get_type_hints(Recipe)
    lines += [_row(spec.name, spec, hints[spec.name]) for spec in dataclasses.fields(Recipe)] + [""]
    for spec in dataclasses.fields(Recipe):
        _section(_nested(hints[spec.name]), _key_of("", spec.name, hints[spec.name]), lines, 2)
    _registries(lines)
    return "\n".join(lines).rstrip("\n") + "\n"

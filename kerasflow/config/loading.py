"""Reading, overriding and writing recipes: YAML files or installed recipe names, ``--set`` overrides.

``load_recipe`` reads a YAML recipe (a path, or the name of a recipe installed with the package such
as ``demo``), applies ``--set KEY=VALUE`` overrides and checks everything against the schema, so a
bad recipe fails with one line before any work. The ``Recipe`` (and the copy saved in a run folder)
holds absolute paths, resolved against the working directory.
"""

import dataclasses
import re
from pathlib import Path

import yaml

import kerasflow.recipes as installed
from kerasflow.atomic import write_text
from kerasflow.config.schema import Recipe
from kerasflow.config.validation import Checker, build, field_names, show_value
from kerasflow.errors import UserError


def recipe_from_dict(raw: dict, source: str = "recipe") -> Recipe:
    """Check a recipe mapping (as ``yaml.safe_load`` returns it) and build the ``Recipe``.

    ``source`` starts every error message (normally the recipe file name).
    """
    checker = Checker(source)
    if not isinstance(raw, dict):
        checker.fail(f"expected a mapping with sections {', '.join(field_names(Recipe))}, "
                     f"got {type(raw).__name__ if raw is not None else 'an empty document'}")
    return build(Recipe, raw, "", checker)


def _read_text(source):
    """``(YAML text, name for messages)`` of a recipe file, or of an installed recipe's name."""
    path = Path(source)
    if not path.is_file() and path.parent == Path(".") and path.suffix in ("", ".yaml", ".yml"):
        try:
            return installed.text(path.stem), f"recipe {path.stem}"
        except FileNotFoundError:
            pass
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except FileNotFoundError:
        raise UserError(f"recipe file not found: {path} (installed recipes: {', '.join(installed.names())})") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder; pass a YAML recipe file or an installed recipe's name") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text (UTF-8) YAML recipe") from None
    except OSError as error:
        raise UserError(f"cannot read recipe file {path}: {error.strerror}") from None


def load_recipe(source, overrides=()) -> Recipe:
    """Read the recipe ``source`` (a YAML path or an installed name), apply ``overrides``, check it.

    Each override is a ``--set`` string ``KEY=VALUE``: KEY is a dotted path (``data.root``,
    ``model.flow.iterations``); a stage is addressed by index or name (``stages.0.epochs``,
    ``stages.joint.schedule.gamma``, also ``stages[0].epochs``); VALUE is parsed as YAML
    (``3``, ``1e-3``, ``[10, 20]``, ``{type: constant}``, ``null``; empty = null). Overrides apply in
    order, before any check; one override may be given as a plain string. Raises ``UserError`` with one
    line on any problem.
    """
    raw, name = load_raw_recipe(source, overrides)
    return recipe_from_dict(raw, source=name)


def load_raw_recipe(source, overrides=()):
    """``(mapping, name for messages)``: the recipe ``source`` as YAML gives it, ``overrides`` applied,
    not checked yet (``recipe_from_dict`` checks it). Keys left out stay out, so a value that follows
    another (``model.flow_backbone`` follows ``model.backbone``) still follows it after more overrides."""
    overrides = [overrides] if isinstance(overrides, str) else overrides
    text, name = _read_text(source)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "cannot parse"
        raise UserError(f"{name} is not valid YAML: {problem}{where}") from None
    if isinstance(raw, dict):
        for override in overrides:
            apply_override(raw, override)
    return raw, name


def recipe_to_dict(recipe: Recipe) -> dict:
    """The recipe as plain YAML-ready data (lists, not tuples); ``recipe_from_dict`` of it gives an
    equal ``Recipe``."""
    return _plain(dataclasses.asdict(recipe))


def _plain(value):
    if isinstance(value, dict):
        return {key: _plain(child) for key, child in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(child) for child in value]
    return value


def recipe_to_yaml(recipe: Recipe) -> str:
    """The resolved recipe as YAML text (defaults filled in, paths absolute)."""
    return ("# Resolved kerasflow recipe (defaults filled in, paths absolute).\n"
            + yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False, default_flow_style=False))


def save_recipe(recipe: Recipe, path) -> None:
    """Write ``recipe`` as YAML to ``path`` atomically; ``load_recipe(path)`` returns an equal ``Recipe``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, recipe_to_yaml(recipe))


def apply_override(raw: dict, override: str) -> None:
    """Set one ``KEY=VALUE`` override in the raw recipe mapping (checks come later)."""
    key, separator, value_text = override.partition("=")
    key = re.sub(r"\[([^\]]*)\]", r".\1", key.strip())
    parts = key.split(".")
    if not separator or not all(parts):
        raise UserError(f"the override {override!r}: expected KEY=VALUE with a dotted KEY, "
                        "e.g. data.root=/data/egtea or stages.joint.epochs=3")
    try:
        value = yaml.safe_load(value_text)
    except yaml.YAMLError:
        raise UserError(f"the override {override!r}: the value {value_text!r} is not valid YAML") from None
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
        raise UserError(f"the override {override!r}: {walked} is {show_value(child)}, not a section that has keys")
    return child


def _list_index(items: list, part: str, walked: str, override: str) -> int:
    """Index of ``part`` in a list: a number, or the ``name`` of a stage."""
    if re.fullmatch(r"-?\d+", part):
        index = int(part)
        if not -len(items) <= index < len(items):
            raise UserError(f"the override {override!r}: {walked} is out of range "
                            f"(the list has {len(items)} entries)")
        return index
    names = [item.get("name") for item in items if isinstance(item, dict)]
    if part in names:
        return names.index(part)
    raise UserError(f"the override {override!r}: no stage named {part!r} in stages "
                    f"(have {', '.join(map(str, names)) or 'none'}); use a name or an index")

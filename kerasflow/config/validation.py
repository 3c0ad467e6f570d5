"""The checking machinery behind the recipe schema: typed dataclass fields, one-line errors.

A schema is a tree of frozen dataclasses whose fields are made with ``option`` (default, allowed
choices, bounds, whether the value is a path). ``build`` checks a raw mapping (as ``yaml.safe_load``
returns it) against such a dataclass, recursively, and either returns the instance or raises one
``UserError`` line that names the key, the value and what is allowed. A dataclass may define a
static ``_finish(values, key, checker)`` hook for rules across its keys; it may fill defaults in
``values`` or fail through ``checker``, and a ``_renamed`` mapping of old key names to their new
dotted names (an old name is refused in one line that names the new one).

Numbers such as ``1e-3`` may be written as in Python: PyYAML reads them as strings (YAML 1.1 wants
``1.0e-3``), and float fields accept such numeric strings.

Why not pydantic v2: it would replace ``convert`` and ``build`` (about 70 lines), but the one-line
messages the tests pin (the closest valid key, "an integer from 1 to 3 (egtea has 3 splits)", "or
null") would have to be rebuilt from its error records (about as many lines), YAML 1.1's numeric
strings need a custom validator, and a compiled dependency would join the install.
"""

import dataclasses
import difflib
import math
import os
import re
import types
import typing
from typing import Any

from kerasflow.errors import UserError

_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
_PLURAL_WORDS = {int: "integers", float: "numbers"}


def option(default=dataclasses.MISSING, *, choices=None, minimum=None, maximum=None, above=None, below=None,
           path=False, words=(), doc=""):
    """A dataclass field with the checks ``build`` applies.

    ``choices``: the allowed strings, or a function returning them (a registry's names);
    ``minimum``/``maximum``: inclusive bounds, ``above``/``below``: exclusive bounds;
    ``path``: the string is a path, made absolute against the working directory, unless it is one of
    ``words`` (names a path key also takes, e.g. ``imagenet``);
    ``doc``: what the key means, in one line (the recipe key reference, ``kerasflow.config.reference``).
    """
    metadata = {"choices": choices, "minimum": minimum, "maximum": maximum, "above": above,
                "below": below, "path": path, "words": tuple(words), "doc": doc}
    return dataclasses.field(default=default, metadata=metadata)


def join_key(prefix: str, name: str) -> str:
    """``"data"``, ``"split"`` -> ``"data.split"``."""
    return f"{prefix}.{name}" if prefix else name


def show_value(value: Any) -> str:
    """A value as an error message shows it: its repr, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Checker:
    """Raises one-line ``UserError``s prefixed with the recipe's source (its file or recipe name)."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, message: str):
        raise UserError(f"{self.source}: {message}")

    def invalid(self, key: str, value: Any, allowed: str):
        self.fail(f"{key} = {show_value(value)} is not allowed: expected {allowed}")


def choices_of(meta) -> tuple:
    """The allowed strings of a field (calling a registry function when it is one)."""
    choices = meta.get("choices")
    return tuple(choices() if callable(choices) else choices or ())


def describe(kind, meta, nouns=False) -> str:
    """What a field accepts, in words, e.g. 'an integer >= 1' or 'one of adam, sgd' (``nouns``:
    the plural 'integers >= 1' that follows 'a list of')."""
    if kind is bool:
        return "true or false"
    if typing.get_origin(kind) is list:
        return f"a list of {describe(typing.get_args(kind)[0], meta, nouns=True)}"
    if meta.get("choices"):
        return "one of " + ", ".join(choices_of(meta))
    if meta.get("path"):
        return " or ".join(["paths" if nouns else "a path", *meta.get("words", ())])
    base = (_PLURAL_WORDS if nouns else {}).get(kind, _TYPE_WORDS[kind])
    bounds = [f">= {meta['minimum']}" if meta.get("minimum") is not None else "",
              f"> {meta['above']}" if meta.get("above") is not None else "",
              f"<= {meta['maximum']}" if meta.get("maximum") is not None else "",
              f"< {meta['below']}" if meta.get("below") is not None else ""]
    bounds = " and ".join(b for b in bounds if b)
    return f"{base} {bounds}".strip()


def field_names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def convert(kind, value, key, meta, checker, nullable=False):
    """Check ``value`` against the annotated type ``kind`` and the field's ``meta``; return it."""

    def reject(allowed):
        checker.invalid(key, value, allowed + (" or null" if nullable else ""))

    if kind is Any:  # a free-form value: its dataclass's ``_finish`` checks it
        return value
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        choices = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        nullable = nullable or len(choices) < len(typing.get_args(kind))
        if value is None and nullable:
            return None
        if len(choices) == 1:
            return convert(choices[0], value, key, meta, checker, nullable=nullable)
        for inner in choices:  # e.g. bool | str: the first type that takes the value
            try:
                return convert(inner, value, key, meta, checker, nullable=nullable)
            except UserError:
                continue
        reject(" or ".join(describe(inner, meta) for inner in choices))
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            reject(f"a mapping with keys {', '.join(field_names(kind))}")
        return build(kind, value, key, checker)
    if typing.get_origin(kind) is list:
        (inner,) = typing.get_args(kind)
        if not isinstance(value, list):
            reject("a list of mappings" if dataclasses.is_dataclass(inner)
                   else f"a list of {describe(inner, meta, nouns=True)}")
        return [convert(inner, item, f"{key}[{index}]", meta, checker) for index, item in enumerate(value)]
    if kind is bool:
        if not isinstance(value, bool):
            reject("true or false")
        return value
    if kind is str:
        return _convert_string(value, meta, reject)
    number = value
    if kind is float and isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
        number = float(value)
    if (not isinstance(number, (float, int) if kind is float else int) or isinstance(number, bool)
            or not math.isfinite(number)):
        reject(describe(kind, meta))
    number = kind(number)
    if ((meta.get("minimum") is not None and number < meta["minimum"])
            or (meta.get("above") is not None and number <= meta["above"])
            or (meta.get("maximum") is not None and number > meta["maximum"])
            or (meta.get("below") is not None and number >= meta["below"])):
        reject(describe(kind, meta))
    return number


def _convert_string(value, meta, reject):
    if not isinstance(value, str) or not value.strip():
        reject(describe(str, meta))
    choices = choices_of(meta)
    if choices and value not in choices:
        close = difflib.get_close_matches(value, choices, n=1)
        reject(describe(str, meta) + (f" (did you mean {close[0]}?)" if close else ""))
    if meta.get("path") and value not in meta.get("words", ()):
        return os.path.abspath(os.path.expanduser(value))
    return value


def build(cls, raw: dict, key: str, checker: Checker):
    """Check the mapping ``raw`` found at ``key`` and build the dataclass ``cls`` from it."""
    names = field_names(cls)
    renamed = getattr(cls, "_renamed", {})
    for name in raw:
        if name in renamed:
            checker.fail(f"{join_key(key, name)} is now {join_key(key, renamed[name])}; rename it")
        if name not in names:
            full = join_key(key, str(name))
            close = difflib.get_close_matches(str(name), names, n=1, cutoff=0.5)
            hint = f"did you mean {join_key(key, close[0])}?" if close else f"valid keys: {', '.join(names)}"
            checker.fail(f"unknown key {full}; {hint}")
    hints = typing.get_type_hints(cls)
    values = {}
    for spec in dataclasses.fields(cls):
        full = join_key(key, spec.name)
        if spec.name in raw:
            values[spec.name] = convert(hints[spec.name], raw[spec.name], full, spec.metadata, checker)
        elif spec.default is not dataclasses.MISSING:
            values[spec.name] = spec.default
        else:
            checker.fail(f"missing required key {full}")
    finish = getattr(cls, "_finish", None)
    if finish is not None:
        finish(values, key, checker)
    return cls(**values)

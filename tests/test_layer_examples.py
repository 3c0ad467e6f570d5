"""Every public layer's docstring ends with an ``Example:`` that runs as written and shows its result's shape."""

import ast
import importlib
import inspect
import pkgutil
import re
import textwrap

import keras
import pytest

import kerasflow.layers

# "Example:", a blank line, then one fenced python block; nothing but blank lines may follow it.
EXAMPLE = re.compile(r"^Example:\n\n```python\n(?P<code>.*?)^```\s*\Z", re.S | re.M)
# The last line shows the result's shape: `y.shape  # (2, 3, 8, 8, 6)`, or asserts it.
SHAPE_LINE = re.compile(r"^(?P<expr>\S.*\.shape)\s+#\s*(?P<shape>\(.*\))\s*$")


def example_of(name):
    doc = inspect.getdoc(getattr(kerasflow.layers, name)) or ""
    found = EXAMPLE.search(doc)
    assert found, f"{name}'s docstring has no `Example:` section with a ```python block at its end"
    return textwrap.dedent(found.group("code"))


@pytest.mark.parametrize("name", kerasflow.layers.__all__)
def test_example_runs_and_shows_the_right_shape(name):
    code = example_of(name)
    assert "from kerasflow.layers import" in code and name in code, "the example should use the public name"
    *body, last = code.rstrip().splitlines()
    namespace = {"__name__": f"example_{name}"}
    if last.startswith("assert ") and ".shape" in last:
        exec(compile(code, f"<{name} example>", "exec"), namespace)
        return
    shown = SHAPE_LINE.match(last)
    assert shown, f"the example's last line must show a shape (`y.shape  # (...)`), got: {last!r}"
    exec(compile("\n".join(body), f"<{name} example>", "exec"), namespace)
    value = eval(shown.group("expr"), namespace)
    assert tuple(value) == ast.literal_eval(shown.group("shape"))


def test_all_lists_every_layer_class():
    # The examples are found through __all__: a layer class missing from it would go unchecked.
    defined = set()
    for info in pkgutil.iter_modules(kerasflow.layers.__path__):
        module = importlib.import_module(f"kerasflow.layers.{info.name}")
        defined |= {
            name
            for name, obj in vars(module).items()
            if isinstance(obj, type) and issubclass(obj, keras.layers.Layer)
            and obj.__module__ == module.__name__ and not name.startswith("_")
        }
    assert defined and defined <= set(kerasflow.layers.__all__), defined - set(kerasflow.layers.__all__)

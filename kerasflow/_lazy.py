"""Package attributes imported on first use, so that importing a package does not start TensorFlow.

The recipe schema, the registries and the command-line tools' argument checks must answer in a
fraction of a second (a typo in a recipe is one line at once); Keras and TensorFlow load only when a
model, a layer or a dataset pipeline is actually asked for.
"""

import importlib


def lazy_attributes(package, exports):
    """``(__getattr__, __dir__)`` for ``package`` that import ``exports[name]`` (a module) on first use.

    ``exports`` maps each public name to the module that defines it, e.g.
    ``{"from_preset": "kerasflow.backbones.presets"}``.
    """

    def __getattr__(name):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    def __dir__():
        return sorted(exports)

    return __getattr__, __dir__

"""The recipes shipped with kerasflow: this folder is installed as the package ``kerasflow.recipes``.

``python -m kerasflow.fit demo`` (a name, not a path) runs the installed ``demo.yaml`` from any folder.
"""

from importlib import resources


def names():
    """Names of the installed recipes (``demo``, ``egtea``, ...), sorted."""
    return sorted(entry.name[: -len(".yaml")] for entry in resources.files(__name__).iterdir()
                  if entry.name.endswith(".yaml"))


def text(name):
    """The YAML text of the installed recipe ``name``; ``FileNotFoundError`` when there is none."""
    entry = resources.files(__name__) / f"{name}.yaml"
    if not entry.is_file():
        raise FileNotFoundError(name)
    return entry.read_text(encoding="utf-8")

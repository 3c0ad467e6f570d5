"""The import graph of the kerasflow package: no cycles, and the library never imports a command; nor
does a library error name a command-line flag (the commands word those).

Each module's imports are read with ``ast`` (function-level imports included, since they run too), and
each package's lazy exports (``lazy_attributes(__name__, {...: "kerasflow.x"})``) count as imports of
those modules. ``from package import name`` is an import of the submodule ``package.name`` when there is
one, else of the package.
"""

import ast
import re
from pathlib import Path

import kerasflow

ROOT = Path(kerasflow.__file__).parent

# The command layer: argument parsing, printing, exit codes. Everything else is the library, which
# commands call and which never imports one of these.
COMMANDS = {
    "kerasflow.benchmark",
    "kerasflow.cli",
    "kerasflow.commands",
    "kerasflow.config.__main__",
    "kerasflow.convert_weights",
    "kerasflow.data.__main__",
    "kerasflow.evaluate",
    "kerasflow.export.__main__",
    "kerasflow.extract_flow",
    "kerasflow.fit",
    "kerasflow.fit_command",
    "kerasflow.predict",
    "kerasflow.report",
    "kerasflow.tune",
}


FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")  # --window, --flow-dir; not python -m nor a -- separator


def module_name(path, root):
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root):
    """``{module name: path}`` of every module in the package at ``root`` (the ``recipes`` data folder aside)."""
    return {module_name(path, root): path for path in sorted(root.rglob("*.py")) if "recipes" not in path.parts}


def imported(name, path, known):
    """The kerasflow modules the module ``name`` (its file ``path``) imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()

    def add(target):
        while target and target not in known:  # ``import kerasflow.a.b.attr`` style names: the module they are in
            target = target.rpartition(".")[0]
        if target:
            found.add(target)

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("kerasflow"):
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            if not source.startswith("kerasflow"):
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                add(submodule if submodule in known else source)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "lazy_attributes":
            for argument in node.args:
                if isinstance(argument, ast.Dict):
                    for value in argument.values:
                        if isinstance(value, ast.Constant) and str(value.value).startswith("kerasflow"):
                            add(value.value)
    found.discard(name)
    return found


def import_graph(root=ROOT):
    """``{module: the kerasflow modules it imports}`` of the package at ``root``."""
    known = modules(root)
    return {name: imported(name, path, known) for name, path in known.items()}


def cycles(graph, tolerated=frozenset()):
    """One cycle (a list of module names, the first repeated at the end) per strongly connected
    component of more than one module (Tarjan's algorithm), but those within ``tolerated``."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1 and not component <= tolerated:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [cycle_through(graph, component) for component in components]


def cycle_through(graph, component):
    """A shortest cycle through the first module (by name) of ``component``, by breadth-first search."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & component):
                if target == start:
                    return paths[node] + [start]
                if target not in paths:
                    paths[target] = paths[node] + [target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"{sorted(component)} is not strongly connected")


def test_the_cycle_finder_names_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert cycles(graph, tolerated={"a", "b", "c"}) == [] and cycles(graph, tolerated={"a", "b"}) != []


def test_the_import_graph_reads_every_kind_of_import(tmp_path):
    package = tmp_path / "kerasflow"
    (package / "sub").mkdir(parents=True)
    files = {
        "__init__.py": 'lazy_attributes(__name__, {"X": "kerasflow.sub.lazy"})',
        "top.py": "def later():\n    from kerasflow.sub import leaf\n",
        "sub/__init__.py": "from . import leaf\n",
        "sub/leaf.py": "import kerasflow.top.name\nfrom .lazy import thing\nimport os\n",
        "sub/lazy.py": "from ..top import later\n",
    }
    for name, text in files.items():
        (package / name).write_text(text)
    assert import_graph(package) == {"kerasflow": {"kerasflow.sub.lazy"}, "kerasflow.top": {"kerasflow.sub.leaf"},
                                     "kerasflow.sub": {"kerasflow.sub.leaf"},
                                     "kerasflow.sub.leaf": {"kerasflow.top", "kerasflow.sub.lazy"},
                                     "kerasflow.sub.lazy": {"kerasflow.top"}}


def test_the_package_has_no_import_cycles():
    found = [" -> ".join(cycle) for cycle in cycles(import_graph())]
    assert not found, "import cycles: " + "; ".join(found)


def test_the_library_imports_no_command():
    graph = import_graph()
    assert COMMANDS <= set(graph), f"not modules (any more?): {sorted(COMMANDS - set(graph))}"
    wrong = sorted(f"{name} imports {command}" for name, targets in graph.items() if name not in COMMANDS
                   for command in targets & COMMANDS)
    assert not wrong, "library modules import commands: " + "; ".join(wrong)


def flags_in_errors(source):
    """``[(line, flag)]`` of the command-line flags named in the error messages of ``source`` (Python
    text): string constants inside a ``raise`` or a call of a name ending in ``Error``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and node.exc is not None:
            message = node.exc
        elif isinstance(node, ast.Call) and (getattr(node.func, "id", "") or getattr(node.func, "attr", "")).endswith(
                "Error"):
            message = node
        else:
            continue
        for part in ast.walk(message):
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                found += [(part.lineno, flag) for flag in FLAG.findall(part.value)]
    return sorted(set(found))


def test_the_flag_finder_reads_raises_and_error_calls():
    source = (
        'def check(window, cam):\n'
        '    if window < 4:\n'
        '        raise UserError(f"--window {window}: pass --window 4 or more")\n'
        '    error = errors.UserError("cannot write the picture; choose another " f"--cam {cam}")\n'
        '    raise ValueError(f"`window` must be >= 4. Received: window={window}")\n'
        '    parser.add_argument("--window")\n'
        '    raise SystemExit("run python -m kerasflow.fit -- x")\n'
    )
    assert flags_in_errors(source) == [(3, "--window"), (4, "--cam")]


def test_library_errors_name_no_command_line_flag():
    # A library raises as Keras does (``ValueError("`window` must ... Received: window=3")``) or a
    # ``UserError`` naming the file; the command that passed the value on names its flag
    # (``kerasflow.cli.value_errors_as_user_errors``).
    wrong = [f"{path.relative_to(ROOT.parent)}:{line}: {flag}" for name, path in modules(ROOT).items()
             if name not in COMMANDS for line, flag in flags_in_errors(path.read_text(encoding="utf-8"))]
    assert not wrong, "library error messages name command-line flags: " + "; ".join(wrong)

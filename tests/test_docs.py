"""The documentation agrees with the code: the generated recipe key reference is current, every code
block of README.md and docs/*.md runs in a test or says why it cannot, and every relative link lands.

A fenced block is tagged with its language; ``text`` marks printed output or a listing (not run). A
code block either has a marker on the line before its fence,

    <!-- run by: tests/test_fit.py::test_name -->   (a test that runs the same code, e.g. at a tiny size)
    <!-- not run: needs a real dataset -->           (what the tests lack)

or no marker, and then this file runs it: a ``python`` block as written (a line ``print(x)  # value``
must print ``value``), a ``bash`` block only when each line is a ``python -m kerasflow.<command> ... --help``.
"""

import ast
import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kerasflow.config.reference import COMMAND, recipe_key_reference

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
MARKER = re.compile(r"^\s*<!-- (run by|not run): (.+?) -->\s*$")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HELP_LINE = re.compile(r"^python -m kerasflow(\.\w+)+( \S+)* --help$")
PRINTED = re.compile(r"^print\((.*)\)\s+#\s*(.+)$")


def code_blocks(page):
    """``(line, language, code, marker)`` of each fenced block of ``page``; ``marker`` is
    ``(kind, text)`` from the line before the fence, or None."""
    lines = page.read_text(encoding="utf-8").split("\n")
    blocks, index = [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, language = opening.groups()
        end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
        code = "\n".join(line[len(indent):] for line in lines[index + 1:end]) + "\n"
        before = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
        marker = MARKER.match(before)
        blocks.append((index + 1, language, code, marker.groups() if marker else None))
        index = end + 1
    return blocks


def where(page, line):
    return f"{page.relative_to(ROOT)}:{line}"


def test_the_recipe_key_reference_is_generated_from_the_schema():
    committed = (ROOT / "docs" / "recipe-keys.md").read_text(encoding="utf-8")
    generated = recipe_key_reference()
    if committed != generated:
        first = next((number for number, (a, b) in enumerate(zip(committed.split("\n"), generated.split("\n")), 1)
                      if a != b), min(committed.count("\n"), generated.count("\n")) + 1)
        pytest.fail(f"docs/recipe-keys.md differs from the schema and registries (first at line {first}); "
                    f"regenerate it: {COMMAND}")


def test_the_reference_lists_every_key_with_its_default_and_doc():
    page = recipe_key_reference()
    assert "| `data.split` | `1` | an integer >= 1 | the official split" in page
    assert "| `model.flow.num_layers` | `2` | an integer >= 0 and <= 3 |" in page
    assert "| `stages[].schedule.type` | `required` | one of multistep, exponential, constant |" in page
    assert "| `model.flow.trainable` | `[0, 1, 1, 1, 1]` | a list of integers >= 0 and <= 1 |" in page
    assert "| `model.weights` | `null` | a path or imagenet or null |" in page
    assert "| `tiny` | 1/8-width ResNet-10 for demos and tests (no ImageNet weights) | none |" in page
    assert "`model.num_flow_layers` is now `model.flow.num_layers`" in page
    keys = re.findall(r"^\| `([a-z_\[\].]+)` \|", page, re.MULTILINE)
    assert len(keys) == len(set(keys))
    undocumented = [line for line in page.split("\n") if line.startswith("| `") and line.endswith("|  |")]
    assert not undocumented, undocumented


def test_the_config_command_prints_the_reference():
    result = subprocess.run([sys.executable, "-m", "kerasflow.config", "reference"], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == recipe_key_reference()


def defined_tests(path):
    """Names of the test functions of ``path`` (module level and in classes)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def block_problem(language, code, marker):
    """Why a block breaks the rules (the module docstring's), or None."""
    if not language:
        return "untagged block: tag it text (output, a listing) or with its language"
    if language == "text":
        return "a text block needs no marker" if marker else None
    if marker is None:
        if language == "python":
            return None
        commands = [line for line in code.split("\n") if line.strip() and not line.startswith("#")]
        if language == "bash" and commands and all(HELP_LINE.match(line) for line in commands):
            return None
        return "mark it <!-- run by: tests/FILE.py::TEST --> or <!-- not run: WHY -->"
    kind, text = marker
    if kind == "not run":
        return None
    file, _, name = text.partition("::")
    if not (ROOT / file).is_file() or not name:
        return f"run by: {text}: name a test as tests/FILE.py::TEST"
    if name not in defined_tests(ROOT / file):
        return f"run by: {text}: {file} has no test {name}"
    return None


def test_every_code_block_runs_in_a_test_or_is_marked():
    problems = [f"{where(page, line)}: {problem}"
                for page in PAGES for line, language, code, marker in code_blocks(page)
                if (problem := block_problem(language, code, marker))]
    assert not problems, "\n".join(problems)


def unmarked_blocks():
    return [pytest.param(page, line, language, code, id=where(page, line))
            for page in PAGES for line, language, code, marker in code_blocks(page)
            if marker is None and language in ("python", "bash") and block_problem(language, code, marker) is None]


@pytest.mark.parametrize("page, line, language, code", unmarked_blocks())
def test_unmarked_blocks_run_as_written(page, line, language, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if language == "bash":
        for command in (line for line in code.split("\n") if line.strip() and not line.startswith("#")):
            result = subprocess.run([sys.executable, *command.split()[1:]], capture_output=True, text=True,
                                    cwd=ROOT, timeout=120)
            assert result.returncode == 0 and result.stdout.startswith("usage: "), (command, result.stderr)
        return
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, where(page, line), "exec"), {"__name__": "docs_example"})
    expected = [match.group(2).strip() for match in map(PRINTED.match, code.split("\n")) if match]
    assert printed.getvalue().split("\n")[: len(expected)] == expected


def heading_anchors(page):
    """GitHub's anchors of the headings of ``page`` (outside code blocks)."""
    anchors, fenced = set(), False
    for line in page.read_text(encoding="utf-8").split("\n"):
        if FENCE.match(line) or line.strip() == "```":
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            anchor, count = slug, 1
            while anchor in anchors:
                anchor, count = f"{slug}-{count}", count + 1
            anchors.add(anchor)
    return anchors


def test_every_relative_link_lands_on_a_file_and_heading():
    problems = []
    for page in PAGES:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                problems.append(f"{page.relative_to(ROOT)}: {target}: no such file")
            elif anchor and file.suffix == ".md" and anchor not in heading_anchors(file):
                problems.append(f"{page.relative_to(ROOT)}: {target}: no heading #{anchor} in {file.name}")
    assert not problems, "\n".join(problems)


def test_ci_runs_the_readme_test_command():
    """.ci/run runs exactly the command README gives for the tests (after its set-up)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8").split("The tests:", 1)[1]
    command = re.search(r"```bash\n(.*?)\n```", readme, re.DOTALL).group(1).split(" && ")[-1]
    assert command == "python -m pytest -q -n 2 tests"
    assert command in (ROOT / ".ci" / "run").read_text(encoding="utf-8").split("\n")

"""The tree is clean under ruff's formatter and linter (ruff.toml): `ruff format .` and `ruff check --fix .`
fix what these tests report."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", [["format", "--check", "--diff"], ["check"]], ids=["format", "check"])
def test_the_tree_is_clean_under_ruff(command):
    result = subprocess.run([sys.executable, "-m", "ruff", *command, "."], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, f"ruff {' '.join(command)} . found:\n{result.stdout[-3000:]}{result.stderr[-1000:]}"

"""The tree is clean under ruff's linter (ruff.toml): pycodestyle, pyflakes and import order.
`ruff check --fix .` fixes the import order and unused imports; lines over 120 columns (E501) are wrapped
by hand (the formatter is not used)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_tree_is_clean_under_ruff():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, f"ruff check . found:\n{result.stdout[-3000:]}{result.stderr[-1000:]}"

"""Packaging: every package is installed (recipes included), the package imports without TensorFlow,
and a non-editable install runs an installed recipe from any folder."""

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def declared_packages():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config["options"]["packages"].split()


def test_every_package_folder_is_declared():
    found = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "kerasflow").rglob("__init__.py")}
    assert set(declared_packages()) == found | {"kerasflow.recipes"}


def test_importing_kerasflow_and_its_registries_does_not_start_tensorflow():
    code = ("import sys, kerasflow, kerasflow.config, kerasflow.models.kinds, kerasflow.data.datasets, "
            "kerasflow.backbones.presets; kerasflow.load_recipe('demo'); "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.large
def test_wheel_installs_recipes_and_runs_them_from_another_folder(tmp_path):
    # Built from a copy of the sources: pip builds in the tree, and a build/ folder left by an older
    # build (or by a user) must neither leak stale modules into the wheel nor be written into the clone.
    source = tmp_path / "source"
    outputs = {".git", ".venv", "build", "runs", "data", "saved_models", ".pytest_cache", "kerasflow.egg-info"}
    shutil.copytree(ROOT, source, ignore=lambda folder, names: [
        name for name in names if name == "__pycache__" or (Path(folder) == ROOT and name in outputs)])
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "-w", str(tmp_path / "wheel"), str(source)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "wheel").glob("kerasflow-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    recipes = ("demo", "demo-ablation", "egtea", "gtea61", "hmdb51", "hmdb51-ablation", "hmdb51-repflow")
    assert {f"kerasflow/recipes/{name}.yaml" for name in recipes} <= set(names)
    assert "kerasflow/data/datasets.py" in names and not any(name.startswith("tests/") for name in names)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import kerasflow, kerasflow.recipes; r = kerasflow.load_recipe('demo'); "
            "print(kerasflow.__file__); print(r.runtime.output_dir); print(kerasflow.recipes.names())")
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=elsewhere, env=env,
                            check=True)
    module_file, output_dir, recipes = result.stdout.strip().splitlines()
    assert module_file.startswith(str(target))
    assert output_dir == str(elsewhere / "runs" / "demo-synthetic")
    assert recipes == "['demo', 'demo-ablation', 'egtea', 'gtea61', 'hmdb51', 'hmdb51-ablation', 'hmdb51-repflow']"
    # The command with an installed recipe's name, run from a folder without recipes/: a recipe error
    # proves the installed file was read, in one line, before any training.
    failed = subprocess.run([sys.executable, "-m", "kerasflow.fit", "demo", "--set", "data.rgb_frame=2"],
                            capture_output=True, text=True, cwd=elsewhere, env=env)
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines() == [
        "error: recipe demo: unknown key data.rgb_frame; did you mean data.rgb_frames?"]

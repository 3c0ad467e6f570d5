"""The Python API: the README's "From Python" example runs as written, and the API's contracts."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import kerasflow
from kerasflow.errors import UserError

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example():
    section = README.read_text(encoding="utf-8").split("## From Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


@pytest.mark.large
def test_readme_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(readme_example(), "README.md (From Python)", "exec"), namespace)
    metrics, report, model = namespace["metrics"], namespace["report"], namespace["model"]
    assert 0.0 <= metrics["final"]["top1"] <= 1.0 and metrics["final"]["num_videos"] == 8  # 4 classes x 2
    assert sorted(metrics["stages"]) == ["flow"]  # model.kind=representation_flow: the flow stage only
    assert "skipping the recipe's rgb_stage1, rgb_stage2, joint" in capsys.readouterr().out
    assert [spec.name for spec in model.kerasflow_info.inputs] == ["flow_clip"]
    probabilities = [p["probability"] for p in report["predictions"]]
    assert len(probabilities) == 2 and probabilities[0] >= probabilities[1] and 0 < sum(probabilities) <= 1 + 1e-6
    untrained = namespace["untrained"]
    assert untrained.name == "representation_flow" and untrained.output.shape == (None, 4)
    # fit again: the run is finished, nothing is trained
    assert kerasflow.fit(namespace["recipe"], log=lambda line: None) == metrics


def test_api_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="recipe file not found"):
        kerasflow.load_recipe(tmp_path / "nope.yaml")
    with pytest.raises(UserError, match="does not exist; pass a run folder or a .keras model file"):
        kerasflow.load_model(tmp_path / "no-run")
    with pytest.raises(TypeError, match="overrides apply to a recipe path or name"):
        kerasflow.fit(kerasflow.load_recipe("demo"), ["stages.flow.epochs=1"])


def test_fit_stays_the_function_next_to_its_command():
    """``kerasflow.fit`` is the API function; the command ``python -m kerasflow.fit`` is ``kerasflow.fit_command``,
    which may be imported, and ``kerasflow/fit.py`` only runs it: importing it, which would make
    ``kerasflow.fit`` a module, fails and leaves the function in place."""
    import kerasflow.fit_command
    from kerasflow.api import fit

    assert kerasflow.fit is fit and callable(kerasflow.fit_command.main)
    with pytest.raises(ImportError, match=r"^kerasflow.fit is the function kerasflow.api.fit \(from kerasflow import "
                                          r"fit\); the command's module is kerasflow.fit_command"):
        import kerasflow.fit  # noqa: F401
    from kerasflow import fit as again

    assert kerasflow.fit is fit and again is fit
    result = subprocess.run([sys.executable, "-m", "kerasflow.fit", "--help"], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0 and result.stdout.startswith("usage: python -m kerasflow.fit [-h]"), result.stderr


def test_build_model_makes_no_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = kerasflow.build_model(kerasflow.load_recipe("demo", ["model.kind=representation_flow",
                                                                 "data.synthetic.classes=3"]))
    assert model.output.shape == (None, 3) and list(tmp_path.iterdir()) == []
    folder = kerasflow.load_recipe("demo", ["data.dataset=folder", f"data.root={tmp_path / 'videos'}"])
    with pytest.raises(UserError, match=r"build_model needs the number of classes: pass num_classes=, or make the "
                                        r"dataset the recipe names \(dataset root .*videos' does not exist"):
        kerasflow.build_model(folder)
    assert kerasflow.build_model(folder, num_classes=5).output.shape == (None, 5)
    assert list(tmp_path.iterdir()) == []


def test_small_api_contracts(tmp_path):
    # One override as a plain string, not a list of its characters.
    assert kerasflow.load_recipe("demo", "stages.flow.epochs=2").stage("flow").epochs == 2
    with pytest.raises(UserError, match=r"model.init_from = 3 is not allowed: expected a list of paths or a path or "
                                        r"null$"):
        kerasflow.load_recipe("demo", ["model.init_from=3"])
    model = kerasflow.build_model(kerasflow.load_recipe("demo", ["model.kind=representation_flow"]))
    from kerasflow.model_io import ModelInfo

    model.kerasflow_info = ModelInfo("representation_flow", "flow", "flow", (), ("a", "b", "c", "d"))
    for top_k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match=rf"^`top_k` must be an integer >= 1 \(how many classes to list\)\. "
                                             rf"Received: top_k={re.escape(repr(top_k))}$"):
            kerasflow.predict_video(model, tmp_path / "clip.avi", top_k=top_k)


@pytest.mark.large
def test_fit_puts_back_the_globals_it_changes(tmp_path):
    import random

    import keras
    import numpy as np
    import tensorflow as tf
    from cli_testing import DEMO, tiny_overrides

    recipe = kerasflow.load_recipe(DEMO, tiny_overrides(tmp_path) + [
        "model.kind=representation_flow", "model.flow.num_layers=0", "runtime.mixed_precision=bfloat16"])
    keras.mixed_precision.set_global_policy("float32")
    random.seed(7)
    np.random.seed(7)
    tf.random.set_seed(7)
    expected = random.random(), np.random.rand(), tf.random.uniform(()).numpy()
    random.seed(7)
    np.random.seed(7)
    tf.random.set_seed(7)
    kerasflow.fit(recipe, log=lambda line: None)
    assert keras.mixed_precision.global_policy().name == "float32"
    assert (random.random(), np.random.rand()) == expected[:2]
    assert tf.random.uniform(()).numpy() == expected[2]
    assert tf.distribute.get_strategy() is tf.distribute.get_strategy() and not tf.distribute.has_strategy()

    # A run that fails after changing them leaves them as they were too.
    keras.mixed_precision.set_global_policy("mixed_float16")
    (tmp_path / "run" / "model.keras").unlink()
    (tmp_path / "run" / "stages" / "flow" / "best.keras").write_bytes(b"damaged")
    with pytest.raises(UserError, match="best.keras is not a Keras model file"):
        kerasflow.fit(recipe, log=lambda line: None)
    assert keras.mixed_precision.global_policy().name == "mixed_float16"
    keras.mixed_precision.set_global_policy("float32")

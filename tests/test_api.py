"""The Python API: the README's "From Python" example runs as written, and the API's contracts."""

import re
from pathlib import Path

import pytest

import kerasflow
from kerasflow.errors import UserError

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example():
    section = README.read_text(encoding="utf-8").split("## From Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


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


def test_the_fit_module_is_also_the_fit_function():
    """``python -m kerasflow.fit`` is a module; ``kerasflow.fit(recipe)`` must stay callable after it is imported."""
    import kerasflow.fit as fit_module

    assert callable(kerasflow.fit) and callable(fit_module) and callable(fit_module.main)

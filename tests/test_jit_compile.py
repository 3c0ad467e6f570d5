"""``runtime.jit_compile: auto | true | false``: what ``auto`` chooses, and that fit, evaluate and predict
run the model through XLA exactly when the setting says so, with the same numbers."""

import json

import numpy as np
import pytest
from cli_testing import SIZE, assert_one_error_line, call, tiny_recipe

from kerasflow import evaluate
from kerasflow.config import load_recipe
from kerasflow.export.predictors import load_predictor
from kerasflow.fit_command import main as fit_main
from kerasflow.models import build_stage_models
from kerasflow.training import runtime_setup as runtime
from kerasflow.training.trainer import _compile


def test_auto_uses_xla_only_with_a_gpu_or_tpu(monkeypatch):
    import tensorflow as tf

    assert tf.config.list_logical_devices("GPU") == []  # this machine: a CPU only
    assert runtime.use_xla("auto") is False
    assert runtime.use_xla(True) is True and runtime.use_xla(False) is False
    for accelerator in ("GPU", "TPU"):
        with monkeypatch.context() as patch:
            patch.setattr(tf.config, "list_logical_devices", lambda kind=None, a=accelerator: ["device"] * (kind == a))
            assert runtime.use_xla("auto") is True and runtime.use_xla(False) is False


def test_auto_jits_on_jax_and_not_on_torch(monkeypatch):
    import keras

    for backend, expected in (("jax", True), ("torch", False)):
        monkeypatch.setattr(keras.backend, "backend", lambda b=backend: b)
        assert runtime.use_xla("auto") is expected
        assert runtime.use_xla(True) is True and runtime.use_xla(False) is False


@pytest.fixture(scope="module")
def flow_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jit")
    recipe = load_recipe(tiny_recipe(folder, kind="representation_flow", epochs=(1,)))
    return recipe, build_stage_models(recipe.model, recipe.data, 2)["flow"]


@pytest.mark.parametrize("setting, expected", [("auto", False), (True, True), (False, False)])
def test_fit_compiles_with_the_setting(flow_model, setting, expected):
    recipe, model = flow_model
    stage = recipe.stage("flow")
    _compile(model, stage, recipe.kind.optimizer_groups(model, stage, recipe.model), setting)
    assert model.jit_compile is expected  # Keras' own "auto" would be True here


def test_the_xla_forward_gives_the_plain_forward_numbers(flow_model):
    recipe, model = flow_model
    assert runtime.forward_function(model, False) is model and runtime.forward_function(model, "auto") is model
    inputs = {"flow_clip": np.random.default_rng(0).integers(0, 256, (2, 4, SIZE, SIZE, 3), dtype=np.uint8)}
    xla = runtime.forward_function(model, True)
    np.testing.assert_allclose(np.asarray(xla(inputs)), np.asarray(model(inputs, training=False)), atol=1e-4)


def test_a_bad_value_is_one_line(tmp_path, capsys):
    recipe = tiny_recipe(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        fit_main([str(recipe), "--set", "runtime.jit_compile=fast"])
    assert_one_error_line(exit_info.value.code, capsys.readouterr().err, "runtime.jit_compile = 'fast' is not allowed",
                          "true or false", "auto")
    assert not (tmp_path / "run").exists()


def test_evaluate_and_predict_follow_the_setting(tiny_run, tmp_path, capsys, monkeypatch):
    settings = []
    plain = runtime.forward_function
    monkeypatch.setattr(runtime, "forward_function", lambda model, setting: settings.append(setting) or
                        plain(model, setting))
    reports = {}
    for setting in ("true", "false"):
        argv = [str(tiny_run), "--json", "--output", str(tmp_path / setting), "--set", f"runtime.jit_compile={setting}"]
        status, out, err = call(evaluate, argv, capsys)
        assert status == 0, err
        reports[setting] = json.loads(out)
    # load_predictor starts at auto; evaluate then applies the recipe's value
    assert settings == ["auto", True, "auto", False]
    for key in ("top1", "num_videos", "confusion_matrix"):
        assert reports["true"][key] == reports["false"][key]
    settings.clear()
    load_predictor(tiny_run)
    assert settings == ["auto"]  # predict: XLA on an accelerator, not on this CPU

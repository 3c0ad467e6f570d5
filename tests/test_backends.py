"""kerasflow on Keras' JAX and torch backends, against TensorFlow.

``KERAS_BACKEND`` is read when Keras is imported and this test session runs TensorFlow (conftest.py),
so everything on another backend runs in a subprocess of its own. A backend whose package is not
installed is skipped (JAX comes with ``pip install -e ".[dev]"``; torch with ``pip install torch``).
"""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import yaml
from cli_testing import ROOT, assert_one_error_line, tiny_recipe

pytestmark = pytest.mark.backends

BACKENDS = [
    pytest.param(name, marks=pytest.mark.skipif(importlib.util.find_spec(name) is None,
                                                reason=f"{name} is not installed: pip install {package}"))
    for name, package in (("jax", "jax"), ("torch", "torch==2.13.0"))
]
# The layer tests that compare with NumPy or with Keras' own layers, or train a step under mixed_float16
# (the others take gradients with tf.GradientTape; test_model_gradients_match_tensorflow covers gradients),
# and the optimizers' tests.
LAYER_TESTS = ["tests/test_representation_flow.py", "tests/test_cam_attention.py", "tests/test_optimizers.py", "-k",
               "test_optimizers or matches_numpy or one_pixel or opencvs_tvl1 or sample_normal or peaks_where or "
               "standard_cell or mixed_float16 or whatever_dtype"]


def run_on(backend, *argv, check=True):
    """``python ARGV...`` from the repository with ``KERAS_BACKEND=backend``; the CompletedProcess."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", CI="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, cwd=ROOT)
    if check and result.returncode != 0:
        raise AssertionError(result.stdout[-3000:] + result.stderr[-3000:])
    return result


@pytest.mark.large
@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_and_optimizer_tests_pass_on(backend):
    result = run_on(backend, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", *LAYER_TESTS)
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary, result.stdout[-2000:]


@pytest.mark.large
@pytest.mark.parametrize("backend", BACKENDS)
def test_model_gradients_match_tensorflow(backend, tmp_path):
    """A tiny two-stream joint model saved under TensorFlow: on the other backend its logits and the
    gradients of every trainable variable equal TensorFlow's (the flow iterations, ConvLSTM, attention)."""
    import keras
    from backend_gradients import logits_and_gradients

    from kerasflow.config.schema import ModelConfig
    from kerasflow.config.validation import Checker, build
    from kerasflow.models.kinds import build_stage_models

    model_cfg = build(ModelConfig, dict(kind="two_stream", backbone="tiny", convlstm_units=4, num_head_classes=10,
                                        flow={"iterations": 3, "position": 1, "bottleneck": 4}),
                      "model", Checker("test"))
    # 64 px: a 2 x 2 CAM map, so the attention's softmax has a gradient to compare (at 1 x 1 it is constant)
    data = types.SimpleNamespace(frame_size=64, rgb_frames=3, flow_frames=4, flow_stack=2)
    keras.utils.set_random_seed(0)
    model = build_stage_models(model_cfg, data, 3)["joint"]
    rng = np.random.default_rng(0)
    inputs = {tensor.name: rng.integers(0, 256, (2, *tensor.shape[1:]), dtype=np.uint8) for tensor in model.inputs}
    target = rng.normal(size=(2, 3)).astype(np.float32)
    model.save(tmp_path / "joint.keras")
    np.savez(tmp_path / "inputs.npz", target=target, **inputs)

    run_on(backend, "tests/backend_gradients.py", str(tmp_path / "joint.keras"), str(tmp_path / "inputs.npz"),
           str(tmp_path / "out.npz"))
    theirs = np.load(tmp_path / "out.npz")
    logits, grads = logits_and_gradients(model, inputs, target)
    np.testing.assert_allclose(theirs["logits"], logits, atol=1e-4)
    assert len(grads) == len(theirs.files) - 1
    for i, grad in enumerate(grads):
        grad = keras.ops.convert_to_numpy(grad)
        error = np.abs(theirs[f"grad_{i}"] - grad).max() / max(np.abs(grad).max(), 1e-6)
        assert error < 1e-3, (model.trainable_variables[i].path, error)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_backend_without_tf_distribute_refuses_it_in_one_line(backend, monkeypatch):
    """The fast tier's share of this module, in this TensorFlow process: what the check below meets."""
    from kerasflow import backend as backends
    from kerasflow.errors import UserError

    monkeypatch.setattr(backends, "name", lambda: backend)
    backends.check_runtime(types.SimpleNamespace(distribution="none"))
    with pytest.raises(UserError, match=f"runtime.distribution = mirrored uses tf.distribute, which runs on the "
                                        f"tensorflow backend only \\(this is KERAS_BACKEND={backend};"):
        backends.check_runtime(types.SimpleNamespace(distribution="mirrored"))


@pytest.mark.large
@pytest.mark.parametrize("backend", BACKENDS)
def test_tf_distribute_is_refused_on(backend, tmp_path):
    recipe = tiny_recipe(tmp_path, kind="representation_flow", epochs=(1,))
    result = run_on(backend, "-m", "kerasflow.fit", str(recipe), "--set", "runtime.distribution=mirrored",
                    check=False)
    assert_one_error_line(result.returncode, result.stderr, "runtime.distribution = mirrored uses tf.distribute",
                          f"KERAS_BACKEND={backend}", "set runtime.distribution: none or train with "
                          "KERAS_BACKEND=tensorflow")
    assert not (tmp_path / "run").exists()


def _probabilities(report):
    return {row["class"]: row["probability"] for row in report["predictions"]}


def _png_pixels(path):
    import cv2

    return cv2.imread(str(path)).astype(int)


@pytest.mark.large
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_run_trained_on_backend_is_the_same_model_under_tensorflow(backend, tmp_path, capsys):
    """Fit the RGB stream (EgoRCNN's two stages) on the backend; predict (a file, --cam and --stream) and
    export there; under TensorFlow (this process) evaluate gives the run's test top-1, predict the same
    probabilities and --cam the same attention picture. (The representation-flow layer's logits and
    gradients on the backend: test_model_gradients_match_tensorflow; the TV-L1 stream: the next test.)"""
    from cli_testing import call

    from kerasflow import evaluate, predict

    recipe = tiny_recipe(tmp_path, kind="two_stream", epochs=(1, 1))
    raw = yaml.safe_load(recipe.read_text())
    raw["model"]["kind"] = "rgb"
    raw["data"]["synthetic"]["frames"] = 8  # --stream: three windows of the model's 3 frames, 2 frames apart
    recipe.write_text(yaml.safe_dump(raw))
    run_on(backend, "-m", "kerasflow.fit", str(recipe))
    run = tmp_path / "run"
    video = str(sorted((tmp_path / "data").glob("*/*.avi"))[0])
    theirs = json.loads(run_on(backend, "-m", "kerasflow.predict", video, "--model", str(run), "--json",
                               "--cam", str(tmp_path / "theirs.png")).stdout)
    stream = json.loads(run_on(backend, "-m", "kerasflow.predict", "--stream", video, "--model", str(run),
                               "--json").stdout)
    assert [(window["start"], window["end"]) for window in stream["windows"]] == [(0, 3), (2, 5), (4, 7)]

    status, out, err = call(predict, [video, "--model", str(run), "--json"], capsys)
    assert status == 0, err
    ours = _probabilities(json.loads(out))
    assert list(ours) == list(_probabilities(theirs))
    np.testing.assert_allclose(list(ours.values()), list(_probabilities(theirs).values()), atol=1e-4)
    status, out, err = call(predict, [video, "--model", str(run), "--cam", str(tmp_path / "ours.png")], capsys)
    assert status == 0, err
    assert np.abs(_png_pixels(tmp_path / "ours.png") - _png_pixels(tmp_path / "theirs.png")).max() <= 2

    status, out, err = call(evaluate, [str(run), "--json", "--output", str(tmp_path / "evaluation")], capsys)
    assert status == 0, err
    trained = json.loads((run / "metrics.json").read_text())["final"]
    assert json.loads(out)["top1"] == trained["top1"]

    # export under the backend runs TensorFlow in a subprocess, which checks the TFLite file against the model
    result = run_on(backend, "-m", "kerasflow.export", str(run), "--format", "tflite",
                    "--out", str(tmp_path / "tflite"))
    assert f"exported to {tmp_path / 'tflite'}" in result.stdout


@pytest.mark.large
@pytest.mark.parametrize("backend", BACKENDS)
def test_an_optical_flow_run_killed_on_backend_resumes_under_tensorflow(backend, tmp_path, capsys):
    """The TV-L1 stream: SIGTERM during its training on the backend, then the same command under
    TensorFlow resumes from the backend's checkpoint (weights and optimiser state), logs each epoch once,
    and the finished model predicts the backend's probabilities."""
    from cli_testing import call, run_fit

    from kerasflow import predict
    from kerasflow.data.synthetic import make_synthetic_dataset
    from kerasflow.data.tvl1 import extract_all

    data = make_synthetic_dataset(tmp_path / "data", classes=2, videos_per_class=6, frames=8, size=32)
    assert extract_all(data, tmp_path / "flow", workers=1)["extracted"] == 12
    recipe = tiny_recipe(tmp_path, kind="representation_flow", epochs=(4,))
    raw = yaml.safe_load(recipe.read_text())
    raw["model"]["kind"] = "optical_flow"
    raw["data"].update(dataset="folder", flow_root=str(tmp_path / "flow"), flow_stack=2)
    del raw["data"]["synthetic"]
    recipe.write_text(yaml.safe_dump(raw))

    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", CI="1")
    process = subprocess.Popen([sys.executable, "-m", "kerasflow.fit", str(recipe)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    state, deadline = tmp_path / "run" / "state.json", time.time() + 300
    while time.time() < deadline and process.poll() is None and not (
            state.exists() and json.loads(state.read_text())["current"].get("epoch")):
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-2000:]
    stopped_after = json.loads(state.read_text())["current"]["epoch"]
    assert 1 <= stopped_after < 4

    result = run_fit(recipe)
    assert f"flow: resuming after epoch {stopped_after} of 4" in result.stdout
    rows = (tmp_path / "run" / "stages" / "flow" / "log.csv").read_text().strip().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["0", "1", "2", "3"]  # each epoch logged once

    video = data / "00_right" / "00_right_000.avi"
    flow_dir = tmp_path / "flow" / "flow_x" / "00_right" / "00_right_000"
    theirs = run_on(backend, "-m", "kerasflow.predict", str(video), "--model", str(tmp_path / "run"),
                    "--flow-dir", str(flow_dir), "--json")
    status, out, err = call(predict, [str(video), "--model", str(tmp_path / "run"), "--flow-dir", str(flow_dir),
                                      "--json"], capsys)
    assert status == 0, err
    np.testing.assert_allclose(list(_probabilities(json.loads(out)).values()),
                               list(_probabilities(json.loads(theirs.stdout)).values()), atol=1e-4)

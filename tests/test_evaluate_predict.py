"""evaluate / predict CLIs on one tiny trained run: parity with an independent model.predict, the
CAM picture (known colours and size), and every user error ending in one ``error:`` line, exit 2."""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
from cli_testing import CLASSES, DEMO, FRAMES, SIZE, assert_one_error_line, call, tiny_overrides
from model_testing import softmax

from kerasflow import evaluate, predict
from kerasflow.config import load_recipe
from kerasflow.data.indexes import VideoIndex, VideoItem
from kerasflow.data.inputs import InputSpec
from kerasflow.data.pipeline import make_dataset
from kerasflow.evaluation import find_recipe
from kerasflow.export.predictors import read_info
from kerasflow.model_io import save_model
from kerasflow.models import build_stage_models
from kerasflow.prediction import check_request
from kerasflow.training.run_folder import model_info
from kerasflow.visualize import MIN_TILE, TITLE_HEIGHT, grid_frames, overlay_attention

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run(tiny_run):
    return tiny_run


@pytest.fixture(scope="module")
def held_out(tiny_held_out):
    return tiny_held_out


def independent_logits(model_file, index, batch_size=3):
    model = keras.saving.load_model(model_file)
    inputs = [InputSpec(**spec) for spec in json.loads(Path(f"{model_file}.json").read_text())["inputs"]]
    assert sorted(spec.name for spec in inputs) == sorted(tensor.name for tensor in model.inputs)
    dataset = make_dataset(index, inputs, batch_size=batch_size)
    labels = np.concatenate([label.numpy() for _, label, _ in dataset])
    return model.predict(dataset.map(lambda inputs, label, weight: inputs), verbose=0), labels


# ------------------------------------------------------------------------------------------------
# evaluate


def test_evaluate_json_equals_independent_predict(run, held_out, capsys):
    fits_picture = (run / "confusion_matrix.png").read_bytes()
    status, out, _ = call(evaluate, [str(run), "--json"], capsys)
    assert status == 0
    report = json.loads(out)  # stdout holds exactly one JSON object
    logits, labels = independent_logits(run / "model.keras", held_out)
    predicted = logits.argmax(axis=1)
    assert report["num_videos"] == len(held_out) == len(labels)
    assert report["top1"] == pytest.approx(np.mean(predicted == labels))
    assert report["top5"] == 1.0  # 3 classes: the label is always among the top 5
    names = held_out.class_names
    assert set(report["per_class_accuracy"]) == set(names)
    for label, name in enumerate(names):
        assert report["per_class_accuracy"][name] == pytest.approx(np.mean(predicted[labels == label] == label))
    expected_confusion = np.zeros((CLASSES, CLASSES), int)
    for true, guess in zip(labels, predicted):
        expected_confusion[true, guess] += 1
    assert report["confusion_matrix"] == expected_confusion.tolist()
    split = report["seconds_per_video_split"]
    assert set(split) >= {"decode", "model", "rgb_stream", "flow_stream"}
    assert all(seconds > 0 for seconds in split.values())
    assert report["seconds_per_video"] == pytest.approx(split["decode"] + split["model"])

    png = Path(report["confusion_matrix_png"])
    # Its own folder: evaluate never writes over fit's pictures.
    assert png.parent.parent == run / "evaluations" and png.parent.name.startswith("model-test-synthetic-")
    assert (run / "confusion_matrix.png").read_bytes() == fits_picture
    assert png.read_bytes()[:8] == PNG_SIGNATURE and png.stat().st_size > 5000
    image = cv2.imread(str(png))
    assert image.shape[0] >= 200 and image.shape[1] >= 200 and image.std() > 10
    assert json.loads((png.parent / "evaluation.json").read_text()) == report
    assert not list(run.rglob(".*tmp*"))


def test_evaluate_model_file_finds_run_recipe_and_prints_table(run, held_out, capsys, tmp_path):
    model_file = run / "stages" / "rgb_stage2" / "best.keras"
    status, out, _ = call(evaluate, [str(model_file), "--output", str(tmp_path / "report"), "--batch-size", "2"],
                          capsys)
    assert status == 0
    report = json.loads((tmp_path / "report" / "evaluation.json").read_text())
    assert report["stage"] == "rgb_stage2" and "flow_stream" not in report["seconds_per_video_split"]
    logits, labels = independent_logits(model_file, held_out)
    assert report["top1"] == pytest.approx(np.mean(logits.argmax(axis=1) == labels))
    assert f"top-1 {report['top1']:.4f}" in out
    assert all(name in out for name in held_out.class_names)
    assert (tmp_path / "report" / "confusion_matrix.png").stat().st_size > 5000


def _copy_model(run, folder, metadata_change=None, content=None):
    model_file = folder / "copy.keras"
    if content is None:
        shutil.copy(run / "model.keras", model_file)
    else:
        model_file.write_bytes(content)
    if metadata_change is not False:
        metadata = json.loads((run / "model.keras.json").read_text())
        metadata.update(metadata_change or {})
        Path(f"{model_file}.json").write_text(json.dumps(metadata))
    return model_file


def _corrupt_zip():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", "{not json")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "case, fragments",
    [
        ("missing run folder", ["does not exist"]),
        ("run without model", ["has no model.keras"]),
        ("missing metadata", ["copy.keras.json is missing"]),
        ("another kind", ["a model file of another kind (rgb)", "two_stream"]),
        ("not a zip", ["not a Keras model file"]),
        ("corrupt zip", ["cannot be loaded"]),
        ("missing data root", ["absent", "does not exist"]),
        ("model outside a run", ["error: --recipe must be the recipe ", "copy.keras was trained with: it is not "
                                 "inside a run folder, whose recipe.yaml would be read."]),
    ],
)
def test_evaluate_user_errors(run, tmp_path, capsys, case, fragments):
    recipe = ["--recipe", str(run / "recipe.yaml")]
    argv = {
        "missing run folder": lambda: [str(tmp_path / "no-run")],
        "run without model": lambda: [str(tmp_path)],
        "missing metadata": lambda: [str(_copy_model(run, tmp_path, metadata_change=False)), *recipe],
        "another kind": lambda: [str(_copy_model(run, tmp_path, {"kind": "rgb"})), *recipe],
        "not a zip": lambda: [str(_copy_model(run, tmp_path, content=b"not a model")), *recipe],
        "corrupt zip": lambda: [str(_copy_model(run, tmp_path, content=_corrupt_zip())), *recipe],
        "missing data root": lambda: [str(run), "--set", "data.dataset=folder", "--set", "data.synthetic=null",
                                      "--set", f"data.root={tmp_path / 'absent'}"],
        "model outside a run": lambda: [str(_copy_model(run, tmp_path))],
    }[case]()
    status, out, err = call(evaluate, argv, capsys)
    assert_one_error_line(status, err, *fragments)


def test_find_recipe_outside_a_run_is_a_value_error_of_recipe(tmp_path):
    model_file = tmp_path / "m.keras"
    with pytest.raises(ValueError, match=rf"^`recipe` must be the recipe {re.escape(str(model_file))} was trained "
                                         r"with: it is not inside a run folder, whose recipe\.yaml would be read\. "
                                         r"Received: recipe=None$"):
        find_recipe(model_file)
    assert find_recipe(model_file, tmp_path / "r.yaml") == tmp_path / "r.yaml"


def test_evaluate_json_subprocess_keeps_stdout_clean(run):
    result = subprocess.run(
        [sys.executable, "-m", "kerasflow.evaluate", str(run), "--json", "--output", str(run / "cli")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "KERAS_BACKEND": "tensorflow"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert {"top1", "top5", "num_videos", "seconds_per_video", "seconds_per_video_split",
            "per_class_accuracy", "confusion_matrix_png"} <= set(report)


# ------------------------------------------------------------------------------------------------
# predict


@pytest.mark.parametrize("top", [2, 10])
def test_predict_top_k_is_softmax_of_the_model(run, held_out, capsys, top):
    item = held_out.items[0]
    status, out, _ = call(predict, [item.source, "--model", str(run), "--top-k", str(top), "--json"], capsys)
    assert status == 0
    report = json.loads(out)
    one = VideoIndex([item], held_out.class_names, "folder", "test")
    logits, _ = independent_logits(run / "model.keras", one)
    expected = softmax(logits[0].astype(np.float64))
    order = np.argsort(-expected)[: min(top, CLASSES)]
    assert [p["class"] for p in report["predictions"]] == [held_out.class_names[i] for i in order]
    probabilities = np.array([p["probability"] for p in report["predictions"]])
    np.testing.assert_allclose(probabilities, expected[order], rtol=1e-4)
    assert np.all(np.diff(probabilities) <= 0)
    assert probabilities.sum() <= 1 + 1e-9
    if top >= CLASSES:
        assert probabilities.sum() == pytest.approx(1.0)
    assert report["video"] == item.source and {"decode", "model"} <= set(report["seconds"])


def test_predict_cam_picture_has_the_grid_size(run, held_out, capsys, tmp_path):
    picture = tmp_path / "cam.png"
    status, out, _ = call(predict, [held_out.items[0].source, "--model", str(run), "--cam", str(picture)], capsys)
    assert status == 0 and str(picture) in out
    image = cv2.imread(str(picture))
    tile = SIZE * (MIN_TILE // SIZE)  # 64 px frames enlarged 2x
    assert image.shape == (TITLE_HEIGHT + tile, FRAMES * tile, 3)  # 4 frames: one row of four
    assert picture.read_bytes()[:8] == PNG_SIGNATURE
    assert not list(tmp_path.glob("*.tmp"))


def test_overlay_is_point3_jet_plus_point5_image():
    frame = np.full((32, 32, 3), 100, np.uint8)
    attention = np.array([[1.0, 0.0], [0.0, 0.0]])
    blended = overlay_attention(frame, attention)
    # JET(255) is dark red (128, 0, 0) in RGB, JET(0) dark blue (0, 0, 128).
    np.testing.assert_array_equal(blended[0, 0], np.uint8([0.3 * 128 + 50, 50, 50]))
    np.testing.assert_array_equal(blended[-1, -1], np.uint8([50, 50, 0.3 * 128 + 50]))
    np.testing.assert_array_equal(grid_frames(25), [0, 3, 6, 9, 12, 15, 18, 21])
    np.testing.assert_array_equal(grid_frames(4), [0, 1, 2, 3])


def _flow_folder(root, frames=6, height=40, width=48):
    rng = np.random.default_rng(0)
    for axis in ("x", "y"):
        folder = root / f"flow_{axis}" / "clip"
        folder.mkdir(parents=True)
        for number in range(1, frames + 1):
            plane = rng.integers(0, 256, (height, width), dtype=np.uint8)
            cv2.imwrite(str(folder / f"flow_{axis}_{number:05d}.jpg"), plane)
    return root / "flow_x" / "clip"


@pytest.fixture(scope="module")
def optical_flow_model(run, tmp_path_factory):
    """An untrained optical-flow model saved as kerasflow.fit saves models, with a flow folder."""
    folder = tmp_path_factory.mktemp("optical")
    stage = "[{name: flow, epochs: 1, optimizer: adam, learning_rate: 1.0e-3, schedule: {type: constant}}]"
    recipe = load_recipe(DEMO, tiny_overrides(folder) + ["model.kind=optical_flow", f"stages={stage}"])
    class_names = json.loads((run / "classes.json").read_text())
    model = build_stage_models(recipe.model, recipe.data, len(class_names))["flow"]
    save_model(model, str(folder / "flow.keras"), model_info(recipe, class_names, "flow"))
    return folder / "flow.keras", _flow_folder(folder), class_names


def test_predict_optical_flow_model_reads_flow_dir(optical_flow_model, held_out, capsys):
    model_file, flow_dir, class_names = optical_flow_model
    video = held_out.items[0].source
    status, out, _ = call(predict, [video, "--model", str(model_file), "--flow-dir", str(flow_dir), "--json",
                                    "--top-k", "3"], capsys)
    assert status == 0
    report = json.loads(out)
    one = VideoIndex([VideoItem(video, 0, str(flow_dir))], class_names, "folder", "test")
    model = keras.saving.load_model(model_file)
    inputs, _, _ = next(iter(make_dataset(one, [InputSpec("tvl1_stack", 5, SIZE)], batch_size=1)))
    expected = softmax(np.asarray(model.predict_on_batch(inputs), np.float64)[0])
    got = {p["class"]: p["probability"] for p in report["predictions"]}
    np.testing.assert_allclose([got[name] for name in class_names], expected, rtol=1e-4)


def test_predict_user_errors(run, held_out, optical_flow_model, capsys, tmp_path):
    video = held_out.items[0].source
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"not a video at all")
    flow_model, flow_dir, _ = optical_flow_model
    cases = [
        ([str(tmp_path / "missing.avi"), "--model", str(run)], ["missing.avi", "does not exist"]),
        ([str(broken), "--model", str(run)], ["broken.avi"]),
        ([video, "--model", str(tmp_path / "no-run")], ["no-run", "does not exist"]),
        ([video, "--model", str(run / "stages" / "flow" / "best.keras"), "--cam", str(tmp_path / "x.png")],
         ["a CAM picture needs a Keras model with an RGB stream"]),
        ([video, "--model", str(flow_model)], [f"--flow-dir must be the video's TV-L1 flow_x folder: {flow_model} "
                                               "is an optical-flow model"]),
        ([video, "--model", str(run), "--flow-dir", str(flow_dir)],
         [f"--flow-dir {flow_dir}: --flow-dir is only read by optical-flow models"]),
        ([video, "--model", str(run), "--cam", str(tmp_path / "no-folder" / "x.png")], ["no-folder"]),
    ]
    for argv, fragments in cases:
        status, out, err = call(predict, argv, capsys)
        assert_one_error_line(status, err, *fragments)
        assert out == ""
    # The library's words for the flow folder are Keras': the argument and what it received.
    with pytest.raises(ValueError, match=rf"^`flow_dir` is only read by optical-flow models; {re.escape(str(run))} "
                                         rf"takes RGB clips only\. "
                                         rf"Received: flow_dir={re.escape(repr(str(flow_dir)))}$"):
        check_request(video, str(run), read_info(str(run)), str(flow_dir))
    with pytest.raises(ValueError, match=r"^`flow_dir` must be the video's TV-L1 flow_x folder: .* "
                                         r"Received: flow_dir=None$"):
        check_request(video, str(flow_model), read_info(str(flow_model)), None)

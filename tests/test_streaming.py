"""python -m kerasflow.predict --stream: the sliding window over a video whose class changes halfway
(a model with known answers), parity with predicting a file of one window, the annotated video, the
timeline JSON, dropped windows when the source does not wait, and the refusals."""

import json
import os
import sys
import time
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
from cli_testing import assert_one_error_line, call, in_private_mount_namespace

from kerasflow import predict
from kerasflow.data.inputs import InputSpec
from kerasflow.data.video import iter_clip_frames
from kerasflow.export.predictors import Predictor
from kerasflow.model_io import ModelInfo, save_model
from kerasflow.streaming import check_window, default_window, stream

DARK, BRIGHT = 30, 220
FPS = 10


def write_video(path, frames, fps=FPS):
    """Frames RGB uint8 ``(N, H, W, 3)`` as an MJPG ``.avi`` (near-lossless on flat frames)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, frames.shape[2:0:-1])
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def dark_then_bright(path, frames=40):
    """``frames`` flat grey frames of 48 x 64: the first half DARK, the second BRIGHT."""
    values = np.where(np.arange(frames) < frames // 2, DARK, BRIGHT).astype(np.uint8)
    return write_video(path, np.broadcast_to(values[:, None, None, None], (frames, 48, 64, 3)).copy())


@pytest.fixture(scope="module")
def brightness_model(tmp_path_factory):
    """A saved model with known answers: ``bright`` when its 4 frames' mean brightness is over half
    (logits ``(5 - 10 b, 10 b - 5)`` for mean brightness ``b`` in 0..1), else ``dark``."""
    inputs = keras.Input((4, 32, 32, 3), dtype="uint8", name="rgb")
    brightness = keras.layers.GlobalAveragePooling3D()(keras.layers.Rescaling(1 / 255)(inputs))
    classifier = keras.layers.Dense(2)
    logits = classifier(brightness)
    classifier.set_weights([np.tile([[-10 / 3, 10 / 3]], (3, 1)), np.array([5.0, -5.0])])
    path = tmp_path_factory.mktemp("brightness") / "brightness.keras"
    info = ModelInfo("rgb", "rgb_stage2", "rgb", (InputSpec("rgb", 4, 32),), ("dark", "bright"))
    save_model(keras.Model({"rgb": inputs}, logits), str(path), info)
    return path


def test_stream_follows_the_class_change(brightness_model, tmp_path, capsys):
    video = dark_then_bright(tmp_path / "change.avi")
    out = tmp_path / "annotated.mp4"
    argv = ["--stream", str(video), "--model", str(brightness_model), "--window", "8", "--hop", "4",
            "--top-k", "2", "--json", "--out", str(out)]
    status, stdout, err = call(predict, argv, capsys)
    assert status == 0, err
    report = json.loads(stdout)
    assert (report["window"], report["hop"], report["frames"], report["dropped"]) == (8, 4, 40, 0)
    windows = report["windows"]
    # Window k holds frames 4k .. 4k+7 and samples 4k, 4k+2, 4k+4, 4k+6 (segments of a test video): it is
    # bright when at least three of them are past frame 19, from k = 5 on (k = 4 is two and two, 125).
    assert [(w["start"], w["end"]) for w in windows] == [(4 * k, 4 * k + 7) for k in range(9)]
    assert [w["predictions"][0]["class"] for w in windows] == ["dark"] * 5 + ["bright"] * 4
    assert [w["time"] for w in windows] == pytest.approx([(4 * k + 7) / FPS for k in range(9)])
    decoded = np.stack(list(iter_clip_frames(video))).mean(axis=(1, 2, 3)) / 255  # MJPG moves values by ~1
    b = np.array([decoded[4 * k : 4 * k + 8 : 2].mean() for k in range(9)])
    got = np.array([{p["class"]: p["probability"] for p in w["predictions"]}["bright"] for w in windows])
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-(20 * b - 10))), atol=2e-3)
    assert all(w["milliseconds"] > 0 for w in windows)
    assert err.count(" ms)") == 9  # one line a window, on stderr with --json

    frames = np.stack(list(iter_clip_frames(out)))
    assert frames.shape == (40, 48, 64, 3)
    band, below = frames[:, :24], frames[:, 26:]
    assert np.abs(below[:20].mean() - DARK) < 4 and np.abs(below[20:].mean() - BRIGHT) < 4
    assert band.min() < 20 and (band > 200).any()  # white text on a black band
    # No label before the first window ends; its label from frame 7 on; the text changes at frame 27.
    assert (band[0] > 200).sum() < (band[7] > 200).sum()
    assert np.abs(band[26].astype(int) - band[27]).sum() > 0


def test_stream_window_equals_predicting_that_window_as_a_file(tiny_run, tiny_held_out, tmp_path, capsys):
    frames = np.stack(list(iter_clip_frames(tiny_held_out.items[0].source)))
    window = 7  # the tiny run's flow clip: 4 frames 2 apart
    video = write_video(tmp_path / "one-window.avi", frames[:window])
    status, stdout, err = call(predict, ["--stream", str(video), "--model", str(tiny_run), "--json"], capsys)
    assert status == 0, err
    report = json.loads(stdout)
    assert report["window"] == window and len(report["windows"]) == 1
    status, stdout, err = call(predict, [str(video), "--model", str(tiny_run), "--json"], capsys)
    assert status == 0, err
    expected = {p["class"]: p["probability"] for p in json.loads(stdout)["predictions"]}
    got = {p["class"]: p["probability"] for p in report["windows"][0]["predictions"]}
    assert got == pytest.approx(expected, abs=1e-6)


class SlowPredictor(Predictor):
    """Answers ``dark`` after ``seconds``: a model slower than the source."""

    def __init__(self, info, seconds):
        super().__init__(info, "slow")
        self.seconds = seconds

    def __call__(self, inputs, training=False):
        time.sleep(self.seconds)
        return np.array([[1.0, 0.0]], np.float32)


def test_live_source_drops_windows_the_model_cannot_keep_up_with(brightness_model, tmp_path):
    from kerasflow.model_io import read_model_info

    video = write_video(tmp_path / "fast.avi", np.full((40, 48, 64, 3), 100, np.uint8), fps=40)
    info = read_model_info(brightness_model)
    due = (40 - 4) // 2 + 1  # windows of 4 every 2 frames
    live = stream(SlowPredictor(info, 0.2), str(video), window=4, hop=2, realtime=True)
    assert len(live["windows"]) + live["dropped"] == due and live["dropped"] >= due // 2
    starts = [w["start"] for w in live["windows"]]
    assert starts == sorted(starts) and starts[0] == 0
    replayed = stream(SlowPredictor(info, 0.01), str(video), window=4, hop=2)
    assert (len(replayed["windows"]), replayed["dropped"]) == (due, 0)
    assert predict.format_stream_report(live).count(f"dropped {live['dropped']} windows") == 1


def test_default_window_spans_the_longest_input():
    assert default_window([InputSpec("rgb", 25, 224), InputSpec("flow_clip", 16, 224, "contiguous", 2)]) == 31
    assert default_window([InputSpec("rgb", 25, 224)]) == 25


def test_stream_refusals(brightness_model, tmp_path, capsys):
    video = dark_then_bright(tmp_path / "v.avi", frames=10)
    model = str(brightness_model)
    optical = tmp_path / "optical.keras"
    optical.write_bytes(brightness_model.read_bytes())
    metadata = json.loads(open(f"{brightness_model}.json").read())
    metadata.update(kind="optical_flow", inputs=[{"name": "flow", "frames": 5, "size": 32}])
    (tmp_path / "optical.keras.json").write_text(json.dumps(metadata))
    cases = [
        (["--stream", str(tmp_path / "missing.avi"), "--model", model], ["missing.avi", "OpenCV cannot open"]),
        ([str(video), "--stream", str(video), "--model", model], ["either a VIDEO or --stream"]),
        (["--stream", str(video), "--model", str(optical)], ["streaming needs a model that takes RGB frames"]),
        (["--stream", str(video), "--model", model, "--out", str(tmp_path / "x.avi")], ["ending in .mp4"]),
        (["--stream", str(video), "--model", model, "--cam", str(tmp_path / "x.png")], ["--cam does not apply"]),
        ([str(video), "--model", model, "--window", "8"], ["--window applies to --stream only"]),
        (["--model", model], ["give a VIDEO"]),
    ]
    for argv, fragments in cases:
        status, _, err = call(predict, argv, capsys)
        assert_one_error_line(status, err, *fragments)

    # Windows the model cannot use, absurd or not, are one line naming --window before any frame is read;
    # the library says the same of its argument, as Keras words it.
    for window in (1, 99999999999999999999):
        status, _, err = call(predict, ["--stream", str(video), "--model", model, "--window", str(window)], capsys)
        assert_one_error_line(status, err)
        assert err.strip() == (f"error: --window {window}: --window must be from 4 (the frames this model's input "
                               "spans: a shorter window feeds it repeated frames) to 3600 (the frames a window may "
                               "hold in memory).")
        with pytest.raises(ValueError) as caught:
            check_window(window, [InputSpec("rgb", 4, 32)])
        assert str(caught.value) == ("`window` must be from 4 (the frames this model's input spans: a shorter window "
                                     "feeds it repeated frames) to 3600 (the frames a window may hold in memory). "
                                     f"Received: window={window}")


def test_a_stream_that_predicts_no_window_fails(brightness_model, tmp_path, capsys):
    model = str(brightness_model)
    video = dark_then_bright(tmp_path / "v.avi", frames=10)
    out = tmp_path / "annotated.mp4"
    argv = ["--stream", str(video), "--model", model, "--window", "20", "--out", str(out)]
    status, stdout, err = call(predict, argv, capsys)
    assert_one_error_line(status, err)
    assert err.strip().splitlines()[-1] == (f"error: the source {video} ended after 10 frames, before one window "
                                            "of 20 frames: nothing was predicted; give a window of 4 to 10 frames")
    assert stdout == "" and not out.exists() and os.listdir(tmp_path) == ["v.avi"]  # no partial video
    status, stdout, err = call(predict, [*argv, "--json"], capsys)
    assert_one_error_line(status, err)
    report = json.loads(stdout)
    assert (report["frames"], report["window"], report["windows"]) == (10, 20, [])
    assert report["error"] == err.strip().splitlines()[-1].removeprefix("error: ")
    one = write_video(tmp_path / "one.avi", np.full((1, 48, 64, 3), 100, np.uint8))
    status, _, err = call(predict, ["--stream", str(one), "--model", model], capsys)
    assert_one_error_line(status, err)
    assert err.strip().splitlines()[-1] == (f"error: the source {one} ended after 1 frames, before one window of 4 "
                                            "frames: nothing was predicted; this model needs at least 4 frames: give "
                                            "a longer source")


def write_mp4(path, frames=12):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (64, 48))
    for value in np.linspace(0, 255, frames).astype(np.uint8):
        writer.write(np.full((48, 64, 3), value, np.uint8))
    writer.release()
    return path


def test_stream_out_never_overwrites_the_source_or_a_file_that_is_not_a_video(brightness_model, tmp_path, capsys):
    source = write_mp4(tmp_path / "cup.mp4")
    original = source.read_bytes()
    link = tmp_path / "link.mp4"
    link.symlink_to(source)
    hard = tmp_path / "hard.mp4"
    os.link(source, hard)
    base = ["--stream", str(source), "--model", str(brightness_model)]
    for out in (source, link, hard, tmp_path / "." / "cup.mp4"):
        status, _, err = call(predict, [*base, "--out", str(out)], capsys)
        assert_one_error_line(status, err)
        assert err.strip() == (f"error: --out {out} is the --stream source {source}; it is not overwritten: give "
                               "another path for the annotated video")
    status, _, err = call(predict, ["--stream", str(link), "--model", str(brightness_model), "--out", str(source)],
                          capsys)
    assert_one_error_line(status, err, "is the --stream source")
    assert source.read_bytes() == original
    notes = tmp_path / "notes.mp4"
    notes.write_bytes(b"not a video, my notes")
    status, _, err = call(predict, [*base, "--out", str(notes)], capsys)
    assert_one_error_line(status, err)
    assert err.strip() == (f"error: --out {notes} exists and is not an MP4 video; it is not overwritten: give "
                           "another path")
    assert notes.read_bytes() == b"not a video, my notes"
    previous = tmp_path / "previous.mp4"  # an annotated video of an earlier stream is replaced
    previous.write_bytes(original)
    status, _, err = call(predict, [*base, "--out", str(previous)], capsys)
    assert status == 0, err
    assert len(list(iter_clip_frames(previous))) == 12 and previous.read_bytes() != original


FULL_DISK_STREAM = """
set -u
mount -t tmpfs -o size=64k tmpfs "$DISK" || exit 99
cd "$REPO"
"$PYTHON" -m kerasflow.predict --stream "$VIDEO" --model "$MODEL" --out "$DISK/annotated.mp4" > "$OUT/out" 2> "$OUT/err"
echo $? > "$OUT/status"
ls -A "$DISK" > "$OUT/left"
"""


@pytest.mark.large
def test_stream_out_on_a_full_disk_is_one_line_and_leaves_no_partial_video(brightness_model, tmp_path):
    rng = np.random.default_rng(0)
    video = write_video(tmp_path / "noise.avi", rng.integers(0, 256, (120, 48, 64, 3), dtype=np.uint8))
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, DISK=str(disk), OUT=str(out), VIDEO=str(video), MODEL=str(brightness_model),
               REPO=str(root), PYTHON=sys.executable, PYTHONPATH=str(root), TF_CPP_MIN_LOG_LEVEL="2")
    result = in_private_mount_namespace(FULL_DISK_STREAM, env)
    assert result.returncode == 0, result.stderr[-2000:]
    err = (out / "err").read_text()
    assert (out / "status").read_text().strip() == "2", err[-2000:]
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot write {disk / 'annotated.mp4'}: the disk is full (") and last.endswith(
        "free); free some space and run the same command again (what was written before is intact)"), err[-2000:]
    assert (out / "left").read_text() == ""  # the partial video was removed
    assert "annotated video:" not in (out / "out").read_text()


def test_predict_clips_are_capped_at_the_distinct_windows(tiny_run, tiny_held_out, capsys):
    video = tiny_held_out.items[0].source  # 8 frames; the flow clip spans 7: 2 distinct windows
    status, stdout, err = call(predict, [video, "--model", str(tiny_run), "--clips", "100000", "--json"], capsys)
    assert status == 0, err
    report = json.loads(stdout)
    assert report["clips"] == 2
    assert report["note"] == f"{video} has 2 distinct clips for this model: averaged those 2, not the 100000 asked for"
    status, stdout, _ = call(predict, [video, "--model", str(tiny_run), "--clips", "2", "--json"], capsys)
    assert json.loads(stdout)["predictions"] == report["predictions"] and "note" not in json.loads(stdout)

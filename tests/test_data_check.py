"""The dataset check fit runs before the first epoch, and ``python -m kerasflow.data check RECIPE``:
hostile files, exact one-line messages, the cache (a re-run opens no video), no TensorFlow."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from kerasflow.data import video
from kerasflow.data.check import check_dataset, check_items, recipe_inputs
from kerasflow.data.datasets import build_index
from kerasflow.data.inputs import InputSpec
from kerasflow.data.synthetic import render_video, write_video
from kerasflow.data.video import count_video_frames, read_clip
from kerasflow.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
CANNOT_OPEN = "cannot be opened (empty, corrupt or an unsupported codec)"
NO_FLOW = "has no flow_x folder (extract flow or pass flow_root)"
CLIP = [InputSpec("rgb", 4, 32)]
STACK = [InputSpec("tvl1_stack", 3, 32)]
TRAIN = ["jump/clip_0.avi", "jump/clip_1.avi", "jump/empty.avi", "jump/noise.mp4",
         "walk/clip_0.avi", "walk/truncated.avi", "walk/frames"]
TEST = ["jump/clip_2.avi", "walk/clip_1.avi"]
FLOW_FRAMES = {"jump/clip_0": 5, "jump/clip_2": 5, "walk/clip_0": 5, "walk/truncated": 5, "walk/clip_1": 2}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every check caches under tmp_path, and starts with no frame counts remembered."""
    monkeypatch.setenv("KERASFLOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(video, "_frame_counts", {})
    return tmp_path / "cache" / "video-check.json"


def _flow(root, rel, count):
    for component in "xy":
        folder = root / f"flow_{component}" / rel
        folder.mkdir(parents=True)
        for number in range(1, count + 1):
            cv2.imwrite(str(folder / f"flow_{component}_{number:05d}.jpg"), np.full((32, 32), 128, np.uint8))


@pytest.fixture
def dataset(tmp_path):
    """A folder dataset (train.txt / test.txt) of 32 px clips with hostile files among them."""
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for name in ("jump/clip_0", "jump/clip_1", "jump/clip_2", "walk/clip_0", "walk/clip_1"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        write_video(root / f"{name}.avi", render_video(rng, (0, 1), 6, 32))
    (root / "jump/empty.avi").write_bytes(b"")
    (root / "jump/noise.mp4").write_bytes(rng.bytes(3000))
    # Noise frames compress badly, so half the file holds a few whole frames; the header still says 8.
    write_video(root / "full.avi", rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8))
    data = (root / "full.avi").read_bytes()
    (root / "walk/truncated.avi").write_bytes(data[: len(data) // 2])
    (root / "full.avi").unlink()
    (root / "walk/frames").mkdir()
    for number in range(1, 6):
        cv2.imwrite(str(root / f"walk/frames/img_{number:05d}.jpg"), np.full((32, 32, 3), 40 * number, np.uint8))
    (root / "walk/frames/img_00006.jpg").write_bytes(b"not a jpeg")
    for rel, count in FLOW_FRAMES.items():
        _flow(root, rel, count)
    (root / "train.txt").write_text("".join(f"{line}\n" for line in TRAIN))
    (root / "test.txt").write_text("".join(f"{line}\n" for line in TEST))
    return root


def _indexes(root):
    return build_index("folder", root, subset="train"), build_index("folder", root, subset="test")


def _recipe(folder, root, kind="two_stream_optical_flow", on_bad_video="skip"):
    stages = {"two_stream_optical_flow": ["rgb_stage1", "rgb_stage2", "flow", "joint"],
              "rgb": ["rgb_stage1", "rgb_stage2"]}
    recipe = {
        "data": {"dataset": "folder", "root": str(root), "frame_size": 32, "rgb_frames": 4, "flow_stack": 3,
                 "batch_size": 2, "on_bad_video": on_bad_video},
        "model": {"kind": kind, "backbone": "tiny"},
        "stages": [{"name": name, "epochs": 1, "optimizer": "adam", "learning_rate": 1e-3} for name in stages[kind]],
        "runtime": {"output_dir": str(folder / "run")},
    }
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


@pytest.fixture
def opens(monkeypatch):
    """Counts the videos and image files OpenCV is asked to open, by any code."""
    calls = []
    real_capture, real_imread = cv2.VideoCapture, cv2.imread

    def capture(path, *args):
        calls.append(os.path.basename(str(path)))
        return real_capture(path, *args)

    def imread(path, *args):
        calls.append(os.path.basename(str(path)))
        return real_imread(path, *args)

    monkeypatch.setattr(cv2, "VideoCapture", capture)
    monkeypatch.setattr(cv2, "imread", imread)
    return calls


def _expected_bad(root):
    return [
        (str(root / "jump/clip_1.avi"), NO_FLOW),
        (str(root / "jump/empty.avi"), CANNOT_OPEN),
        (str(root / "jump/noise.mp4"), CANNOT_OPEN),
        (str(root / "walk/frames"), "frame file 'img_00006.jpg' does not decode"),
    ]


def test_hostile_files_and_a_truncated_video_usable_with_its_real_count(dataset):
    train, _ = _indexes(dataset)
    result = check_items(train.items, CLIP + STACK, workers=2)
    assert result.bad == _expected_bad(dataset)
    usable = ["jump/clip_0.avi", "walk/clip_0.avi", "walk/truncated.avi"]
    assert [item.source for item in result.good] == [str(dataset / name) for name in usable]
    truncated = str(dataset / "walk/truncated.avi")
    info = result.info[truncated]
    real = count_video_frames(truncated)
    assert info.stated == 8 and 0 < real < 8 and info.frames == real and (info.height, info.width) == (32, 32)
    assert video._frame_counts == {truncated: real}  # the pipelines sample over the real frames
    assert read_clip(truncated, 4).shape == (4, 32, 32, 3)
    good = result.info[str(dataset / "jump/clip_0.avi")]
    assert (good.frames, good.stated, good.height, good.width, good.flow_frames) == (6, 6, 32, 32, 5)


def test_flow_folders_alone_open_no_video(dataset, opens):
    items = _indexes(dataset)[0].items[:2] + _indexes(dataset)[1].items
    items[0].flow_source = str(dataset / "flow_x/jump/gone")
    for name in ("flow_y_00002.jpg", "flow_y_00004.jpg"):
        (dataset / "flow_y/walk/clip_0" / name).unlink()
    items.append(type(items[0])(str(dataset / "walk/clip_0.avi"), 1, str(dataset / "flow_x/walk/clip_0")))
    result = check_items(items, STACK)
    assert result.bad == [
        (str(dataset / "jump/clip_0.avi"), f"flow folder {str(dataset / 'flow_x/jump/gone')!r} does not exist"),
        (str(dataset / "jump/clip_1.avi"), NO_FLOW),
        (str(dataset / "walk/clip_1.avi"), "has 2 flow frames, the flow stack needs 3"),
        (str(dataset / "walk/clip_0.avi"),
         "flow_y folder lacks 2 of the 5 files matching its flow_x frames, e.g. 'flow_y_00002.jpg'"),
    ]
    assert [item.source for item in result.good] == [str(dataset / "jump/clip_2.avi")]
    assert opens == [] and not (dataset.parent / "cache").exists()


def test_cached_rerun_opens_nothing_and_a_touched_file_alone_is_checked_again(dataset, opens, private_cache):
    train, _ = _indexes(dataset)
    first = check_items(train.items, CLIP)
    assert len(opens) >= len(TRAIN) and first.cached == 0
    entries = json.loads(private_cache.read_text())["entries"]
    assert entries[str(dataset / "jump/empty.avi")]["bad"] == CANNOT_OPEN
    video._frame_counts.clear()
    opens.clear()
    again = check_items(train.items, CLIP)
    assert opens == [] and again.cached == len(TRAIN)
    assert (again.good, again.bad) == (first.good, first.bad)
    truncated = str(dataset / "walk/truncated.avi")
    assert video._frame_counts == {truncated: first.info[truncated].frames}

    touched = dataset / "jump/clip_0.avi"
    status = touched.stat()
    os.utime(touched, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))
    third = check_items(train.items, CLIP)
    assert opens == ["clip_0.avi"] and third.cached == len(TRAIN) - 1

    opens.clear()
    private_cache.write_text('{"version": 1, "entries": {')  # corrupt: ignored and rebuilt
    fourth = check_items(train.items, CLIP)
    assert fourth.bad == first.bad and fourth.cached == 0 and len(opens) >= len(TRAIN)
    assert len(json.loads(private_cache.read_text())["entries"]) == len(TRAIN)


def test_an_unwritable_cache_is_no_error(dataset, tmp_path):
    (tmp_path / "a file").write_text("")
    result = check_items(_indexes(dataset)[1].items, CLIP, cache_file=tmp_path / "a file" / "video-check.json")
    assert len(result.good) == 2 and result.bad == []


def test_fail_names_the_limit_then_a_count_and_skip_keeps_the_classes(dataset):
    train, test = _indexes(dataset)
    with pytest.raises(UserError) as error:
        check_dataset(train, test, CLIP + STACK, "fail", limit=2)
    assert str(error.value) == (
        f"data check: 5 of 9 videos in {str(dataset)!r} cannot be used: 'jump/clip_1.avi' ({NO_FLOW}); "
        f"'jump/empty.avi' ({CANNOT_OPEN}); and 3 more; "
        "fix or remove them, or set data.on_bad_video: skip to leave them out"
    )
    kept = check_dataset(train, test, CLIP, "skip")
    assert [len(kept.train), len(kept.test)] == [4, 2] and kept.train.class_names == ["jump", "walk"]
    assert kept.summary == (
        f"data check: left out 3 of 9 videos in {str(dataset)!r} that cannot be used: "
        f"'jump/empty.avi' ({CANNOT_OPEN}); 'jump/noise.mp4' ({CANNOT_OPEN}); "
        "'walk/frames' (frame file 'img_00006.jpg' does not decode)"
    )
    assert check_dataset(kept.train, kept.test, CLIP, "fail").summary is None


def test_a_subset_with_no_usable_video_is_an_error(dataset):
    for component in "xy":
        shutil.rmtree(dataset / f"flow_{component}/jump/clip_2")
    train, test = _indexes(dataset)
    with pytest.raises(UserError) as error:
        check_dataset(train, test, STACK, "skip", limit=1)
    assert str(error.value) == (
        f"data check: every one of the 2 test videos in {str(dataset)!r} cannot be used: "
        f"'jump/clip_2.avi' ({NO_FLOW}); and 1 more; fix or remove them, or check data.root"
    )


def _command(tmp_path, *args, code=None):
    env = dict(os.environ, KERASFLOW_CACHE_DIR=str(tmp_path / "cache"))
    program = ["-c", code] if code else ["-m", "kerasflow.data"]
    return subprocess.run([sys.executable, *program, "check", *args], capture_output=True, text=True, env=env, cwd=ROOT)


def test_command_skip_prints_a_line_per_subset_and_the_summary_without_tensorflow(dataset, tmp_path):
    code = ("import sys; from kerasflow.data.__main__ import main\ntry:\n    main(sys.argv[1:])\n"
            "finally:\n    print('tensorflow imported:', 'tensorflow' in sys.modules)")
    result = _command(tmp_path, str(_recipe(tmp_path, dataset)), code=code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"data check train: 7 videos checked in \d+\.\d s, 4 bad", lines[0])
    assert re.fullmatch(r"data check test: 2 videos checked in \d+\.\d s, 1 bad", lines[1])
    named = "; ".join(f"{os.path.relpath(path, dataset)!r} ({reason})" for path, reason in _expected_bad(dataset))
    real = count_video_frames(str(dataset / "walk/truncated.avi"))
    assert lines[2:] == [
        f"data check: 1 video in {str(dataset)!r} holds fewer frames than its header states; sampled over the "
        f"frames that decode: 'walk/truncated.avi' (header 8 frames, {real} decode)",
        f"data check: left out 5 of 9 videos in {str(dataset)!r} that cannot be used: {named}; "
        "'walk/clip_1.avi' (has 2 flow frames, the flow stack needs 3)",
        "tensorflow imported: False",
    ]
    assert result.stderr == ""


def test_command_fail_is_one_line_and_exit_2_and_a_clean_dataset_passes(dataset, tmp_path):
    recipe = str(_recipe(tmp_path, dataset, kind="rgb"))
    result = _command(tmp_path, recipe, "--set", "data.on_bad_video=fail", "--workers", "2")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: data check: 3 of 9 videos in {str(dataset)!r} cannot be used: 'jump/empty.avi' ({CANNOT_OPEN}); "
        f"'jump/noise.mp4' ({CANNOT_OPEN}); 'walk/frames' (frame file 'img_00006.jpg' does not decode); "
        "fix or remove them, or set data.on_bad_video: skip to leave them out"
    ]
    (dataset / "train.txt").write_text("jump/clip_0.avi\nwalk/truncated.avi\n")
    result = _command(tmp_path, recipe, "--set", "data.on_bad_video=fail")
    assert (result.returncode, result.stdout.splitlines()[-1]) == (0, "data check: all 4 videos can be used")
    assert re.fullmatch(r"data check test: 2 videos checked in \d+\.\d s \(2 from the cache\), 0 bad",
                        result.stdout.splitlines()[1])
    # The truncated video is usable over the frames that decode, and the check says so, once.
    real = count_video_frames(str(dataset / "walk/truncated.avi"))
    note = (f"data check: 1 video in {str(dataset)!r} holds fewer frames than its header states; sampled over the "
            f"frames that decode: 'walk/truncated.avi' (header 8 frames, {real} decode)")
    assert result.stdout.splitlines()[2] == note and result.stdout.count("truncated.avi") == 1
    result = _command(tmp_path, recipe, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "videos": 4, "usable": 4, "left_out": [],
        "header_mismatch": [{"video": str(dataset / "walk/truncated.avi"), "header_frames": 8,
                             "decodable_frames": real}],
    }
    assert note in result.stderr  # the logs go to stderr with --json


def test_recipe_inputs_are_the_union_over_trained_stages(dataset, tmp_path):
    from kerasflow.config import load_recipe

    recipe = load_recipe(str(_recipe(tmp_path, dataset)))
    assert recipe_inputs(recipe) == [InputSpec("rgb", 4, 32), InputSpec("tvl1_stack", 3, 32)]

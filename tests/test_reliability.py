"""Hostile use, written as the user's command and the outcome expected: one ``error:`` line and exit 2
(never an abort or a traceback), bad data found before training, full disks, interrupted and moved
runs, and outputs that never overwrite what they should not."""

import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from cli_testing import in_private_mount_namespace

from kerasflow.cli import flag_message, value_errors_as_user_errors
from kerasflow.errors import cli_entry

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CI="1")
CLASSES = ("left", "right")


def _frames_folder(folder, frames=8, seed=0, size=32):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for number in range(1, frames + 1):
        cv2.imwrite(str(folder / f"img_{number:05d}.jpg"), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    return folder


def _corrupt_middle(folder):
    """Every frame but the first and the last stops decoding: the data check (first and last frame)
    passes, the pipeline's sampled frames fail."""
    files = sorted(folder.glob("*.jpg"))
    for path in files[1:-1]:
        path.write_bytes(b"not a jpeg")


def make_dataset(root, per_class=6, test_per_class=2):
    """A folder dataset of frame folders with explicit train/test lists (so the split is known)."""
    lines = {"train": [], "test": []}
    for label, name in enumerate(CLASSES):
        for number in range(per_class):
            _frames_folder(root / name / f"clip{number}", seed=label * 100 + number)
            lines["test" if number < test_per_class else "train"].append(f"{name}/clip{number}")
    for subset, names in lines.items():
        (root / f"{subset}.txt").write_text("".join(f"{line}\n" for line in names))
    return root


def write_recipe(folder, root, epochs=1, **data):
    recipe = {
        "data": {"dataset": "folder", "root": str(root), "frame_size": 32, "rgb_frames": 4, "flow_frames": 4,
                 "batch_size": 4, "random_flip": False, "validation": "test", **data},
        "model": {"kind": "representation_flow", "backbone": "tiny", "flow": {"iterations": 2, "position": 1,
                  "bottleneck": 4}},
        "stages": [{"name": "flow", "epochs": epochs, "optimizer": "adam", "learning_rate": 1e-3}],
        "runtime": {"output_dir": str(folder / "run")},
    }
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def command(*args, cwd=ROOT, timeout=300):
    return subprocess.run([sys.executable, "-m", *map(str, args)], capture_output=True, text=True, env=ENV,
                          cwd=cwd, timeout=timeout)


def last_error(result):
    """The one ``error:`` line of a failed command, checked to be the only one and the last line."""
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "terminate called" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("error:")] == [lines[-1]], result.stderr[-2000:]
    return lines[-1]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished two-epoch representation-flow run on a frame-folder dataset; tests work on copies."""
    folder = tmp_path_factory.mktemp("finished")
    recipe = write_recipe(folder, make_dataset(folder / "data"), epochs=2)
    result = command("kerasflow.fit", recipe)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


@pytest.fixture
def run_copy(finished_run, tmp_path):
    """A copy of the finished run (its data shared), with its recipe rewritten to point at the copy."""
    shutil.copytree(finished_run / "run", tmp_path / "run")
    recipe = yaml.safe_load((finished_run / "recipe.yaml").read_text())
    recipe["runtime"]["output_dir"] = str(tmp_path / "run")
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return tmp_path


def unfinish(run):
    """As if the run was killed after its stages, before the final model: a re-run finishes it."""
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.pop("final")
    (run / "metrics.json").write_text(json.dumps(metrics))


# ------------------------------------------------------------------------------------------------
# Errors end in one line, on a line of their own, exit 2


@pytest.mark.large
def test_a_video_failing_mid_epoch_with_fail_is_one_line_after_the_progress_bar(tmp_path):
    root = make_dataset(tmp_path / "data")
    for number in range(2, 6):
        _corrupt_middle(root / "left" / f"clip{number}")
    recipe = write_recipe(tmp_path, root, on_bad_video="fail")
    controller, terminal = pty.openpty()  # a terminal: Keras draws its progress bar with carriage returns
    process = subprocess.Popen([sys.executable, "-m", "kerasflow.fit", str(recipe)], stdout=terminal,
                               stderr=terminal, env={**ENV, "CI": ""}, cwd=ROOT)
    os.close(terminal)
    output = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 300)
        try:
            chunk = os.read(controller, 65536) if ready else b""
        except OSError:
            chunk = b""
        if not chunk:
            break
        output += chunk
    status = process.wait(timeout=60)
    text = output.decode(errors="replace")
    assert status == 2 and "Traceback" not in text and "terminate called" not in text, text[-3000:]
    lines = text.replace("\r\n", "\n").split("\n")
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("error: bad video "), text[-3000:]
    assert "does not decode; re-encode or remove it, or set data.on_bad_video: skip" in errors[0]


@pytest.mark.large
def test_bad_videos_are_named_before_training(tmp_path):
    root = make_dataset(tmp_path / "data")
    (root / "left" / "clip5" / "img_00001.jpg").write_bytes(b"")
    shutil.rmtree(root / "right" / "clip4")
    (root / "right" / "clip4").mkdir()
    recipe = write_recipe(tmp_path, root, on_bad_video="fail")
    error = last_error(command("kerasflow.fit", recipe))
    assert error.startswith(f"error: data check: 2 of 12 videos in '{root}' cannot be used: ")
    assert "'left/clip5' (" in error and "'right/clip4' (" in error and error.endswith(
        "fix or remove them, or set data.on_bad_video: skip to leave them out")
    assert not (tmp_path / "run").exists()  # a start that fails leaves nothing behind

    result = command("kerasflow.fit", recipe, "--set", "data.on_bad_video=skip")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "data check: left out 2 of 12 videos" in result.stdout
    assert result.stdout.index("data check: left out") < result.stdout.index("flow: training")
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["final"]["num_videos"] == 4


@pytest.mark.large
def test_a_stage_that_decodes_no_training_video_is_not_marked_finished(tmp_path):
    root = make_dataset(tmp_path / "data")
    backups = {}
    for name in CLASSES:
        for number in range(2, 6):
            folder = root / name / f"clip{number}"
            backups[folder] = {path: path.read_bytes() for path in folder.iterdir()}
            _corrupt_middle(folder)
    recipe = write_recipe(tmp_path, root)
    error = last_error(command("kerasflow.fit", recipe))
    assert error.startswith("error: stage flow: no training video could be decoded in epoch 1 (all 8 were skipped")
    assert json.loads((tmp_path / "run" / "state.json").read_text())["completed"] == []
    for folder, files in backups.items():  # repaired: the same command now trains
        for path, data in files.items():
            path.write_bytes(data)
    result = command("kerasflow.fit", recipe)
    assert result.returncode == 0 and json.loads((tmp_path / "run" / "state.json").read_text())["completed"] == ["flow"]


@pytest.mark.large
def test_one_class_and_missing_weights_are_refused_and_leave_nothing(tmp_path):
    root = make_dataset(tmp_path / "data")
    recipe = write_recipe(tmp_path, root)
    error = last_error(command("kerasflow.fit", recipe, "--set", f"model.weights={tmp_path / 'resnet.weights.h5'}"))
    assert error == (f"error: model.weights: {tmp_path / 'resnet.weights.h5'}: no such file; convert the weights "
                     "with python -m kerasflow.convert_weights")
    assert not (tmp_path / "run").exists()
    shutil.rmtree(root / "right")
    (root / "train.txt").write_text("left/clip2\nleft/clip3\n")
    (root / "test.txt").write_text("left/clip0\n")
    error = last_error(command("kerasflow.fit", recipe))
    assert error == (f"error: {root} holds 1 class (left): a classifier needs at least 2; "
                     "add class folders or fix data.root")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------------
# Resuming: moved folders, changed recipes and splits, damaged state, stale files


def test_a_moved_run_folder_resumes_and_stale_temporaries_go(run_copy):
    moved = run_copy / "moved"
    (run_copy / "run").rename(moved)
    unfinish(moved)
    stale = moved / "stages" / "flow" / ".checkpoint-2.weights.h5.999999999.tmp.weights.h5"
    stale.write_bytes(b"\0" * 1000)
    result = command("kerasflow.fit", run_copy / "recipe.yaml", "--set", f"runtime.output_dir={moved}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "flow: training" not in result.stdout and "final model" in result.stdout
    assert not stale.exists()


def test_the_advice_to_finish_a_moved_run_resumes_it_where_it_is(run_copy):
    moved = run_copy / "elsewhere" / "moved"
    moved.parent.mkdir()
    (run_copy / "run").rename(moved)
    unfinish(moved)
    (moved / "model.keras").unlink()
    advice = last_error(command("kerasflow.evaluate", moved))
    assert advice == f"error: {moved} has no model.keras yet; finish its training with python -m kerasflow.fit {moved}"
    result = command(*advice.split("python -m ")[1].split())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "flow: training" not in result.stdout and f"final model: {moved / 'model.keras'}" in result.stdout
    assert (moved / "model.keras").is_file() and not (run_copy / "run").exists()  # not a new run at the old place
    # The form report's advice gives (the run's recipe.yaml) resumes the same folder.
    result = command("kerasflow.fit", moved / "recipe.yaml")
    assert result.returncode == 0 and f"{moved}: all stages are finished; nothing to train" in result.stdout
    assert not (run_copy / "run").exists()
    error = last_error(command("kerasflow.fit", run_copy / "elsewhere"))
    assert error == (f"error: {run_copy / 'elsewhere'} is a folder but not a run folder (it has no recipe.yaml and "
                     "state.json); pass a recipe file, an installed recipe's name, or a run folder to resume")


def test_fit_and_tune_refuse_a_folder_that_is_not_theirs(run_copy, tmp_path):
    recipe = run_copy / "recipe.yaml"
    mine = tmp_path / "mine"
    mine.mkdir()
    files = {"model.keras": b"my model\x00", "curves.png": b"\x89PNG mine", "metrics.json": b'{"accuracy": 0.9}'}
    for name, data in files.items():
        (mine / name).write_bytes(data)
    error = last_error(command("kerasflow.fit", recipe, "--set", f"runtime.output_dir={mine}"))
    assert error == (f"error: {mine} is not empty and holds no kerasflow run (it holds curves.png, metrics.json, "
                     "model.keras); nothing there is replaced: set runtime.output_dir to a new or empty folder")
    assert {path.name: path.read_bytes() for path in mine.iterdir() if not path.name.startswith(".")} == files

    search = tmp_path / "search"
    (search / "trials" / "0").mkdir(parents=True)
    (search / "search.yaml").write_text("data: {}\n")
    error = last_error(command("kerasflow.fit", recipe, "--set", f"runtime.output_dir={search}"))
    assert error == (f"error: {search} is a search folder of python -m kerasflow.tune (it holds search.yaml); a run "
                     "cannot start there: set runtime.output_dir to a new or empty folder")
    assert sorted(name for name in os.listdir(search) if not name.startswith(".")) == ["search.yaml", "trials"]
    assert os.listdir(search / "trials" / "0") == []

    run = run_copy / "run"
    before = sorted(str(path.relative_to(run)) for path in run.rglob("*"))
    factor = ("--factor", "model.flow.iterations=1,2")
    error = last_error(command("kerasflow.tune", recipe, *factor))
    assert error == (f"error: {run} is a run folder of python -m kerasflow.fit; a search cannot go there: set "
                     "runtime.output_dir to a new or empty folder")
    assert sorted(str(path.relative_to(run)) for path in run.rglob("*")) == before
    error = last_error(command("kerasflow.tune", recipe, *factor, "--set", f"runtime.output_dir={mine}"))
    assert error == (f"error: {mine} is not empty and holds no search (it holds curves.png, metrics.json, "
                     "model.keras); nothing there is replaced: set runtime.output_dir to a new or empty folder")
    assert {path.name: path.read_bytes() for path in mine.iterdir() if not path.name.startswith(".")} == files


HOLD_LOCK = """
import sys, time
from kerasflow.training.folder_lock import folder_lock
with folder_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


def _hold_lock(folder):
    """A process that holds ``folder``'s lock as a training process does, once it has said so."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder)], stdout=subprocess.PIPE, text=True,
                              env=ENV, cwd=ROOT)
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.mark.large
def test_one_process_at_a_time_in_a_run_folder_and_a_killed_one_leaves_it_free(tmp_path):
    recipe = write_recipe(tmp_path, make_dataset(tmp_path / "data"))
    run = tmp_path / "run"
    holder = _hold_lock(run)
    try:
        error = last_error(command("kerasflow.fit", recipe))
        assert error == (f"error: {run} is in use by another kerasflow process (pid {holder.pid}); wait for it to end "
                         "or stop it, then run python -m kerasflow.fit again")
        assert os.listdir(run) == [".kerasflow.lock"]  # the second process wrote nothing
    finally:
        holder.kill()  # kill -9: no chance to clean up
        holder.wait()
    result = command("kerasflow.fit", recipe)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = (run / "stages" / "flow" / "log.csv").read_text().strip().splitlines()
    assert len(rows) == 2  # header and one epoch: trained once

    search = tmp_path / "search"
    holder = _hold_lock(search)
    try:
        error = last_error(command("kerasflow.tune", recipe, "--factor", "model.flow.iterations=1,2", "--set",
                                   f"runtime.output_dir={search}"))
        assert error == (f"error: {search} is in use by another kerasflow process (pid {holder.pid}); wait for it to "
                         "end or stop it, then run python -m kerasflow.tune again")
        assert os.listdir(search) == [".kerasflow.lock"]
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_that_fails_its_start_leaves_no_folder(tmp_path):
    from kerasflow.errors import UserError
    from kerasflow.training.folder_lock import folder_lock

    with pytest.raises(UserError, match="boom"), folder_lock(tmp_path / "new"):
        raise UserError("boom")
    assert not (tmp_path / "new").exists()
    with folder_lock(tmp_path / "kept"):
        (tmp_path / "kept" / "state.json").write_text("{}")
    assert sorted(os.listdir(tmp_path / "kept")) == [".kerasflow.lock", "state.json"]
    with folder_lock(tmp_path / "kept"):  # taken again by the same process once released
        pass


def test_a_changed_split_is_refused_and_removed_clips_are_noted(run_copy, tmp_path):
    recipe = yaml.safe_load((run_copy / "recipe.yaml").read_text())
    data = tmp_path / "data"
    shutil.copytree(recipe["data"]["root"], data)
    # The run was trained on the copied data's twin: record it as trained on this copy.
    recipe["data"]["root"] = str(data)
    (run_copy / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    saved = yaml.safe_load((run_copy / "run" / "recipe.yaml").read_text())
    saved["data"]["root"] = str(data)
    (run_copy / "run" / "recipe.yaml").write_text(yaml.safe_dump(saved))
    unfinish(run_copy / "run")
    (data / "test.txt").write_text("left/clip0\nright/clip0\nright/clip1\nleft/clip2\n")  # left/clip2 was train
    error = last_error(command("kerasflow.fit", run_copy / "recipe.yaml"))
    assert error.startswith(f"error: the split of {data} changed since this run started: 1 clips moved between "
                            "subsets (e.g. 'left/clip2')")
    (data / "test.txt").write_text("left/clip0\nleft/clip1\nright/clip0\nright/clip1\n")
    (data / "train.txt").write_text("".join(f"{c}/clip{n}\n" for c in CLASSES for n in range(2, 6)
                                            if (c, n) != ("left", 5)))
    result = command("kerasflow.fit", run_copy / "recipe.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{data}: 1 clips removed and 0 added since this run started; no clip changed subset" in result.stderr


def test_a_damaged_state_is_rebuilt_from_the_checkpoints(run_copy):
    run = run_copy / "run"
    (run / "state.json").write_text('{"completed": ["fl')
    result = command("kerasflow.fit", run_copy / "recipe.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "was unreadable; rebuilt it from the stage folders: finished flow" in result.stderr
    assert "nothing to train" in result.stdout


def test_a_missing_or_damaged_checkpoint_restarts_its_stage(run_copy):
    run = run_copy / "run"
    (run / "stages" / "flow" / "final.weights.h5").unlink()
    (run / "state.json").write_text(json.dumps({"completed": [],
                                                "current": {"stage": "flow", "epoch": 2, "best": 0.5}}))
    (run / "stages" / "flow" / "checkpoint-2.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    unfinish(run)
    result = command("kerasflow.fit", run_copy / "recipe.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "checkpoint-2.weights.h5 cannot be read" in result.stderr
    assert "training stage flow again from its first epoch" in result.stderr
    rows = (run / "stages" / "flow" / "log.csv").read_text().strip().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["0", "1"]  # each epoch logged once


@pytest.mark.large
def test_sigterm_keeps_every_finished_epoch_and_says_how_to_resume(tmp_path):
    recipe = write_recipe(tmp_path, make_dataset(tmp_path / "data"), epochs=12)
    process = subprocess.Popen([sys.executable, "-m", "kerasflow.fit", str(recipe)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)
    state = tmp_path / "run" / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline and not (state.exists() and json.loads(state.read_text())["current"].get("epoch")):
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == (
        "interrupted: every finished epoch is saved; run the same command again to resume from the last one")
    assert not list((tmp_path / "run").rglob(".*.tmp*"))
    epoch = json.loads(state.read_text())["current"]["epoch"]
    resumed = command("kerasflow.fit", recipe)
    assert f"flow: resuming after epoch {epoch} of 12" in resumed.stdout, resumed.stderr[-2000:]
    rows = (tmp_path / "run" / "stages" / "flow" / "log.csv").read_text().strip().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == [str(e) for e in range(12)]


# ------------------------------------------------------------------------------------------------
# Outputs that must not overwrite, and one-line refusals of the other commands


def test_evaluate_and_predict_refuse_what_is_not_theirs(run_copy, tmp_path):
    run = run_copy / "run"
    video = str(Path(yaml.safe_load((run / "recipe.yaml").read_text())["data"]["root"]) / "left" / "clip0")
    model_bytes = (run / "model.keras").read_bytes()
    a_file = tmp_path / "a file"
    a_file.write_text("keep me")
    cases = [
        (("kerasflow.predict", video, "--model", run, "--cam", run / "model.keras"),
         "is a PNG: give a path ending in .png"),
        (("kerasflow.predict", video, "--model", run, "--cam", a_file), "is a PNG: give a path ending in .png"),
        (("kerasflow.predict", video, "--model", run / "stages" / "flow" / "final.weights.h5"),
         "is a weights checkpoint, not a model file"),
        (("kerasflow.predict", video, "--model", run / "recipe.yaml"), "is a recipe, not a model file"),
        (("kerasflow.predict", video, "--model", tmp_path), "is not a run folder (it has no model.keras)"),
        (("kerasflow.evaluate", run, "--output", a_file), "is a file; give a folder"),
        (("kerasflow.evaluate", run, "--output", run), "is a run folder"),
    ]
    for args, fragment in cases:
        error = last_error(command(*args))
        assert fragment in error, (args, error)
    assert (run / "model.keras").read_bytes() == model_bytes and a_file.read_text() == "keep me"


def test_evaluate_on_data_it_cannot_decode_fails_and_writes_nothing(run_copy, tmp_path):
    other = tmp_path / "other"
    for name in CLASSES:
        (other / name / "broken.avi").parent.mkdir(parents=True)
        (other / name / "broken.avi").write_bytes(b"")
    (other / "train.txt").write_text("left/broken.avi\n")
    (other / "test.txt").write_text("left/broken.avi\nright/broken.avi\n")
    run = run_copy / "run"
    pictures = sorted(path.name for path in run.rglob("*.png"))
    error = last_error(command("kerasflow.evaluate", run, "--set", f"data.root={other}"))
    assert error.startswith(f"error: none of the 2 test videos of {other} could be decoded")
    assert sorted(path.name for path in run.rglob("*.png")) == pictures


def test_other_commands_end_in_one_line(tmp_path, run_copy):
    a_file = tmp_path / "out"
    a_file.write_text("x")
    recipe = yaml.safe_load((run_copy / "recipe.yaml").read_text())
    error = last_error(command("kerasflow.extract_flow", recipe["data"]["root"], a_file))
    assert error == f"error: output root {a_file} is a file; pass a folder (it is created if missing)"
    result = command("kerasflow.data", "pack", "--dataset", "folder", "--root", recipe["data"]["root"], tmp_path)
    assert result.stderr.strip().splitlines() == [
        f"error: output {str(tmp_path)!r} is a folder; pass a file path such as {str(tmp_path / 'train.tfrecord')!r}"]


@pytest.mark.large
def test_a_reader_that_stops_reading_ends_the_command_quietly(run_copy):
    # `python -m kerasflow.report RUN | head -0`: the pipe is closed before the command writes its table.
    process = subprocess.Popen([sys.executable, "-m", "kerasflow.report", run_copy / "run"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=ENV, cwd=ROOT)
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert (process.returncode, err.decode()) == (141, "")


def test_a_truncated_packed_file_is_one_line(run_copy, tmp_path):
    from kerasflow.data.datasets import build_index
    from kerasflow.data.tfrecord import pack_index

    recipe = yaml.safe_load((run_copy / "recipe.yaml").read_text())
    root = recipe["data"]["root"]
    for subset in ("train", "test"):
        pack_index(build_index("folder", root, subset=subset), tmp_path / f"{subset}.tfrecord")
    record = tmp_path / "train.tfrecord"
    record.write_bytes(record.read_bytes()[: record.stat().st_size // 2])
    recipe["data"]["packed"] = {"train": str(record), "test": str(tmp_path / "test.tfrecord")}
    recipe["runtime"]["output_dir"] = str(tmp_path / "packed-run")
    (tmp_path / "packed.yaml").write_text(yaml.safe_dump(recipe))
    error = last_error(command("kerasflow.fit", tmp_path / "packed.yaml"))
    assert error.startswith(f"error: TFRecord file {str(record)!r} has ") and "it is truncated or was replaced" in error


# ------------------------------------------------------------------------------------------------
# A full disk and a read-only folder (a small tmpfs in a private mount namespace)


FULL_DISK_SCRIPT = """
set -u
mount -t tmpfs -o size=3M tmpfs "$DISK" || exit 99
cd "$REPO"
"$PYTHON" -m kerasflow.fit "$RECIPE" > "$OUT/first.out" 2> "$OUT/first.err"; echo $? > "$OUT/first.status"
mount -o remount,size=40M "$DISK"
"$PYTHON" -m kerasflow.fit "$RECIPE" > "$OUT/second.out" 2> "$OUT/second.err"; echo $? > "$OUT/second.status"
mount -o remount,ro "$DISK"
"$PYTHON" -m kerasflow.evaluate "$DISK/run" > "$OUT/evaluate.out" \
2> "$OUT/evaluate.err"; echo $? > "$OUT/evaluate.status"
cp -r "$DISK/run" "$OUT/run-copy"
"""


@pytest.mark.large
def test_a_full_disk_keeps_the_last_checkpoint_and_a_rerun_resumes(tmp_path):
    recipe = write_recipe(tmp_path, make_dataset(tmp_path / "data"), epochs=6)
    disk = tmp_path / "disk"
    disk.mkdir()
    raw = yaml.safe_load(recipe.read_text())
    raw["runtime"]["output_dir"] = str(disk / "run")
    recipe.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    out.mkdir()
    env = {**ENV, "DISK": str(disk), "RECIPE": str(recipe), "OUT": str(out), "REPO": str(ROOT),
           "PYTHON": sys.executable}
    result = in_private_mount_namespace(FULL_DISK_SCRIPT, env)
    assert result.returncode == 0, result.stderr[-2000:]
    first_err = (out / "first.err").read_text()
    assert (out / "first.status").read_text().strip() == "2", first_err[-2000:]
    error = first_err.strip().splitlines()[-1]
    assert error.startswith(f"error: cannot write {disk / 'run'}") and "the disk is full (it needs about" in error
    assert "free some space and run the same command again" in error and "Traceback" not in first_err
    assert (out / "second.status").read_text().strip() == "0", (out / "second.err").read_text()[-2000:]
    assert "flow: resuming after epoch" in (out / "second.out").read_text()
    rows = (out / "run-copy" / "stages" / "flow" / "log.csv").read_text().strip().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == [str(epoch) for epoch in range(6)]
    evaluate_err = (out / "evaluate.err").read_text()
    assert (out / "evaluate.status").read_text().strip() == "2"
    assert evaluate_err.strip().splitlines()[-1].startswith(f"error: cannot write {disk / 'run' / 'evaluations'}")
    assert "Read-only file system" in evaluate_err and "Traceback" not in evaluate_err


class _ShapeThatIsInterrupted:
    """A shape whose iteration receives SIGTERM: NumPy's coercion swallows the KeyboardInterrupt."""

    def __len__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        return 2

    def __getitem__(self, index):
        return 3


def test_an_interrupt_swallowed_where_it_lands_still_ends_as_an_interrupt(capsys):
    @cli_entry(interrupted="run it again")
    def main(argv):
        return int(np.prod(_ShapeThatIsInterrupted()))  # TypeError: NumPy kept the shape as an object

    with pytest.raises(SystemExit) as exit:
        main([])
    assert exit.value.code == 130
    assert capsys.readouterr().err.strip().splitlines() == ["interrupted: run it again"]


def test_an_error_without_an_interrupt_is_not_called_one():
    @cli_entry
    def main(argv):
        raise TypeError("a bug")

    with pytest.raises(TypeError, match="a bug"):
        main([])


def test_a_library_value_error_is_reported_with_the_flag_that_passed_the_value(capsys):
    # The library words it as Keras does; the command names the option as the user typed it, or the
    # option alone when it was left out (received as None); a ValueError about an argument no option
    # set keeps its traceback: it is a bug, not a user's mistake.
    assert flag_message("`window` must be >= 4 (a shorter window repeats frames). Received: window=3",
                        {"window": "--window"}) == \
        "--window 3: --window must be >= 4 (a shorter window repeats frames)."
    assert flag_message("`arch` must be a preset: one of a, b. Received: arch='r99'", {"arch": "--arch"}) == \
        "--arch r99: --arch must be a preset: one of a, b."
    assert flag_message("`flow_dir` must be the flow folder. Received: flow_dir=None", {"flow_dir": "--flow-dir"}) == \
        "--flow-dir must be the flow folder."
    assert flag_message("`size` must be even. Received: size=33", {"window": "--window"}) == \
        "`size` must be even. Received: size=33"

    @cli_entry
    def main(argv):
        with value_errors_as_user_errors({"window": "--window"}):
            raise ValueError(f"`window` must be >= 4. Received: window={argv[0]}")

    with pytest.raises(SystemExit) as exit:
        main(["3"])
    assert exit.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: --window 3: --window must be >= 4."]
    with pytest.raises(ValueError, match="shapes do not match"):
        with value_errors_as_user_errors({"window": "--window"}):
            raise ValueError("shapes do not match")

"""``python -m kerasflow.fit`` end to end at tiny sizes: a full staged run, resume after kill -9,
recipe errors, MirroredStrategy on two logical CPUs, mixed precision."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from cli_testing import SIZE, run_fit, tiny_recipe

from kerasflow.fit_command import main as fit_main

ROOT = Path(__file__).resolve().parents[1]


def csv_rows(path):
    return len(Path(path).read_text().strip().splitlines()) - 1


@pytest.mark.large
def test_full_run_then_no_retraining(tmp_path):
    recipe = tiny_recipe(tmp_path, epochs=(2, 1, 2, 1))
    result = run_fit(recipe)
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert sorted(metrics["stages"]) == ["flow", "joint", "rgb_stage1", "rgb_stage2"]
    for stage in metrics["stages"].values():
        assert stage["num_videos"] == 4 and 0.0 <= stage["top1"] <= 1.0 and stage["seconds_per_video"] > 0
    assert metrics["final"]["stage"] == "joint"
    state = json.loads((run / "state.json").read_text())
    assert state["completed"] == ["rgb_stage1", "rgb_stage2", "flow", "joint"]
    for stage, epochs in (("rgb_stage1", 2), ("rgb_stage2", 1), ("flow", 2), ("joint", 1)):
        assert csv_rows(run / "stages" / stage / "log.csv") == epochs
        assert (run / "stages" / stage / "best.keras").is_file()
        assert len(list((run / "stages" / stage).glob("checkpoint-*.weights.h5"))) == 1
    assert ((run / "model.keras").is_file()
            and json.loads((run / "model.keras.json").read_text())["kind"] == "two_stream")
    assert "two-stream" in result.stdout and "flow stream only" in result.stdout
    assert not list(run.rglob("*.tmp*"))
    for picture in ("curves.png", "confusion_matrix.png"):
        assert (run / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (run / picture).stat().st_size > 5000

    mtime = (run / "model.keras").stat().st_mtime
    again = run_fit(recipe)
    assert "nothing to train" in again.stdout
    assert (run / "model.keras").stat().st_mtime == mtime


@pytest.mark.large
def test_resume_after_kill_9(tmp_path):
    recipe = tiny_recipe(tmp_path, epochs=(1, 1, 40, 1))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CI="1")
    process = subprocess.Popen([sys.executable, "-m", "kerasflow.fit", str(recipe)], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_path = tmp_path / "run" / "state.json"
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            if state_path.exists():
                current = json.loads(state_path.read_text()).get("current", {})
                if current.get("stage") == "flow" and current.get("epoch", 0) >= 2:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the run never reached epoch 2 of the flow stage")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    killed_at = json.loads(state_path.read_text())["current"]["epoch"]
    assert 2 <= killed_at < 40
    result = run_fit(recipe, "--set", "stages.flow.epochs=40")
    assert f"flow: resuming after epoch {killed_at} of 40" in result.stdout
    assert "rgb_stage1: training" not in result.stdout and "rgb_stage2: training" not in result.stdout
    run = tmp_path / "run"
    assert csv_rows(run / "stages" / "rgb_stage1" / "log.csv") == 1
    # Every flow epoch is logged exactly once: the killed run's finished epochs, then the rest. (A kill
    # inside an epoch loses only that epoch's CSV row, which the resumed run writes.)
    rows = [line.split(",")[0] for line in (run / "stages" / "flow" / "log.csv").read_text().splitlines()]
    assert [int(e) for e in rows if e != "epoch"] == list(range(40))
    assert json.loads((run / "state.json").read_text())["completed"][-1] == "joint"


def test_recipe_errors_are_one_line(tmp_path, capsys):
    recipe = tiny_recipe(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        fit_main([str(recipe), "--set", "data.rgb_frame=4"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {recipe}: unknown key data.rgb_frame; did you mean data.rgb_frames?"]
    with pytest.raises(SystemExit):
        fit_main([str(tmp_path / "missing.yaml")])
    assert "missing.yaml" in capsys.readouterr().err
    missing_root = tiny_recipe(tmp_path, kind="representation_flow", epochs=(1,))
    raw = yaml.safe_load(missing_root.read_text())
    raw["data"]["dataset"] = "hmdb51"
    del raw["data"]["synthetic"]
    missing_root.write_text(yaml.safe_dump(raw))
    with pytest.raises(SystemExit) as exit_info:
        fit_main([str(missing_root)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and str(tmp_path / "data") in err[0]


@pytest.mark.large
def test_a_run_folder_of_another_recipe_is_refused(tmp_path):
    recipe = tiny_recipe(tmp_path, kind="representation_flow", epochs=(1,))
    run_fit(recipe)
    result = run_fit(recipe, "--set", "model.flow.iterations=3", "--set", "stages.flow.epochs=4", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'run'} holds a run of another recipe: model.flow.iterations is 2 there and 3 now "
        "(and 1 more keys); set another runtime.output_dir, or delete that folder to start over")


MIRRORED = """
import sys, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from kerasflow.config import load_recipe
from kerasflow.training.trainer import train_recipe
train_recipe(load_recipe(sys.argv[1], ["runtime.distribution=mirrored"]))
"""


@pytest.mark.large
def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    recipe = tiny_recipe(tmp_path, kind="representation_flow", epochs=(2,))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CI="1")
    result = subprocess.run([sys.executable, "-c", MIRRORED, str(recipe)], capture_output=True, text=True,
                            env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 replica(s)" in result.stdout
    assert csv_rows(tmp_path / "run" / "stages" / "flow" / "log.csv") == 2


@pytest.mark.large
@pytest.mark.parametrize("precision, policy", [("true", "mixed_float16"), ("bfloat16", "mixed_bfloat16")])
def test_mixed_precision_run(tmp_path, precision, policy):
    import keras

    import kerasflow.layers  # noqa: F401  (registers the layers the model file names)
    from kerasflow.layers import RepresentationFlow
    from kerasflow.models.common import walk_layers

    recipe = tiny_recipe(tmp_path, kind="representation_flow", epochs=(1,))
    run_fit(recipe, "--set", f"runtime.mixed_precision={precision}")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["final"]["num_videos"] == 4
    log = (tmp_path / "run" / "stages" / "flow" / "log.csv").read_text().splitlines()
    assert "nan" not in log[-1].lower()
    model = keras.saving.load_model(tmp_path / "run" / "model.keras", compile=False)
    policies = {path: layer.dtype_policy.name for path, layer in walk_layers(model)}
    assert policies["flow_stream/stem/conv1"] == policy
    assert policies["flow_classifier"] == "float32"
    flow_layers = model.get_layer("flow_stream").get_layer("flow_block").flows
    assert flow_layers and all(isinstance(f, RepresentationFlow) and f.compute_dtype == "float32" for f in flow_layers)


@pytest.mark.large
def test_packed_tfrecords_feed_the_rgb_clips(tmp_path):
    from kerasflow.data.datasets import build_index
    from kerasflow.data.synthetic import make_synthetic_dataset
    from kerasflow.data.tfrecord import pack_index

    data = make_synthetic_dataset(tmp_path / "data", classes=2, videos_per_class=6, frames=6, size=32)
    for subset in ("train", "test"):
        pack_index(build_index("folder", data, subset=subset), tmp_path / f"{subset}.tfrecord")
    # Empty every video: only the packed clips can feed the run now (on_bad_video: fail would stop it).
    for video in data.rglob("*.avi"):
        video.write_bytes(b"")
    recipe = tiny_recipe(tmp_path, kind="representation_flow", epochs=(2,))
    raw = yaml.safe_load(recipe.read_text())
    raw["data"].update(dataset="folder", on_bad_video="fail",
                       packed={"train": str(tmp_path / "train.tfrecord"), "test": str(tmp_path / "test.tfrecord")})
    del raw["data"]["synthetic"]
    recipe.write_text(yaml.safe_dump(raw))
    run_fit(recipe)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["final"]["num_videos"] == 4
    assert csv_rows(tmp_path / "run" / "stages" / "flow" / "log.csv") == 2


@pytest.mark.large
def test_multi_worker_mirrored_reads_tf_config(tmp_path):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    recipe = tiny_recipe(tmp_path, kind="representation_flow", epochs=(1,), distribution="multi_worker_mirrored")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CI="1",
               TF_CONFIG=json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}"]},
                                     "task": {"type": "worker", "index": 0}}))
    result = subprocess.run([sys.executable, "-m", "kerasflow.fit", str(recipe)], capture_output=True, text=True,
                            env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["final"]["num_videos"] == 4
    env.pop("TF_CONFIG")
    missing = subprocess.run(
        [sys.executable, "-m", "kerasflow.fit", str(recipe), "--set", f"runtime.output_dir={tmp_path / 'run2'}"],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )
    assert missing.returncode == 2
    assert "needs the TF_CONFIG environment variable" in missing.stderr.strip().splitlines()[-1]


def test_a_batch_larger_than_the_training_set_is_refused(tmp_path, capsys):
    recipe = tiny_recipe(tmp_path, kind="representation_flow", epochs=(1,))
    with pytest.raises(SystemExit) as exit_info:
        fit_main([str(recipe), "--set", "data.batch_size=64", "--set", "data.validation=0.2"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: stage flow: batch size 64 is larger than the 6 training videos left after holding out 2 for "
        "validation (data.validation) (training drops incomplete batches); lower data.batch_size or the stage's "
        "batch_size"
    )
    # Between the training count before (8) and after (6) the validation hold-out: what trains counts.
    with pytest.raises(SystemExit) as exit_info:
        fit_main([str(recipe), "--set", "stages.flow.batch_size=7", "--set", "data.validation=0.2"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: stage flow: batch size 7 is larger than the 6 training videos left after holding out 2 for "
        "validation (data.validation) (training drops incomplete batches); lower data.batch_size or the stage's "
        "batch_size"
    )
    with pytest.raises(SystemExit) as exit_info:  # validation on the test subset: all 8 train
        fit_main([str(recipe), "--set", "data.batch_size=9", "--set", "data.validation=test"])
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        "error: stage flow: batch size 9 is larger than the 8 training videos (training drops")
    assert not (tmp_path / "run").exists()


@pytest.mark.large
def test_a_run_killed_after_its_last_stage_finishes_on_rerun(tmp_path):
    recipe = tiny_recipe(tmp_path, kind="representation_flow", epochs=(1,))
    run_fit(recipe)
    run = tmp_path / "run"
    # As if killed after the last stage was marked complete but before the final model and metrics.
    (run / "model.keras").unlink()
    metrics = json.loads((run / "metrics.json").read_text())
    del metrics["final"]
    (run / "metrics.json").write_text(json.dumps(metrics))
    result = run_fit(recipe)
    assert "flow: training" not in result.stdout and csv_rows(run / "stages" / "flow" / "log.csv") == 1
    assert (run / "model.keras").is_file() and "final" in json.loads((run / "metrics.json").read_text())


@pytest.mark.large
def test_resuming_with_other_classes_is_refused(tmp_path):
    recipe = tiny_recipe(tmp_path, kind="representation_flow", epochs=(1,))
    run_fit(recipe)
    (tmp_path / "run" / "metrics.json").unlink()  # unfinished again
    classes = json.loads((tmp_path / "run" / "classes.json").read_text())
    (tmp_path / "run" / "classes.json").write_text(json.dumps(classes + ["99_extra"]))
    result = run_fit(recipe, check=False)
    assert result.returncode == 2
    assert "removed ['99_extra']" in result.stderr.strip().splitlines()[-1]


@pytest.mark.large
def test_tvl1_two_stream_baseline_end_to_end(tmp_path):
    """Synthetic videos -> tools' TV-L1 extraction -> the optical-flow two-stream model trains on it."""
    from kerasflow.data.synthetic import make_synthetic_dataset
    from kerasflow.data.tvl1 import extract_all

    data = make_synthetic_dataset(tmp_path / "data", classes=2, videos_per_class=6, frames=8, size=32)
    flow_root = tmp_path / "flow"
    summary = extract_all(data, flow_root, workers=1)
    assert summary["extracted"] == 12 and not summary["failed"]
    recipe = tiny_recipe(tmp_path, kind="two_stream", epochs=(1, 1, 1, 1))
    raw = yaml.safe_load(recipe.read_text())
    raw["model"]["kind"] = "two_stream_optical_flow"
    raw["data"].update(dataset="folder", flow_root=str(flow_root), flow_stack=2, random_flip=True)
    del raw["data"]["synthetic"]
    recipe.write_text(yaml.safe_dump(raw))
    run_fit(recipe, "--set", "data.on_bad_video=fail")
    run = tmp_path / "run"
    metadata = json.loads((run / "model.keras.json").read_text())
    assert [(spec["name"], spec["frames"]) for spec in metadata["inputs"]] == [("rgb", 4), ("tvl1_stack", 2)]
    assert json.loads((run / "metrics.json").read_text())["final"]["num_videos"] == 4
    assert csv_rows(run / "stages" / "flow" / "log.csv") == 1


@pytest.mark.large
def test_the_demo_recipe_on_a_folder_of_ones_own_videos(tmp_path):
    """README: ``python -m kerasflow.fit demo --set data.dataset=folder --set data.root=DIR`` (here at a tiny size)."""
    from kerasflow.data.synthetic import DIRECTIONS, render_video, write_video

    videos = tmp_path / "my videos"
    for label, (name, direction) in enumerate(DIRECTIONS[:2]):
        (videos / name).mkdir(parents=True)
        for number in range(6):
            rng = np.random.default_rng([label, number])
            write_video(videos / name / f"clip {number}.avi", render_video(rng, direction, 6, SIZE))
    tiny = [f"data.frame_size={SIZE}", "data.rgb_frames=4", "data.flow_frames=4", "data.batch_size=4",
            "model.flow.iterations=2", "model.convlstm_units=4", "model.num_head_classes=10"]
    tiny += [f"stages.{stage}.epochs=1" for stage in ("rgb_stage1", "rgb_stage2", "flow", "joint")]
    command = [sys.executable, "-m", "kerasflow.fit", "demo", "--set", "data.dataset=folder",
               "--set", f"data.root={videos}"] + [item for override in tiny for item in ("--set", override)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CI="1")
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert ("recipe demo: data.synthetic is only read with data.dataset: synthetic; ignoring it "
            "(data.dataset is folder)") in result.stderr
    assert "Your input ran out of data" not in result.stdout + result.stderr
    metrics = json.loads((tmp_path / "runs" / "demo-folder" / "metrics.json").read_text())
    split = json.loads((tmp_path / "runs" / "demo-folder" / "split.json").read_text())
    assert sorted(split) == ["test", "train"] and len(split["train"]) + len(split["test"]) == 12
    counts = [sum(path.startswith(f"{name}/") for path in split["train"]) for name in ("left", "right")]
    fewest = ("left", "right")[counts.index(min(counts))]
    assert (f"data.validation auto: the test subset picks the best checkpoint, as the class {fewest} has {min(counts)} "
            "training clips (a 20% hold-out needs 50 per class); set data.validation to a fraction or a list "
            "file to hold out anyway") in result.stdout.splitlines()
    assert metrics["final"]["num_videos"] == len(split["test"])
    assert sorted(metrics["stages"]) == ["flow", "joint", "rgb_stage1", "rgb_stage2"]
    assert json.loads((tmp_path / "runs" / "demo-folder" / "classes.json").read_text()) == ["left", "right"]


@pytest.mark.large
def test_a_kind_runs_only_its_stages_of_the_recipe(tmp_path):
    recipe = tiny_recipe(tmp_path, kind="two_stream", epochs=(1, 1, 2, 1))
    result = run_fit(recipe, "--set", "model.kind=representation_flow")
    assert ("model.kind representation_flow trains flow; skipping the recipe's rgb_stage1, rgb_stage2, joint"
            in result.stdout)
    run = tmp_path / "run"
    assert json.loads((run / "state.json").read_text())["completed"] == ["flow"]
    assert not (run / "stages" / "rgb_stage1").exists() and csv_rows(run / "stages" / "flow" / "log.csv") == 2
    assert json.loads((run / "model.keras.json").read_text())["stage"] == "flow"

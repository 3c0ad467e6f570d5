"""What the CLI tests share: one tiny trained two-stream run, calling a command in-process, and the
check that a user error ends in exactly one ``error:`` line with exit status 2."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "recipes" / "demo.yaml"
# 64 px: the tiny ResNet (total stride 32) leaves a 2 x 2 map, so the CAM attention is a real map (at 32 px
# it is 1 x 1 and always 1).
CLASSES, FRAMES, SIZE = 3, 4, 64


def tiny_overrides(folder):
    """Demo-recipe overrides for a run that trains in about a minute on 2 cores: 3 classes x 6 synthetic
    videos, 4 frames of 64 px, 2 flow iterations, an 8-channel ConvLSTM, one epoch a stage."""
    return [
        f"data.root={folder}/data", f"runtime.output_dir={folder}/run",
        f"data.synthetic.classes={CLASSES}", "data.synthetic.videos_per_class=6", "data.synthetic.frames=8",
        f"data.synthetic.size={SIZE}", f"data.frame_size={SIZE}", f"data.rgb_frames={FRAMES}",
        f"data.flow_frames={FRAMES}", "data.batch_size=4", "model.flow.iterations=2", "model.convlstm_units=8",
    ] + [f"stages.{stage}.epochs=1" for stage in ("rgb_stage1", "rgb_stage2", "flow", "joint")]


def train_tiny_run(folder):
    """Train the tiny two-stream run under ``folder`` and return its run folder."""
    from kerasflow.config import load_recipe
    from kerasflow.training.trainer import train_recipe

    train_recipe(load_recipe(DEMO, tiny_overrides(folder)), log=lambda *_: None)
    return Path(folder) / "run"


def call(module, argv, capsys):
    """(exit status, stdout, stderr) of ``module.main(argv)``."""
    try:
        status = module.main(argv)
    except SystemExit as exit:
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_error_line(status, err, *fragments):
    assert status == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert err.rstrip().splitlines()[-1] == errors[0]
    for fragment in fragments:
        assert fragment in errors[0]


def tiny_recipe(folder, kind="two_stream", epochs=(1, 1, 1, 1), **runtime):
    """A two-class synthetic recipe that trains in seconds; returns its path."""
    names = {"two_stream": ["rgb_stage1", "rgb_stage2", "flow", "joint"], "representation_flow": ["flow"]}[kind]
    recipe = {
        "data": {
            "dataset": "synthetic",
            "root": f"{folder}/data",
            "synthetic": {"classes": 2, "videos_per_class": 6, "frames": 6, "size": SIZE},
            "frame_size": SIZE,
            "rgb_frames": 4,
            "flow_frames": 4,
            "batch_size": 4,
            "random_flip": False,
        },
        "model": {
            "kind": kind,
            "backbone": "tiny",
            "flow": {"num_layers": 2, "iterations": 2, "position": 1, "bottleneck": 4},
            "convlstm_units": 4,
            "num_head_classes": 10,
        },
        "stages": [
            {"name": name, "epochs": n, "optimizer": "adam", "learning_rate": 1e-3} for name, n in zip(names, epochs)
        ],
        "runtime": {"output_dir": f"{folder}/run", "seed": 0, **runtime},
    }
    path = Path(folder) / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def run_fit(recipe, *extra, check=True):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CI="1")
    result = subprocess.run(
        [sys.executable, "-m", "kerasflow.fit", str(recipe), *extra],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )
    if check and result.returncode != 0:
        raise AssertionError(result.stdout[-3000:] + result.stderr[-3000:])
    return result


def in_private_mount_namespace(script, env):
    """Run the shell ``script`` with a mount namespace of its own (unprivileged with user namespaces, or as
    root), where it can mount a small tmpfs (a full disk); it exits 99 when mounting fails."""
    for prefix in (["unshare", "--user", "--map-root-user", "--mount"], ["unshare", "--mount"]):
        if shutil.which("unshare") is None:
            break
        result = subprocess.run([*prefix, "sh", "-c", script], env=env, capture_output=True, text=True, timeout=900)
        if result.returncode != 99 and "Operation not permitted" not in result.stderr:
            return result
    pytest.skip("no way to mount a small filesystem here (unshare needs user namespaces or root)")

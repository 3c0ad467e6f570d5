"""What the CLI tests share: one tiny trained two-stream run, calling a command in-process, and the
check that a user error ends in exactly one ``error:`` line with exit status 2."""

from pathlib import Path

DEMO = Path(__file__).resolve().parents[1] / "recipes" / "demo.yaml"
CLASSES, FRAMES, SIZE = 3, 4, 32


def tiny_overrides(folder):
    """Demo-recipe overrides for a run that trains in about a minute on 2 cores: 3 classes x 6 synthetic
    videos, 4 frames of 32 px, 2 flow iterations, an 8-channel ConvLSTM, one epoch a stage."""
    return [
        f"data.root={folder}/data", f"runtime.output_dir={folder}/run",
        f"data.synthetic.classes={CLASSES}", "data.synthetic.videos_per_class=6", "data.synthetic.frames=8",
        "data.synthetic.size=32", f"data.frame_size={SIZE}", f"data.rgb_frames={FRAMES}",
        f"data.flow_frames={FRAMES}", "data.batch_size=4", "model.flow.iterations=2", "model.convlstm_units=8",
    ] + [f"stages.{stage}.epochs=1" for stage in ("rgb_stage1", "rgb_stage2", "flow", "joint")]


def train_tiny_run(folder):
    """Train the tiny two-stream run under ``folder`` and return its run folder."""
    from kerasflow.config import load_recipe
    from kerasflow.training.staged import train_recipe

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

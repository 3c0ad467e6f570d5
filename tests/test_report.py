"""``python -m kerasflow.report``: finished runs' test accuracy with its mean and standard deviation,
checked against numbers computed here from the runs' own ``metrics.json``; refusals in one line."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from cli_testing import DEMO, ROOT, assert_one_error_line, call, tiny_overrides

import kerasflow
import kerasflow.report as report_module
from kerasflow.config import load_recipe
from kerasflow.training.trainer import train_recipe

# A single cheap stage: the representation-flow stream without flow layers, one epoch.
CHEAP = ["model.kind=representation_flow", "model.flow.num_layers=0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Finished tiny runs: ``seed0..2`` on the same 3 synthetic classes, ``two_classes`` (2 classes), and
    ``folder`` (the same videos read as a folder dataset)."""
    folder = tmp_path_factory.mktemp("report")
    options = {f"seed{seed}": [f"runtime.seed={seed}"] for seed in range(3)}
    options["two_classes"] = [f"data.root={folder}/data2", "data.synthetic.classes=2"]
    options["folder"] = ["data.dataset=folder"]
    for name, extra in options.items():
        recipe = load_recipe(DEMO, tiny_overrides(folder) + CHEAP + extra + [f"runtime.output_dir={folder / name}"])
        train_recipe(recipe, log=lambda *_: None)
    return {name: folder / name for name in options}


def final_metrics(run):
    return json.loads((run / "metrics.json").read_text())["final"]


def test_report_of_three_runs_is_their_mean_and_deviation(runs, tmp_path, capsys):
    paths = [str(runs[f"seed{seed}"]) for seed in range(3)]
    finals = [final_metrics(runs[f"seed{seed}"]) for seed in range(3)]
    top1, top5 = np.array([f["top1"] for f in finals]), np.array([f["top5"] for f in finals])
    classes = list(finals[0]["per_class_accuracy"])
    per_class = np.array([[f["per_class_accuracy"][name] for name in classes] for f in finals])

    status, out, _ = call(report_module, paths + ["--json"], capsys)
    assert status == 0
    report = json.loads(out)
    assert [(run["run"], run["dataset"], run["split"], run["kind"]) for run in report["runs"]] == [
        (path, "synthetic", 1, "representation_flow") for path in paths]
    assert report["mean"] == pytest.approx({"top1": top1.mean(), "top5": top5.mean()}, abs=1e-12)
    assert report["std"] == pytest.approx({"top1": top1.std(ddof=1), "top5": top5.std(ddof=1)}, abs=1e-12)
    assert list(report["per_class_accuracy"]) == classes
    for index, name in enumerate(classes):
        assert report["per_class_accuracy"][name] == pytest.approx(
            {"mean": per_class[:, index].mean(), "std": per_class[:, index].std(ddof=1), "runs": 3}, abs=1e-12)
    assert kerasflow.report_runs(paths) == report

    markdown = tmp_path / "tables" / "synthetic.md"
    status, out, _ = call(report_module, paths + ["--markdown", str(markdown)], capsys)
    assert status == 0 and markdown.read_text() == out
    lines = out.splitlines()
    assert lines[0].startswith("Test accuracy of 3 runs on synthetic (splits 1, 1, 1)")
    assert f"| mean | synthetic | 1, 1, 1 | | | {3 * finals[0]['num_videos']} | {100 * top1.mean():.2f} " \
           f"| {100 * top5.mean():.2f} |" in lines
    assert f"| standard deviation | | | | | | {100 * top1.std(ddof=1):.2f} | {100 * top5.std(ddof=1):.2f} |" in lines
    assert (f"| {classes[0]} | {100 * per_class[:, 0].mean():.2f} | {100 * per_class[:, 0].std(ddof=1):.2f} | 3 |"
            in lines)
    assert f"| {paths[1]} | synthetic | 1 | representation_flow | flow | {finals[1]['num_videos']} " \
           f"| {100 * top1[1]:.2f} | {100 * top5[1]:.2f} |" in lines


def test_runs_of_other_datasets_or_classes_are_refused_unless_mixed(runs, capsys):
    first, folder, two_classes = str(runs["seed0"]), str(runs["folder"]), str(runs["two_classes"])
    status, _, err = call(report_module, [first, folder], capsys)
    assert_one_error_line(status, err, f"{folder} is a run on folder and {first} one on synthetic", "mixed report")
    status, _, err = call(report_module, [first, two_classes], capsys)
    assert_one_error_line(status, err, f"{two_classes} was trained on other classes (2) than {first} (3)",
                          "mixed report")

    status, out, _ = call(report_module, [first, two_classes, "--mixed", "--json"], capsys)
    assert status == 0
    mixed = json.loads(out)
    finals = [final_metrics(runs["seed0"]), final_metrics(runs["two_classes"])]
    assert mixed["mean"]["top1"] == pytest.approx(np.mean([f["top1"] for f in finals]), abs=1e-12)
    only_three = [name for name in finals[0]["per_class_accuracy"] if name not in finals[1]["per_class_accuracy"]]
    for name, values in mixed["per_class_accuracy"].items():
        held = [f["per_class_accuracy"][name] for f in finals if name in f["per_class_accuracy"]]
        assert values["runs"] == len(held) and values["mean"] == pytest.approx(np.mean(held), abs=1e-12)
        assert values["std"] is None if len(held) == 1 else values["std"] == pytest.approx(np.std(held, ddof=1))
    assert only_three and all(mixed["per_class_accuracy"][name]["runs"] == 1 for name in only_three)


def test_unfinished_repeated_or_missing_runs_are_one_line(runs, tmp_path, capsys):
    first = str(runs["seed0"])
    status, _, err = call(report_module, [first, first], capsys)
    assert_one_error_line(status, err, f"{first} is given twice")
    status, _, err = call(report_module, [str(tmp_path)], capsys)
    assert_one_error_line(status, err, f"{tmp_path} is not a run folder")
    status, _, err = call(report_module, [first, str(tmp_path / "missing")], capsys)
    assert_one_error_line(status, err, f"{tmp_path / 'missing'} does not exist")
    unfinished = tmp_path / "unfinished"
    shutil.copytree(runs["seed0"], unfinished)
    (unfinished / "metrics.json").unlink()
    status, _, err = call(report_module, [first, str(unfinished)], capsys)
    assert_one_error_line(status, err, f"{unfinished} has no final test metrics yet; finish its training with "
                                       f"python -m kerasflow.fit {unfinished / 'recipe.yaml'}")


def test_the_command_reads_only_files_and_starts_no_tensorflow(runs):
    paths = [str(runs[f"seed{seed}"]) for seed in range(3)]
    code = ("import sys; from kerasflow.report import main\ntry:\n    main(sys.argv[1:])\n"
            "finally:\n    print('tensorflow imported:', 'tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, *paths, "--json"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    report, imported = result.stdout.splitlines()
    assert json.loads(report) == kerasflow.report_runs(paths) and imported == "tensorflow imported: False"


def test_markdown_never_replaces_a_file_that_is_not_a_report(runs, tmp_path, capsys):
    # `report RUN --markdown RUN/metrics.json` would have made the run unreadable.
    run = tmp_path / "run"
    shutil.copytree(runs["seed0"], run)
    metrics = (run / "metrics.json").read_bytes()
    notes = tmp_path / "notes.md"
    notes.write_bytes(b"my notes\n")
    status, _, err = call(report_module, [str(run), "--markdown", str(run / "metrics.json")], capsys)
    assert_one_error_line(status, err, f"--markdown {run / 'metrics.json'} is a file of the run folder {run}",
                          "never replaced")
    status, _, err = call(report_module, [str(run), "--markdown", str(run / "metrics.json"), "--overwrite"], capsys)
    assert_one_error_line(status, err, "is a file of the run folder")
    status, _, err = call(report_module, [str(run), "--markdown", str(notes)], capsys)
    assert_one_error_line(status, err, f"--markdown {notes} exists and is not a report python -m kerasflow.report "
                                       "wrote; it is not replaced: pass another path, or --overwrite")
    assert (run / "metrics.json").read_bytes() == metrics and notes.read_bytes() == b"my notes\n"

    # An earlier report is replaced without asking; another file with --overwrite.
    report = tmp_path / "report.md"
    for target, extra in ((report, []), (report, []), (notes, ["--overwrite"])):
        status, out, err = call(report_module, [str(run), "--markdown", str(target), *extra], capsys)
        assert status == 0, err
        assert target.read_text() == out
    inside = run / "report.md"  # a new file inside a run folder is no file of the run's
    status, out, _ = call(report_module, [str(run), "--markdown", str(inside)], capsys)
    assert status == 0 and inside.read_text() == out


@pytest.mark.parametrize("final, fragment", [
    ([], 'holds a JSON list, not an object'),
    ({"final": {"top1": "high"}}, '"final"."top1" is "high", not a number from 0 to 1'),
    ({"final": {"per_class_accuracy": None}}, '"final"."per_class_accuracy" is null, not an object of numbers'),
    ({"final": {"top1": float("nan")}}, '"final"."top1" is NaN, not a number from 0 to 1'),
    ({"final": {"top5": 1.5}}, '"final"."top5" is 1.5, not a number from 0 to 1'),
    ({"final": 3}, '"final" is 3, not an object'),
    ({"final": "done"}, '"final" is "done", not an object'),
])
def test_metrics_of_the_wrong_shape_name_the_file(runs, tmp_path, capsys, final, fragment):
    run = tmp_path / "run"
    shutil.copytree(runs["seed0"], run)
    metrics = json.loads((run / "metrics.json").read_text())
    edited = final if isinstance(final, list) else {**metrics, "final": (
        {**metrics["final"], **final["final"]} if isinstance(final["final"], dict) else final["final"])}
    (run / "metrics.json").write_text(json.dumps(edited))
    status, _, err = call(report_module, [str(run)], capsys)
    assert_one_error_line(status, err, f"{run / 'metrics.json'} is not the metrics kerasflow.fit writes: {fragment}",
                          "copy it again or train it again")


def test_a_recipe_of_the_wrong_shape_names_the_file(runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs["seed0"], run)
    (run / "recipe.yaml").write_text("just a line of text\n")
    status, _, err = call(report_module, [str(run)], capsys)
    assert_one_error_line(status, err, f"{run / 'recipe.yaml'} lacks its sections; it was not written by kerasflow.fit")


def test_a_stage_folder_is_refused_and_one_path_is_a_run(runs, capsys):
    run = runs["seed0"]
    stage = run / "stages" / "flow"
    status, _, err = call(report_module, [str(stage)], capsys)
    assert_one_error_line(status, err, f"{stage} lies inside the run folder {run}", f"pass {run}")
    status, _, err = call(report_module, [str(stage / "best.keras")], capsys)
    assert_one_error_line(status, err, "lies inside the run folder")
    # report_runs("runs/base"): one path, not a list of its characters.
    assert kerasflow.report_runs(str(run)) == kerasflow.report_runs([str(run)])
    assert kerasflow.report_runs(run)["runs"][0]["top1"] == final_metrics(run)["top1"]
    assert kerasflow.report_runs(str(run / "model.keras"))["mean"]["top1"] == final_metrics(run)["top1"]

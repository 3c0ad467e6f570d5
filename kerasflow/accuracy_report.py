"""The test accuracy of finished runs (a dataset's splits, say), its mean and sample deviation, per run and per class.

``report_runs`` reads each run folder's final metrics (``metrics.json``) and recipe and checks that the
runs can be averaged; ``format_markdown`` writes the report as the tables ``python -m kerasflow.report``
prints. The paper's Table 3 reports EGTEA Gaze+ and HMDB51 as the mean over their three splits.
"""

import json
import math
import os
import statistics
from pathlib import Path

import yaml

from kerasflow.errors import UserError
from kerasflow.model_io import MODEL_FILE
from kerasflow.training.run_folder import METRICS_FILE, RECIPE_FILE, STATE_FILE, run_folder_of

REPORT_TITLE = "Test accuracy of "  # how every markdown report begins: a file that does is one of ours


def read_run(path):
    """What the report shows of one finished run (a run folder, or its ``model.keras``)."""
    if not Path(path).exists():
        raise UserError(f"{path} does not exist; pass the runtime.output_dir of finished runs")
    folder = run_folder_of(path)
    if folder is None:
        raise UserError(f"{path} is not a run folder (it has no {RECIPE_FILE} and {STATE_FILE}); pass the "
                        "runtime.output_dir of finished runs")
    if Path(path).resolve() not in (folder, folder / MODEL_FILE):
        raise UserError(f"{path} lies inside the run folder {folder}: the report gives a whole run's final test "
                        f"metrics; pass {folder} (python -m kerasflow.evaluate measures a stage's best.keras)")
    metrics_file = folder / METRICS_FILE
    metrics = _read(metrics_file, json.loads, folder) if metrics_file.is_file() else {}
    if not isinstance(metrics, dict):
        raise _damaged(metrics_file, f"holds a JSON {type(metrics).__name__}, not an object", folder)
    final = metrics.get("final")
    if final is None:
        raise UserError(f"{folder} has no final test metrics yet; finish its training with "
                        f"python -m kerasflow.fit {folder / RECIPE_FILE}")
    _check_final(final, metrics_file, folder)
    recipe = _read(folder / RECIPE_FILE, yaml.safe_load, folder)
    try:
        return {"run": str(path), "dataset": recipe["data"]["dataset"], "split": recipe["data"]["split"],
                "kind": recipe["model"]["kind"], "stage": final["stage"], "num_videos": final["num_videos"],
                "top1": final["top1"], "top5": final["top5"], "per_class_accuracy": final["per_class_accuracy"]}
    except (KeyError, TypeError) as error:
        missing = f"the key {error}" if isinstance(error, KeyError) else "its sections"
        raise UserError(f"{folder / RECIPE_FILE} lacks {missing}; it was not written by kerasflow.fit, or was "
                        "edited: copy the run again or train it again") from None


def _is_fraction(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 1


def _check_final(final, metrics_file, folder):
    """Raise the one-line ``UserError`` naming ``metrics_file`` when its ``final`` entry is not what fit writes."""
    if not isinstance(final, dict):
        raise _damaged(metrics_file, f'"final" is {json.dumps(final)[:40]}, not an object', folder)
    checks = {"stage": lambda value: isinstance(value, str),
              "num_videos": lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= 0,
              "top1": _is_fraction, "top5": _is_fraction,
              "per_class_accuracy": lambda value: isinstance(value, dict) and all(map(_is_fraction, value.values()))}
    expected = {"stage": "a stage name", "num_videos": "a count", "top1": "a number from 0 to 1",
                "top5": "a number from 0 to 1", "per_class_accuracy": "an object of numbers from 0 to 1"}
    for key, check in checks.items():
        if key not in final:
            raise _damaged(metrics_file, f'"final" lacks "{key}"', folder)
        if not check(final[key]):
            raise _damaged(metrics_file, f'"final"."{key}" is {json.dumps(final[key])[:40]}, not {expected[key]}',
                           folder)


def _damaged(file, what, folder):
    return UserError(f"{file} is not the metrics kerasflow.fit writes: {what}; {folder} is damaged or was edited: "
                     "copy it again or train it again")


def _read(file, parse, folder):
    try:
        return parse(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise UserError(f"{file} cannot be read ({type(error).__name__}); {folder} is damaged: copy it "
                        "again or train it again") from None


def report_runs(paths, mixed=False):
    """The report of finished runs ``paths``: ``{"runs": [...], "mean", "std", "per_class_accuracy"}``.

    ``mean`` and ``std`` hold ``top1`` and ``top5`` over the runs (``std``: the sample standard deviation,
    None for one run); ``per_class_accuracy`` maps each class to its ``mean``, ``std`` and number of
    ``runs``. Raises ``UserError`` for a run that is not finished, a run given twice, or (unless
    ``mixed``) runs of different datasets or class lists. ``paths`` may be one path (a string).
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    folders = [run_folder_of(path) for path in paths]
    repeated = next((path for path, folder in zip(paths, folders) if folder and folders.count(folder) > 1), None)
    if repeated is not None:
        raise UserError(f"{repeated} is given twice; pass each run once (a repeated run would weigh twice)")
    runs = [read_run(path) for path in paths]
    if not runs:
        raise UserError("no run folders given; pass the runs to report")
    if not mixed:
        _check_comparable(runs)
    classes = {}
    for run in runs:
        for name, accuracy in run["per_class_accuracy"].items():
            classes.setdefault(name, []).append(accuracy)
    return {
        "runs": runs,
        "mean": {key: statistics.fmean(run[key] for run in runs) for key in ("top1", "top5")},
        "std": {key: _std([run[key] for run in runs]) for key in ("top1", "top5")},
        "per_class_accuracy": {name: {"mean": statistics.fmean(values), "std": _std(values), "runs": len(values)}
                               for name, values in classes.items()},
    }


def _std(values):
    """The sample standard deviation, or None for a single value."""
    return statistics.stdev(values) if len(values) > 1 else None


def _check_comparable(runs):
    first = runs[0]
    for run in runs[1:]:
        if run["dataset"] != first["dataset"]:
            raise UserError(f"{run['run']} is a run on {run['dataset']} and {first['run']} one on {first['dataset']}; "
                            "report the runs of one dataset, or ask for a mixed report to average them anyway")
        if list(run["per_class_accuracy"]) != list(first["per_class_accuracy"]):
            raise UserError(f"{run['run']} was trained on other classes ({len(run['per_class_accuracy'])}) than "
                            f"{first['run']} ({len(first['per_class_accuracy'])}); report runs of one class list, "
                            "or ask for a mixed report to average them anyway")


def _percent(value):
    return "-" if value is None else f"{100 * value:.2f}"


def format_markdown(report):
    """The report as markdown: a table of the runs with their mean and standard deviation, then one of
    the classes (accuracies in percent)."""
    runs = report["runs"]
    datasets = ", ".join(dict.fromkeys(run["dataset"] for run in runs))
    splits = ", ".join(str(run["split"]) for run in runs)
    videos = sum(run["num_videos"] for run in runs)
    lines = [
        f"{REPORT_TITLE}{len(runs)} run{'s' if len(runs) > 1 else ''} on {datasets} "
        f"(split{'s' if len(runs) > 1 else ''} "
        f"{splits}); mean and sample standard deviation over the runs, in percent",
        "",
        "| run | dataset | split | model | stage | test videos | top-1 | top-5 |",
        "|---|---|---|---|---|---:|---:|---:|",
        *(f"| {run['run']} | {run['dataset']} | {run['split']} | {run['kind']} | {run['stage']} | {run['num_videos']} "
          f"| {_percent(run['top1'])} | {_percent(run['top5'])} |" for run in runs),
        f"| mean | {datasets} | {splits} | | | {videos} | {_percent(report['mean']['top1'])} "
        f"| {_percent(report['mean']['top5'])} |",
        f"| standard deviation | | | | | | {_percent(report['std']['top1'])} | {_percent(report['std']['top5'])} |",
        "",
        "| class | mean accuracy | standard deviation | runs |",
        "|---|---:|---:|---:|",
        *(f"| {name} | {_percent(values['mean'])} | {_percent(values['std'])} | {values['runs']} |"
          for name, values in report["per_class_accuracy"].items()),
    ]
    return "\n".join(lines)

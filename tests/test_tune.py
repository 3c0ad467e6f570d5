"""``python -m kerasflow.tune``: the trials grid and one-at-a-time searches plan, bad factors refused in one
line before any training, a one-at-a-time search killed with SIGKILL and resumed without retraining its
finished trial, its tables, plot and ``best.yaml`` (which ``kerasflow.fit`` takes for the trial's own run), a
Bayesian search's first trial, and a grid shared by a chief and two workers on loopback, each trial trained
once, its run folders taken by ``kerasflow.evaluate`` and the export."""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cli_testing import ROOT, assert_one_error_line, call, run_fit, tiny_recipe
from test_multi_worker import free_ports

from kerasflow import tune
from kerasflow.config import load_recipe, recipe_to_dict
from kerasflow.errors import UserError
from kerasflow.tune import parse_factor_options
from kerasflow.tuning.space import SearchSpace

GRID = {"model.flow.num_layers": [1, 2], "model.flow.iterations": [1, 2]}
ONE_AT_A_TIME = {"model.flow.num_layers": [0, 1], "model.flow.iterations": [1, 2]}
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CI="1", TF_NUM_INTEROP_THREADS="1", TF_NUM_INTRAOP_THREADS="1")


def search_recipe(folder, mode, factors):
    """The tiny two-class recipe (1 flow layer, 2 iterations) with a ``search:`` section training its flow
    stage alone."""
    path = tiny_recipe(folder)
    recipe = yaml.safe_load(path.read_text())
    recipe["model"]["flow"]["num_layers"] = 1
    recipe["runtime"]["output_dir"] = f"{folder}/search"
    recipe["search"] = {"mode": mode, "stages": ["flow"], "factors": factors}
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def start_tune(recipe, log, env=ENV):
    with open(log, "w") as output:
        return subprocess.Popen([sys.executable, "-m", "kerasflow.tune", str(recipe)], cwd=ROOT, env=env,
                                stdout=output, stderr=subprocess.STDOUT, start_new_session=True)


def finish(process, log, seconds=300):
    try:
        status = process.wait(timeout=seconds)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert status == 0, Path(log).read_text()[-3000:]
    return Path(log).read_text()


def started_trials(output):
    """The ids of the trials a process announced it was training (``trial 3: ...; training flow``)."""
    return [match.group(1) for match in re.finditer(r"^trial (\d+): .*; training ", output, re.MULTILINE)]


def read_csv(folder):
    with open(Path(folder) / "results.csv", newline="") as table:
        return list(csv.DictReader(table))


def markdown_rows(text, factor):
    """``{value: [top-1, validation top-1, parameters, s/video, trial]}`` of the table of ``factor``."""
    section = text.split(f"## {factor}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| ")][1:]
    return {cells[0].strip(): [cell.strip() for cell in cells[1:]] for cells in rows}


def test_grid_and_one_at_a_time_plans(tmp_path):
    recipe = search_recipe(tmp_path, "grid", {"model.flow.num_layers": [0, 1], "model.flow.iterations": [1, 2]})
    # Without a flow layer the iterations make no difference: one trial, at the recipe's iterations (2).
    assert SearchSpace(recipe).planned_trials() == [
        {"model.flow.num_layers": 0, "model.flow.iterations": 2},
        {"model.flow.num_layers": 1, "model.flow.iterations": 1},
        {"model.flow.num_layers": 1, "model.flow.iterations": 2},
    ]
    # One factor at a time, the other at the recipe's value (2 layers, 2 iterations), each model once.
    space = SearchSpace(recipe, ["search.mode=one_at_a_time", "model.flow.num_layers=2"],
                        {"model.flow.num_layers": [0, 1, 2], "model.flow.iterations": [1, 2]})
    assert space.planned_trials() == [
        {"model.flow.num_layers": 0, "model.flow.iterations": 2},
        {"model.flow.num_layers": 1, "model.flow.iterations": 2},
        {"model.flow.num_layers": 2, "model.flow.iterations": 2},
        {"model.flow.num_layers": 2, "model.flow.iterations": 1},
    ]
    # Each trial trains the representation-flow stream alone, in a folder of its own.
    trial = space.trial_recipe({"model.flow.num_layers": 1, "model.flow.iterations": 1}, tmp_path / "t")
    assert (trial.model.kind, trial.model.flow.num_layers, trial.model.flow.iterations) == ("representation_flow", 1, 1)
    assert trial.search is None and trial.runtime.output_dir == str(tmp_path / "t")
    assert parse_factor_options(["model.backbone=resnet18,resnet34", "stages.flow.learning_rate={min: 0.001, max: 0.1}",
                                 "data.flow_stride=[1, 2]"]) == {
        "model.backbone": ["resnet18", "resnet34"], "stages.flow.learning_rate": {"min": 0.001, "max": 0.1},
        "data.flow_stride": [1, 2]}


def test_the_shipped_ablation_recipes_plan_the_papers_studies():
    # Tables 5-7: three one-factor studies sharing the recipe's own trial (2 layers, 20 iterations, ResNet-34).
    space = SearchSpace("hmdb51-ablation")
    assert space.base_values == {"model.flow.num_layers": 2, "model.flow.iterations": 20,
                                 "model.flow_backbone": "resnet34"}
    trials = space.planned_trials()
    assert len(trials) == 10
    for key, values in [("model.flow.num_layers", [0, 1, 2, 3]), ("model.flow.iterations", [10, 20, 30, 50]),
                        ("model.flow_backbone", ["resnet18", "resnet34", "resnet50", "resnet101"])]:
        others = {k: v for k, v in space.base_values.items() if k != key}
        assert sorted(trial[key] for trial in trials if all(trial[k] == v for k, v in others.items())) == sorted(values)
    recipe = space.trial_recipe({**space.base_values, "model.flow_backbone": "resnet50"})
    assert (recipe.model.kind, recipe.model.flow_backbone) == ("representation_flow", "resnet50")
    assert recipe.model.stream_weights("flow") == ("resnet50", "imagenet")
    assert [trial["model.flow.num_layers"] for trial in SearchSpace("demo-ablation").planned_trials()] == [0, 1, 2, 3]


def test_weights_paths_name_their_backbone():
    recipe = load_recipe("demo", ["model.weights=w/{backbone}.weights.h5", "model.flow_backbone=resnet18",
                                  "model.flow_weights=w/{flow_backbone}-{backbone}.h5"])
    assert (recipe.model.weights, recipe.model.flow_weights) == (os.path.abspath("w/tiny.weights.h5"),
                                                                 os.path.abspath("w/resnet18-tiny.h5"))
    with pytest.raises(UserError, match=r"model.weights = '.*w/\{foo\}.h5' is not allowed: expected a path whose "
                                        r"\{...\} fields are \{backbone\}, \{flow_backbone\}$"):
        load_recipe("demo", ["model.weights=w/{foo}.h5"])


def test_a_bayesian_search_samples_a_learning_rate_range(tmp_path):
    from kerasflow.tuning.engine import RecipeHyperModel, RecipeTuner, make_oracle

    factors = {"stages.flow.learning_rate": {"min": 1e-4, "max": 1e-2, "sampling": "log"},
               "model.flow.num_layers": [0, 1]}
    space = SearchSpace(search_recipe(tmp_path, "bayesian", factors))
    hypermodel = RecipeHyperModel(space)
    tuner = RecipeTuner(space, hypermodel, make_oracle(space, hypermodel, progress=None), announce=None)
    trial = tuner.oracle.create_trial(tuner.tuner_id)  # no trial has a result yet: a random point of the space
    values = hypermodel.decode(trial.hyperparameters.values)
    assert 1e-4 <= values["stages.flow.learning_rate"] <= 1e-2 and values["model.flow.num_layers"] in (0, 1)
    recipe = hypermodel.build(trial.hyperparameters)
    flow = next(stage for stage in recipe.stages if stage.name == "flow")
    assert flow.learning_rate == values["stages.flow.learning_rate"] != 1e-3
    assert (recipe.model.kind, recipe.model.flow.num_layers) == ("representation_flow", values["model.flow.num_layers"])


@pytest.mark.parametrize("factor, fragments", [
    ("model.flow.num_layer=0,1", ["model.flow.num_layer=0", "unknown key model.flow.num_layer",
                                  "did you mean model.flow.num_layers?"]),
    ("model.backbone=tiny,resnet19", ["model.backbone=resnet19", "'resnet19' is not allowed"]),
    ("model.flow.num_layers=1,5", ["model.flow.num_layers=5", "expected an integer >= 0 and <= 3"]),
    ("model.flow.iterations=", ["search.factors.model.flow.iterations = [] is not allowed", "non-empty list"]),
    ("stages.flow.learning_rate={min: 0.001, max: 0.1}", ["needs search.mode: bayesian"]),
])
def test_a_bad_factor_is_one_line_before_any_training(tmp_path, capsys, factor, fragments):
    recipe = search_recipe(tmp_path, "grid", {"model.flow.num_layers": [0, 1]})
    status, out, err = call(tune, [str(recipe), "--factor", factor], capsys)
    assert_one_error_line(status, err, *fragments)
    assert out == "" and not (tmp_path / "search").exists() and not (tmp_path / "data").exists()


def test_a_trial_value_that_fit_would_refuse_is_one_line_before_training(tmp_path, capsys):
    recipe = search_recipe(tmp_path, "grid", {"model.flow.num_layers": [0, 1]})
    status, out, err = call(tune, [str(recipe), "--factor", "stages.flow.batch_size=4,500",
                                   "--set", "data.validation=0.2"], capsys)
    assert_one_error_line(status, err)
    assert err.strip().splitlines()[-1] == (
        "error: the trial stages.flow.batch_size=500: stage flow: batch size 500 is larger than the 6 training "
        "videos left after holding out 2 for validation (data.validation) (training drops incomplete batches); "
        "lower data.batch_size or the stage's batch_size")
    assert out.splitlines() == [f"{recipe}: a grid search of 2 trials at most "
                                "(trials that make the same model run once)"]
    assert not (tmp_path / "search").exists()


@pytest.mark.large
def test_a_trial_that_fails_is_recorded_and_the_search_goes_on(tmp_path):
    not_a_run = tmp_path / "not-a-run"
    not_a_run.mkdir()
    recipe = search_recipe(tmp_path, "grid", {"model.init_from": [str(not_a_run), None]})
    log = tmp_path / "tune.log"
    output = finish(start_tune(recipe, log), log)
    reason = (f"model.init_from: {not_a_run} is not a run folder (it has no model.keras); pass a run folder or a "
              ".keras model file")
    assert f"trial 1 of 2 done (trial 0: model.init_from={not_a_run}): failed: {reason} in " in output
    assert "trial 2 of 2 done (trial 1: model.init_from=null): validation top-1 " in output
    rows = read_csv(tmp_path / "search")
    assert [(row["trial"], row["status"], row["error"]) for row in rows] == [
        ("0", "FAILED", reason), ("1", "COMPLETED", "")]
    assert rows[1]["top1"] != "" and rows[0]["top1"] == ""
    assert f"Trial 0 (model.init_from={not_a_run}) failed: {reason}" in (tmp_path / "search" / "results.md").read_text()
    assert f"error: {reason}" in (tmp_path / "search" / "trials" / "0" / "train.log").read_text()
    again = finish(start_tune(recipe, log), log)  # a re-run does not repeat the failed trial
    assert "the search is finished (2 trials)" in again and started_trials(again) == []


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """A one-at-a-time search (flow layers 0, 1 and iterations 1, 2 around 1 layer, 2 iterations: 3
    trials) killed with SIGKILL once its first trial has finished, run again to its end, then once more."""
    folder = tmp_path_factory.mktemp("one_at_a_time")
    recipe = search_recipe(folder, "one_at_a_time", ONE_AT_A_TIME)
    search = folder / "search"
    first = start_tune(recipe, folder / "first.log")
    deadline = time.time() + 240
    while not (search / "trials" / "1").exists():
        assert first.poll() is None and time.time() < deadline, (folder / "first.log").read_text()[-3000:]
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    finished = (search / "trials" / "0" / "metrics.json").stat().st_mtime_ns
    second = finish(start_tune(recipe, folder / "second.log"), folder / "second.log")
    third = finish(start_tune(recipe, folder / "third.log"), folder / "third.log")
    return {"recipe": recipe, "search": search, "logs": [(folder / "first.log").read_text(), second, third],
            "finished": finished}


def test_a_killed_search_resumes_without_retraining(killed_and_resumed):
    search, (first, second, third) = killed_and_resumed["search"], killed_and_resumed["logs"]
    assert "trial 1 of 3 done (trial 0: model.flow.num_layers=0, model.flow.iterations=2): validation top-1" in first
    assert "trial 2 of 3 done" not in first
    # The second run starts with the interrupted trial and trains the last one; trial 0 is kept as it was.
    assert "resuming the search, 1 of 3 trials finished" in second
    assert started_trials(second) == ["1", "2"]
    assert "trial 1: model.flow.num_layers=1, model.flow.iterations=2; training flow" in second
    assert "trial 2: model.flow.num_layers=1, model.flow.iterations=1; training flow" in second
    assert "trial 3 of 3 done (trial 2: model.flow.num_layers=1, model.flow.iterations=1)" in second
    assert "search complete" in second
    assert (search / "trials" / "0" / "metrics.json").stat().st_mtime_ns == killed_and_resumed["finished"]
    assert (search / "trials" / "0" / "train.log").read_text().count("flow: training ") == 1
    # A finished search writes its report again and trains nothing.
    assert "the search is finished (3 trials); writing its report again" in third
    assert started_trials(third) == [] and "## model.flow.num_layers" in third
    assert sorted(path.name for path in (search / "trials").iterdir()) == ["0", "1", "2"]
    assert not list(search.glob("**/*.tmp*"))


def test_one_at_a_time_tables_plot_and_best_recipe(killed_and_resumed):
    search = killed_and_resumed["search"]
    rows = read_csv(search)
    assert list(rows[0]) == ["trial", "model.flow.num_layers", "model.flow.iterations", "top1", "val_top1",
                             "trainable_parameters", "seconds_per_video", "status", "run_folder", "error"]
    assert [(row["trial"], row["model.flow.num_layers"], row["model.flow.iterations"], row["status"])
            for row in rows] == [("0", "0", "2", "COMPLETED"), ("1", "1", "2", "COMPLETED"),
                                 ("2", "1", "1", "COMPLETED")]
    for row in rows:
        metrics = json.loads((search / row["run_folder"] / "metrics.json").read_text())
        assert float(row["top1"]) == pytest.approx(metrics["final"]["top1"], abs=1e-6)
        assert float(row["seconds_per_video"]) > 0
    # One flow layer adds its bottleneck convolutions; the iterations add no parameter.
    parameters = [int(row["trainable_parameters"]) for row in rows]
    assert parameters[0] < parameters[1] == parameters[2]

    text = (search / "results.md").read_text()
    layers, iterations = markdown_rows(text, "model.flow.num_layers"), markdown_rows(text, "model.flow.iterations")
    assert {value: row[-1] for value, row in layers.items()} == {"0": "0", "1": "1"}
    assert {value: row[-1] for value, row in iterations.items()} == {"1": "2", "2": "1"}
    assert layers["1"] == iterations["2"]  # the recipe's own trial is in both tables
    assert layers["0"][0] == f"{100 * float(rows[0]['top1']):.2f}"
    assert layers["0"][2] == f"{parameters[0]:,}"
    assert "Other factors at the recipe's values: model.flow.iterations=2." in text
    assert (search / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    best = max(rows, key=lambda row: (float(row["val_top1"]), -int(row["trial"])))
    assert f"Best trial: {best['trial']} " in text
    best_recipe = load_recipe(search / "best.yaml")
    trial_recipe = load_recipe(search / "trials" / best["trial"] / "recipe.yaml")
    expected = recipe_to_dict(trial_recipe)
    expected["runtime"]["output_dir"] = str(search / "best")
    assert recipe_to_dict(best_recipe) == expected
    # kerasflow.fit accepts best.yaml, and pointed at (a copy of) the trial's run folder finds its own
    # finished run there (it refuses a folder of any other recipe) with the trial's test top-1.
    copy = shutil.copytree(search / best["run_folder"], search.parent / "best-trial")
    again = run_fit(search / "best.yaml", "--set", f"runtime.output_dir={copy}")
    assert "nothing to train" in again.stdout
    assert f"(test top-1 {float(best['top1']):.3f})" in again.stdout


@pytest.mark.large
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="loopback test written for Linux")
def test_a_chief_and_two_workers_finish_a_grid_each_trial_once(tmp_path, capsys):
    recipe = search_recipe(tmp_path, "grid", GRID)
    (port,) = free_ports(1)
    logs = {name: tmp_path / f"{name}.log" for name in ("chief", "worker0", "worker1")}
    processes = {}
    for index, name in enumerate(logs):
        env = dict(ENV, KERASTUNER_TUNER_ID=name, KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=str(port))
        processes[name] = start_tune(recipe, logs[name], env)
        if name == "chief":
            time.sleep(1)  # workers may start first too (they wait for the chief); this is just quicker
    try:
        outputs = {name: finish(process, logs[name], seconds=420) for name, process in processes.items()}
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    started = {name: started_trials(output) for name, output in outputs.items()}
    assert sorted(started["worker0"] + started["worker1"]) == ["0", "1", "2", "3"]
    assert started["worker0"] and started["worker1"] and started["chief"] == []
    assert [f"trial {k} of 4 done" in outputs["chief"] for k in range(1, 5)] == [True] * 4
    search = tmp_path / "search"
    rows = read_csv(search)
    assert sorted((row["model.flow.num_layers"], row["model.flow.iterations"]) for row in rows) == [
        ("1", "1"), ("1", "2"), ("2", "1"), ("2", "2")]
    assert {row["status"] for row in rows} == {"COMPLETED"}
    text = (search / "results.md").read_text()
    assert "grid search, 4 trials (4 completed)" in text
    assert set(markdown_rows(text, "model.flow.num_layers")) == {"1", "2"}
    assert set(markdown_rows(text, "model.flow.iterations")) == {"1", "2"}

    # A trial is an ordinary run folder: kerasflow.evaluate gives its recorded test top-1 again, and
    # the export takes it.
    from kerasflow import evaluate
    from kerasflow.export import __main__ as export_command

    trial = search / rows[0]["run_folder"]
    status, out, err = call(evaluate, [str(trial), "--json", "--output", str(tmp_path / "evaluation")], capsys)
    assert status == 0, err
    assert json.loads(out)["top1"] == pytest.approx(float(rows[0]["top1"]), abs=1e-6)
    status, out, err = call(export_command, [str(trial), "--format", "keras", "--out", str(tmp_path / "export"),
                                             "--check-clips", "2"], capsys)
    assert status == 0, err
    assert (tmp_path / "export" / "model.keras").is_file()


def test_a_huge_grid_is_refused_before_planning_unless_max_trials(tmp_path, capsys):
    recipe = search_recipe(tmp_path, "grid", {"model.flow.num_layers": [0, 1]})
    factors = ["--factor", "stages.flow.learning_rate=" + ",".join(f"{n}e-4" for n in range(1, 41)),
               "--factor", "model.flow.iterations=" + ",".join(str(n) for n in range(1, 41)),
               "--factor", "model.flow.num_layers=0,1,2,3",
               "--factor", "data.batch_size=" + ",".join(str(n) for n in range(2, 33))]
    start = time.monotonic()
    status, out, err = call(tune, [str(recipe), *factors], capsys)
    assert_one_error_line(status, err)
    assert err.strip() == (
        f"error: --max-trials (default 500) must be at least the 198400 trials {recipe}'s grid search plans (40 x "
        "40 x 4 x 31 values of stages.flow.learning_rate, model.flow.iterations, model.flow.num_layers, "
        "data.batch_size) to plan them all; or give the factors fewer values.")
    assert time.monotonic() - start < 60 and out == "" and not (tmp_path / "search").exists()
    status, _, err = call(tune, [str(recipe), *factors[:4], "--max-trials", "1000"], capsys)
    assert_one_error_line(status, err, "--max-trials 1000: --max-trials must be at least the 1600 trials",
                          "(40 x 40 values")

    space = SearchSpace(recipe, factors={"model.flow.num_layers": [0, 1], "model.flow.iterations": [1, 2, 3]})
    assert space.plan_size() == 6 and space.check_plan_size(6) == 6
    with pytest.raises(ValueError, match=r"^`max_trials` must be at least the 6 trials .* Received: max_trials=5$"):
        space.check_plan_size(5)
    (tmp_path / "b").mkdir()
    bayesian = search_recipe(tmp_path / "b", "bayesian", {"model.flow.num_layers": [0, 1]})
    status, _, err = call(tune, [str(bayesian), "--max-trials", "3"], capsys)
    assert_one_error_line(status, err, "--max-trials 3: --max-trials applies to grid and one_at_a_time searches",
                          "runs the recipe's search.max_trials trials.")
    with pytest.raises(ValueError, match=r"^`max_trials` applies to grid .* Received: max_trials=3$"):
        SearchSpace(bayesian).check_plan_size(3)

"""``run_search``: a whole search over a recipe, from its checks to its report, resumable.

The search folder (the recipe's ``runtime.output_dir``)::

    search.yaml          the search's recipe (a re-run must match it)
    oracle/              keras-tuner's state (oracle.json, trial_<id>/trial.json, tuner.json)
    trials/<id>/         each trial's run folder, as python -m kerasflow.fit writes it, and its train.log
    results.csv, results.md, results.png, best.yaml     the report (``kerasflow.tuning.report``)

Run again, the same command resumes: finished trials are kept, an interrupted one resumes its run
folder, and a finished search writes its report again without training.
"""

import os
from pathlib import Path

from kerasflow.atomic import ensure_writable_folder
from kerasflow.config import save_recipe
from kerasflow.errors import UserError
from kerasflow.training.folder_lock import describe_contents, folder_contents, folder_lock
from kerasflow.training.run_folder import SEARCH_FILE, check_same_recipe, is_run_folder
from kerasflow.tuning.engine import (
    COMPLETED,
    FAILED,
    TRAIN_LOG,
    RecipeHyperModel,
    RecipeTuner,
    failure_reason,
    make_oracle,
    trial_folder,
    tuner_role,
)
from kerasflow.tuning.report import METRICS, RESULTS_CSV, TrialResult, write_report
from kerasflow.tuning.space import describe


def duration(seconds) -> str:
    """``41 s``, ``6 min``, ``2 h 05 min``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60:02d} min"


def _claim_folder(space):
    """Record a new search in its folder, or check that the folder's search is this one."""
    saved = Path(space.folder) / SEARCH_FILE
    if saved.exists():
        check_same_recipe(saved, space.recipe, "a search")
    else:
        names = folder_contents(space.folder)
        if is_run_folder(space.folder):
            raise UserError(f"{space.folder} is a run folder of python -m kerasflow.fit; a search cannot go there: "
                            "set runtime.output_dir to a new or empty folder")
        if names:
            raise UserError(f"{space.folder} is not empty and holds no search (it holds {describe_contents(names)}); "
                            "nothing there is replaced: set runtime.output_dir to a new or empty folder")
        ensure_writable_folder(space.folder)
        save_recipe(space.recipe, saved)


def run_search(space, log=print):
    """Run the search of ``space`` (a ``SearchSpace``) to its end and write its report.

    Prints a line as each trial starts, in the process that trains it, and a progress line as each
    ends (trial k of n, its values, its result, the time left), in the process that holds the oracle.
    A worker of a distributed search trains the trials its chief hands out and returns None; otherwise
    returns ``{"results": [TrialResult], "best": TrialResult or None, "files": [report paths]}``.
    """
    role = tuner_role()
    if role == "worker":  # the workers of a distributed search share its folder with their chief
        return _run_search(space, role, log)
    check_trials(space)
    with folder_lock(space.folder, "python -m kerasflow.tune"):
        _claim_folder(space)
        return _run_search(space, role, log)


def _run_search(space, role, log):
    hypermodel = RecipeHyperModel(space)

    def announce(trial, recipe):
        log(f"trial {trial.trial_id}: {describe(hypermodel.decode(trial.hyperparameters.values))}; training "
            f"{', '.join(recipe.kind.stages)} (log: {trial_folder(space.folder, trial.trial_id) / TRAIN_LOG})")

    def progress(trial, finished, total, seconds, left):
        if trial.status == COMPLETED:
            result = (f"validation top-1 {trial.metrics.get_last_value('val_top1'):.3f}, "
                      f"test top-1 {trial.metrics.get_last_value('top1'):.3f}")
        else:
            result = f"{trial.status.lower()}: {failure_reason(trial.message)}"
        remaining = "search complete" if finished == total else f"about {duration(left)} left"
        log(f"trial {finished} of {total} done (trial {trial.trial_id}: "
            f"{describe(hypermodel.decode(trial.hyperparameters.values))}): {result} in {duration(seconds)}; "
            f"{remaining}")

    tuner = RecipeTuner(space, hypermodel, make_oracle(space, hypermodel, progress), announce)
    if role == "worker":
        log(f"worker {tuner.tuner_id}: training the trials of the chief at {_chief_address()}")
        tuner.search()
        log(f"worker {tuner.tuner_id}: the chief has no trials left")
        return None
    oracle, stopped = tuner.oracle, None
    if oracle.finished():
        log(f"{space.folder}: the search is finished ({len(oracle.end_order)} trials); writing its report again")
    else:
        if oracle.trials:
            log(f"{space.folder}: resuming the search, {len(oracle.end_order)} of {oracle.max_trials} trials finished")
        if role == "chief":
            if space.recipe.data.synthetic is not None:
                from kerasflow.data.feeds import recipe_indexes

                recipe_indexes(space.recipe.data)  # made once, here, not by several workers at once
            log(f"chief: serving the search's trials at {_chief_address()} until its workers have run them all")
        stopped = _search(tuner, oracle)
    results = [TrialResult(trial.trial_id, hypermodel.decode(trial.hyperparameters.values), trial.status,
                           {name: trial.metrics.get_last_value(name) for name in METRICS}
                           if trial.status == COMPLETED else {},
                           failure_reason(trial.message) if trial.status == FAILED else "")
               for trial in sorted(oracle.trials.values(), key=lambda trial: trial.trial_id)]
    best = max((result for result in results if result.completed), key=lambda result: result.metrics["val_top1"],
               default=None)
    files = write_report(space, results, best)
    if stopped is not None:
        raise stopped
    return {"results": results, "best": best, "files": files}


def _search(tuner, oracle):
    """``tuner.search()``; its stop after too many failed trials in a row is returned as a one-line
    ``UserError`` (raised once the report says which trials failed), else None."""
    try:
        tuner.search()
    except RuntimeError:
        ended = [oracle.trials[trial_id] for trial_id in oracle.end_order][-oracle.max_consecutive_failed_trials:]
        if not ended or any(trial.status != FAILED for trial in ended):
            raise
        log_file = trial_folder(tuner.space.folder, ended[-1].trial_id) / TRAIN_LOG
        return UserError(f"{len(ended)} trials failed in a row, the last with: {failure_reason(ended[-1].message)} "
                         f"(see {log_file}; the others are in {RESULTS_CSV})")
    return None


def check_trials(space):
    """Refuse, before anything is written or trained, a trial recipe that ``fit`` would refuse at its start:
    a model.weights file it cannot read, a stage batch larger than the videos that train (after the
    validation hold-out). Checks the planned trials of a grid or one-at-a-time search, and each factor's
    values (a range's ends) alone for a Bayesian one."""
    from kerasflow.data.feeds import recipe_indexes, validation_split
    from kerasflow.training.trainer import check_batch_sizes, check_weights_file

    if space.search.mode == "bayesian":
        trials = [{factor.key: value} for factor in space.factors
                  for value in (factor.choices or (factor.bounds["min"], factor.bounds["max"]))]
    else:
        trials = space.planned_trials()
    counts = {}
    for values in trials:
        recipe = space.trial_recipe(values)
        data = repr(recipe.data)
        if data not in counts:
            train, test = recipe_indexes(recipe.data)
            train, validation = validation_split(recipe.data, train, test)
            counts[data] = len(train.items), 0 if validation is test else len(validation.items)
        try:
            check_weights_file(recipe)
            check_batch_sizes(recipe, *counts[data])
        except UserError as error:
            raise UserError(f"the trial {describe(values)}: {error}") from None


def _chief_address():
    return f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"

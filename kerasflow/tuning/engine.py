"""keras-tuner over recipes: a hypermodel whose hyperparameters are a search's factors, the oracles
that pick trials, and a tuner that trains each trial as an ordinary run folder.

A search folder (the recipe's ``runtime.output_dir``) holds keras-tuner's state in ``oracle/``
(``oracle.json``, ``trial_<id>/trial.json``, written atomically) and each trial's run folder in
``trials/<id>/`` (``train.log`` beside what ``python -m kerasflow.fit`` writes). An interrupted trial
is picked up again by the next run, whose ``train_recipe`` resumes its run folder.

Several processes share one search through keras-tuner's chief and workers: with
``KERASTUNER_ORACLE_IP``/``KERASTUNER_ORACLE_PORT`` set, the process whose ``KERASTUNER_TUNER_ID``
contains ``chief`` holds the oracle and serves it over gRPC; the others train the trials it hands out.
"""

import contextlib
import dataclasses
import io
import math
import os
import sys
import time
import traceback
from pathlib import Path

import keras_tuner as kt
import yaml

from kerasflow.atomic import write_json
from kerasflow.errors import UserError
from kerasflow.training.run_folder import TRIAL_LOG
from kerasflow.tuning.space import yaml_text

OBJECTIVE = kt.Objective("val_top1", direction="max")
ORACLE_FOLDER = "oracle"
TRIALS_FOLDER = "trials"
TRAIN_LOG = TRIAL_LOG
RUNNING = kt.engine.trial.TrialStatus.RUNNING
COMPLETED = kt.engine.trial.TrialStatus.COMPLETED
FAILED = kt.engine.trial.TrialStatus.FAILED


class TrialFailed(UserError, kt.errors.FailedTrialError):
    """A user error inside a trial (a value that fails only when it trains, a bad video): keras-tuner
    records the trial as failed, with this line, and the search goes on (it stops after
    ``max_consecutive_failed_trials`` failures in a row)."""


def failure_reason(message) -> str:
    """The one line of a failed trial's keras-tuner message (a traceback ending in ``Type: line``)."""
    lines = (message or "").strip().splitlines()
    last = lines[-1] if lines else "no message"
    kind, separator, text = last.partition(": ")
    return text if separator and kind.replace(".", "").replace("_", "").isalnum() and "." in kind else last


def trial_folder(search_folder, trial_id) -> Path:
    """The run folder of trial ``trial_id``."""
    return Path(search_folder) / TRIALS_FOLDER / trial_id


def tuner_role() -> str:
    """``"single"``, or ``"chief"`` / ``"worker"`` of a distributed search (keras-tuner's environment)."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "single"
    missing = [name for name in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID") if not os.environ.get(name)]
    if missing:
        raise UserError(f"KERASTUNER_ORACLE_IP is set but {' and '.join(missing)} not; a distributed search needs "
                        "all three (KERASTUNER_TUNER_ID=chief on the chief, e.g. worker0, worker1 on the others)")
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


def _single_type(values) -> bool:
    """Whether a keras-tuner ``Choice`` can hold ``values`` as they are: all integers, all numbers or
    all strings."""
    if any(isinstance(value, bool) for value in values):
        return False
    return (all(isinstance(value, int) for value in values) or all(isinstance(value, str) for value in values)
            or all(isinstance(value, (int, float)) for value in values))


class RecipeHyperModel(kt.HyperModel):
    """A search space as keras-tuner's hypermodel: one hyperparameter per factor, named by its recipe
    key; ``build`` returns the trial's ``Recipe`` (what the tuner trains), not a Keras model.

    A listed factor is a ``Choice``, of its values as they are or, when they are not all integers,
    all numbers or all strings, of their YAML text; a range is an ``Int`` or a ``Float``.
    """

    def __init__(self, space):
        super().__init__(name="recipe")
        self.space = space
        self.choices = {}
        for factor in space.factors:
            if factor.choices is not None:
                # One-at-a-time trials hold the recipe's value of the factors they do not vary.
                extra = ((factor.base,) if space.search.mode == "one_at_a_time" and factor.base not in factor.choices
                         else ())
                self.choices[factor.key] = factor.choices + extra
        self.as_text = {key: not _single_type(values) for key, values in self.choices.items()}

    def encode(self, values: dict) -> dict:
        """Hyperparameter values of factor ``values`` ``{key: value}``."""
        return {key: self._encode(key, value) for key, value in values.items()}

    def _encode(self, key, value):
        if self.as_text.get(key):
            return yaml_text(value)
        return (float(value) if isinstance(value, int) and any(isinstance(v, float) for v in self.choices[key])
                else value)

    def decode(self, hp_values: dict) -> dict:
        """``{key: value}`` of every factor from hyperparameter values."""
        return {factor.key: yaml.safe_load(hp_values[factor.key]) if self.as_text.get(factor.key)
                else hp_values[factor.key] for factor in self.space.factors}

    def declare_hyperparameters(self, hp):
        for factor in self.space.factors:
            if factor.bounds is None:
                values = [self._encode(factor.key, value) for value in self.choices[factor.key]]
                hp.Choice(factor.key, values, ordered=False if self.as_text[factor.key] else None)
            elif all(isinstance(factor.bounds[end], int) for end in ("min", "max")):
                hp.Int(factor.key, factor.bounds["min"], factor.bounds["max"],
                       sampling=factor.bounds.get("sampling", "linear"))
            else:
                hp.Float(factor.key, float(factor.bounds["min"]), float(factor.bounds["max"]),
                         sampling=factor.bounds.get("sampling", "linear"))

    def build(self, hp):
        return self.space.trial_recipe(self.decode(hp.values))


class _SearchOracle:
    """What a search's oracles add to keras-tuner's: state files written atomically (a ``kill -9``
    leaves the old file or the new one), and a call of ``progress(trial, finished, total, seconds,
    seconds_left)`` per finished trial, in the process that holds the oracle (the only one, or the
    chief). ``seconds_left`` is None until a trial of this session has finished."""

    def __init__(self, *args, progress, **kwargs):
        super().__init__(*args, **kwargs)
        self.verbose = 0  # the progress lines replace keras-tuner's tables
        self.progress = progress
        self.session_start = time.monotonic()
        self.started = {}
        self.finished_in_session = 0

    def save(self):
        write_json(self._get_oracle_fname(), self.get_state())

    def _save_trial(self, trial):
        write_json(os.path.join(self._get_trial_dir(trial.trial_id), "trial.json"), trial.get_state())

    @kt.synchronized
    def create_trial(self, tuner_id):
        trial = super().create_trial(tuner_id)
        if trial.status == RUNNING:
            self.started.setdefault(trial.trial_id, time.monotonic())
        return trial

    @kt.synchronized
    def end_trial(self, trial):
        super().end_trial(trial)
        now = time.monotonic()
        self.finished_in_session += 1
        finished, total = len(self.end_order), self.max_trials
        left = (now - self.session_start) / self.finished_in_session * (total - finished)
        seconds = now - self.started.pop(trial.trial_id, now)
        self.progress(self.trials[trial.trial_id], finished, total, seconds, left)

    def finished(self) -> bool:
        """Whether every trial the search will run has ended (nothing left to train)."""
        return self.remaining_trials() == 0 and all(trial.status != RUNNING for trial in self.trials.values())


class PlannedOracle(_SearchOracle, kt.Oracle):
    """Runs trials fixed in advance (grid and one-at-a-time searches), in their order, each once;
    ``planned`` are their hyperparameter values."""

    def __init__(self, planned, **kwargs):
        super().__init__(objective=OBJECTIVE, max_trials=len(planned), **kwargs)
        self.planned = planned

    def populate_space(self, trial_id):
        for values in self.planned:
            if not self._duplicate(values):
                return {"status": RUNNING, "values": dict(values)}
        return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}


class BayesianOracle(_SearchOracle, kt.oracles.BayesianOptimizationOracle):
    """keras-tuner's Bayesian optimisation (a Gaussian process over the factors) for ``max_trials`` trials."""


def make_oracle(space, hypermodel, progress):
    """The oracle of the search's mode."""
    if space.search.mode != "bayesian":
        return PlannedOracle([hypermodel.encode(values) for values in space.planned_trials()], progress=progress)
    try:
        import scipy  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        raise UserError("search.mode bayesian needs scipy and scikit-learn: pip install 'kerasflow[bayesian]' "
                        "(or use mode grid or one_at_a_time)") from None
    # keras-tuner takes seed 0 for "pick one at random": shift it to keep runtime.seed 0 reproducible.
    return BayesianOracle(objective=OBJECTIVE, max_trials=space.search.max_trials, seed=space.recipe.runtime.seed + 1,
                          progress=progress)


class RecipeTuner(kt.engine.base_tuner.BaseTuner):
    """Trains each trial's recipe with ``train_recipe`` in its run folder, its output in ``train.log``
    there; ``announce(trial, recipe)`` is called as a trial starts. Returns keras-tuner the trial's
    ``val_top1`` (the objective: the best validation accuracy of the model its last stage trains),
    ``top1`` and ``seconds_per_video`` (the run's final model on the test subset) and
    ``trainable_parameters``."""

    def __init__(self, space, hypermodel, oracle, announce):
        self.space = space
        self.announce = announce
        with contextlib.redirect_stdout(io.StringIO()):  # keras-tuner's "Reloading Tuner from ..."
            super().__init__(oracle, hypermodel, directory=space.folder, project_name=ORACLE_FOLDER)

    def _get_tuner_fname(self):
        # A single process and a chief share the file, so a search resumes in either mode.
        name = os.environ["KERASTUNER_TUNER_ID"] if self._is_worker() else "tuner"
        return os.path.join(self.project_dir, f"{name}.json")

    def save(self):
        if not self._is_worker():
            self.oracle.save()
        write_json(self._get_tuner_fname(), self.get_state())

    def run_trial(self, trial, *args, **kwargs):
        import keras

        from kerasflow.data.pipeline import bad_videos_as_user_errors
        from kerasflow.training.trainer import train_recipe

        recipe = self.hypermodel.build(trial.hyperparameters)
        folder = trial_folder(self.space.folder, trial.trial_id)
        recipe = dataclasses.replace(recipe, runtime=dataclasses.replace(recipe.runtime, output_dir=str(folder)))
        self.announce(trial, recipe)
        folder.mkdir(parents=True, exist_ok=True)
        keras.backend.clear_session()  # the models of earlier trials hold no memory
        with _output_into(folder / TRAIN_LOG):
            try:
                with bad_videos_as_user_errors():
                    metrics = train_recipe(recipe, log=print)
            except UserError as error:
                print(f"error: {error}")
                raise TrialFailed(f"{error}") from None
            except Exception:
                traceback.print_exc()
                raise
        return trial_metrics(recipe, metrics)


@contextlib.contextmanager
def _output_into(path):
    """Append whatever the process writes to its standard output and error (Keras, warnings,
    TensorFlow's own logs) to the file ``path`` while the block runs."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {stream: os.dup(stream) for stream in (1, 2)}
    try:
        with open(path, "ab") as log:
            for stream in saved:
                os.dup2(log.fileno(), stream)
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for stream, copy in saved.items():
            os.dup2(copy, stream)
            os.close(copy)


def trial_metrics(recipe, metrics) -> dict:
    """The numbers a trial reports, from its run's ``metrics.json`` and final model."""
    from kerasflow.model_io import MODEL_FILE, load_model_file

    model = load_model_file(Path(recipe.runtime.output_dir) / MODEL_FILE)
    last = metrics["stages"][recipe.trained_stages[-1].name]
    return {
        "val_top1": float(last["best_checkpoint"]["val_accuracy"]),
        "top1": float(metrics["final"]["top1"]),
        "seconds_per_video": float(metrics["final"]["seconds_per_video"]),
        "trainable_parameters": float(sum(math.prod(weight.shape) for weight in model.trainable_weights)),
    }

"""A run folder (``runtime.output_dir``): its files, its state, and the checks that keep a resume honest.

::

    recipe.yaml              the resolved recipe (a re-run must match it)
    state.json               finished stages, and the current stage's last finished epoch
    classes.json             class names, in label order
    split.json               the clips of the train and test subsets (paths below data.root)
    stages/<stage>/          checkpoint-<epoch>.weights.h5 (model + optimizer, atomic), best.keras (+ .json),
                             final.weights.h5, log.csv
    tensorboard/<stage>/     TensorBoard logs
    model.keras (+ .json)    the final model: the last stage's best by validation accuracy, with its ModelInfo
    metrics.json             test metrics per stage and of the final model
    curves.png               loss and accuracy per epoch of every finished stage
    confusion_matrix.png     the final model's test confusion matrix
    .kerasflow.lock          the pid of the process training there, locked while it runs (``folder_lock``)

A run starts only in a new or empty folder; ``python -m kerasflow.fit RUN_FOLDER`` resumes one where it is.
"""

import dataclasses
import json
import logging
import shutil
from pathlib import Path

from kerasflow.atomic import remove_stale_temporaries, write_json
from kerasflow.config import load_recipe, recipe_to_dict, save_recipe
from kerasflow.config.validation import show_value
from kerasflow.data.indexes import relative_clip_path
from kerasflow.errors import UserError
from kerasflow.model_io import MODEL_FILE, ModelInfo
from kerasflow.training.folder_lock import describe_contents, folder_contents

logger = logging.getLogger("kerasflow")

RECIPE_FILE = "recipe.yaml"
SPLIT_FILE = "split.json"
RUN_SEARCH_DEPTH = 4  # a model file lies in its run folder or in stages/<stage>/ below it
STATE_FILE = "state.json"
CLASSES_FILE = "classes.json"
METRICS_FILE = "metrics.json"
SEARCH_FILE = "search.yaml"  # a search folder's (kerasflow.tuning.search)
TRIAL_LOG = "train.log"  # what a tune trial prints, beside its run (kerasflow.tuning.engine)


def run_folder_of(path):
    """The run folder ``path`` (a run folder, or a model file in one: ``model.keras`` or
    ``stages/<stage>/best.keras``) belongs to, or None."""
    for folder in [Path(path).resolve(), *Path(path).resolve().parents][:RUN_SEARCH_DEPTH]:
        if (folder / RECIPE_FILE).is_file() and (folder / STATE_FILE).is_file():
            return folder
    return None


def is_run_folder(folder):
    """Whether ``folder`` holds a run ``python -m kerasflow.fit`` started (its recipe and what it wrote next)."""
    folder = Path(folder)
    return (folder / RECIPE_FILE).is_file() and any((folder / name).is_file()
                                                     for name in (STATE_FILE, SPLIT_FILE, CLASSES_FILE))


def fit_recipe(source, overrides=()):
    """The recipe ``python -m kerasflow.fit SOURCE`` trains. A run folder, or the ``recipe.yaml`` in one,
    resumes that folder where it is now (its ``runtime.output_dir`` is the folder, wherever it was
    started); anything else is a recipe file or an installed recipe's name (``load_recipe``)."""
    path = Path(source)
    folder = path if path.is_dir() else path.parent if path.name == RECIPE_FILE else None
    if folder is not None and is_run_folder(folder):
        return load_recipe(folder / RECIPE_FILE, [f"runtime.output_dir={folder.resolve()}", *overrides])
    if path.is_dir():
        raise UserError(f"{path} is a folder but not a run folder (it has no {RECIPE_FILE} and {STATE_FILE}); pass "
                        "a recipe file, an installed recipe's name, or a run folder to resume")
    return load_recipe(source, overrides)


def _check_unused(folder):
    """Refuse to start a run in a folder that holds anything but our own hidden files (a lock, temporary
    files) or a tune trial's log: a user's files, another tool's, or a search of ``python -m kerasflow.tune``."""
    names = folder_contents(folder, ignored=(TRIAL_LOG,))
    if not names:
        return
    if SEARCH_FILE in names:
        raise UserError(f"{folder} is a search folder of python -m kerasflow.tune (it holds {SEARCH_FILE}); a run "
                        "cannot start there: set runtime.output_dir to a new or empty folder")
    raise UserError(f"{folder} is not empty and holds no kerasflow run (it holds {describe_contents(names)}); "
                    "nothing there is replaced: set runtime.output_dir to a new or empty folder")


def model_info(recipe, class_names, stage, val_accuracy=None):
    """The ``ModelInfo`` of the model ``stage`` trains in a run of ``recipe``."""
    from kerasflow.models.kinds import STAGE_MODEL

    return ModelInfo(kind=recipe.model.kind, stage=stage, model=STAGE_MODEL[stage],
                     inputs=tuple(recipe.inputs_for(stage)), class_names=tuple(class_names),
                     val_accuracy=val_accuracy)


class RunFolder:
    """A run folder and its ``state.json``: which stages are finished, where the current one stands.

    Opening one checks that an existing run was made with the same recipe (wherever the folder now
    is) and clears the temporary files a killed process left; nothing is written before ``start``, so
    a run that fails its checks leaves no folder behind.
    """

    def __init__(self, recipe):
        self.recipe = recipe
        self.folder = Path(recipe.runtime.output_dir)
        self.state_path = self.folder / STATE_FILE
        self.state = {"completed": [], "current": {}}
        self.resumed = (self.folder / RECIPE_FILE).exists()
        if not self.resumed:
            _check_unused(self.folder)
        if self.resumed:
            self._check_recipe()
            remove_stale_temporaries(self.folder)
            self.state = self._read_state()

    def private_copy(self, folder):
        """The ``RunFolder`` of a copy of this one in ``folder``, with what a resume reads (state, recipe,
        classes, split, metrics, the stages' weights and best models; not logs, pictures or the final
        model): a multi-worker run's other workers train from one, in step with the chief."""
        if self.folder.is_dir():
            skipped = shutil.ignore_patterns("tensorboard", "*.png", "log.csv", f"{MODEL_FILE}*")
            shutil.copytree(self.folder, folder, ignore=skipped, dirs_exist_ok=True)
        runtime = dataclasses.replace(self.recipe.runtime, output_dir=str(folder))
        return RunFolder(dataclasses.replace(self.recipe, runtime=runtime))

    def _check_recipe(self):
        check_same_recipe(self.folder / RECIPE_FILE, self.recipe)

    def _read_state(self):
        try:
            state = json.loads(self.state_path.read_text())
            if isinstance(state.get("completed"), list) and isinstance(state.get("current"), dict):
                return state
        except (OSError, ValueError, AttributeError):
            pass
        return self._recover_state()

    def _recover_state(self):
        """The state as the stage folders show it, when ``state.json`` is missing or damaged."""
        completed = []
        for stage in self.recipe.trained_stages:
            if not (self.folder / "stages" / stage.name / "final.weights.h5").exists():
                break
            completed.append(stage.name)
        state = {"completed": completed, "current": {}}
        pending = [stage.name for stage in self.recipe.trained_stages if stage.name not in completed]
        if pending:
            folder = self.folder / "stages" / pending[0]
            epochs = [int(path.name.split("-")[1].split(".")[0]) for path in folder.glob("checkpoint-*.weights.h5")]
            if epochs:
                best_file = folder / "best.keras.json"
                best = json.loads(best_file.read_text()).get("val_accuracy", -1.0) if best_file.exists() else -1.0
                state["current"] = {"stage": pending[0], "epoch": max(epochs), "best": best}
        logger.warning("%s was unreadable; rebuilt it from the stage folders: finished %s%s", self.state_path,
                       ", ".join(completed) or "no stage",
                       f", {state['current']['stage']} after epoch {state['current']['epoch']}"
                       if state["current"] else "")
        return state

    def start(self, class_names, train, validation, test):
        """Record a new run (recipe, classes, split), or check that a resumed one sees the same data.

        A resumed run refuses other classes, and a split that moved clips between train and test (a
        model would then train on former test clips); clips added or removed are noted in one line.
        """
        if self.resumed:
            self._check_classes(class_names)
            self._check_split(train, validation, test)
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            save_recipe(self.recipe, self.folder / RECIPE_FILE)
        except OSError as error:
            raise UserError(f"cannot write the run folder {self.folder} ({error.strerror}); set "
                            "runtime.output_dir to a writable folder") from None
        write_json(self.folder / CLASSES_FILE, list(class_names))
        write_json(self.folder / SPLIT_FILE, self._split(train, validation, test))

    def _split(self, train, validation, test):
        root = Path(self.recipe.data.root)
        subsets = [("train", train), ("test", test)] + ([("validation", validation)] if validation is not test else [])
        return {subset: sorted(relative_clip_path(item, root) for item in index.items) for subset, index in subsets}

    def _check_classes(self, class_names):
        previous = json.loads((self.folder / CLASSES_FILE).read_text())
        if previous != list(class_names):
            added = sorted(set(class_names) - set(previous))
            removed = sorted(set(previous) - set(class_names))
            raise UserError(
                f"{self.folder} was trained on other classes than {self.recipe.data.root} holds now "
                f"(added {added}, removed {removed}, or reordered); restore the dataset or use another "
                "runtime.output_dir"
            )

    def _check_split(self, train, validation, test):
        path = self.folder / SPLIT_FILE
        if not path.exists():
            return
        before, now = json.loads(path.read_text()), self._split(train, validation, test)
        subset_of = {clip: subset for subset, clips in before.items() for clip in clips}
        moved = sorted(clip for subset, clips in now.items() for clip in clips
                       if subset_of.get(clip, subset) != subset)
        if moved:
            raise UserError(
                f"the split of {self.recipe.data.root} changed since this run started: {len(moved)} clips moved "
                f"between subsets (e.g. {moved[0]!r}), so the run would train on former test clips; "
                "restore the split files or use another runtime.output_dir"
            )
        gone = len(set(subset_of) - {clip for clips in now.values() for clip in clips})
        new = len({clip for clips in now.values() for clip in clips} - set(subset_of))
        if gone or new:
            logger.warning("%s: %d clips removed and %d added since this run started; no clip changed subset",
                           self.recipe.data.root, gone, new)

    def stage_dir(self, stage):
        folder = self.folder / "stages" / stage
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def update_state(self, **changes):
        self.state.update(changes)
        write_json(self.state_path, self.state)

    def read_metrics(self):
        """The run's ``metrics.json`` (``{"stages": {...}, "final": {...}}``), or an empty record."""
        path = self.folder / METRICS_FILE
        return json.loads(path.read_text()) if path.exists() else {"stages": {}}

    def write_metrics(self, metrics):
        write_json(self.folder / METRICS_FILE, metrics)

    @property
    def stages_done(self):
        return [stage.name for stage in self.recipe.trained_stages] == self.state["completed"]

    @property
    def finished(self):
        """All stages trained and the final model and metrics written (the last step of a run)."""
        return self.stages_done and (self.folder / MODEL_FILE).exists() and "final" in self.read_metrics()


def check_same_recipe(saved, recipe, what="a run"):
    """Refuse to go on with ``recipe`` in the folder of ``saved`` (the recipe file of ``what`` started
    there, a run or a search) when the two differ in any key but ``runtime.output_dir`` (the folder may
    have moved): one ``UserError`` line naming the first differing key."""
    folder = Path(saved).parent
    previous = recipe_to_dict(load_recipe(saved))
    current = recipe_to_dict(recipe)
    previous["runtime"]["output_dir"] = current["runtime"]["output_dir"]
    differing = _differing_keys(previous, current)
    if differing:
        key = differing[0]
        more = f" (and {len(differing) - 1} more keys)" if len(differing) > 1 else ""
        raise UserError(
            f"{folder} holds {what} of another recipe: {key} is {show_value(_lookup(previous, key))} "
            f"there and {show_value(_lookup(current, key))} now{more}; set another runtime.output_dir, or "
            "delete that folder to start over"
        )


def _flatten(value, prefix=""):
    """``{"data.root": ..., "stages[0].epochs": ...}`` of a nested recipe dict."""
    if isinstance(value, dict):
        items = [_flatten(child, f"{prefix}.{key}" if prefix else key) for key, child in value.items()]
        return {key: leaf for item in items for key, leaf in item.items()}
    if isinstance(value, list) and value and all(isinstance(child, dict) for child in value):
        items = [_flatten(child, f"{prefix}[{index}]") for index, child in enumerate(value)]
        return {key: leaf for item in items for key, leaf in item.items()}
    return {prefix: value}


def _differing_keys(before, after):
    flat_before, flat_after = _flatten(before), _flatten(after)
    return [key for key in dict.fromkeys([*flat_before, *flat_after]) if flat_before.get(key) != flat_after.get(key)]


def _lookup(values, key):
    return _flatten(values).get(key)

"""A run folder (``runtime.output_dir``): its files, its state, and the checks that keep a resume honest.

::

    recipe.yaml              the resolved recipe (a re-run must match it)
    state.json               finished stages, and the current stage's last finished epoch
    classes.json             class names, in label order
    stages/<stage>/          checkpoint-<epoch>.weights.h5 (model + optimizer, atomic), best.keras (+ .json),
                             final.weights.h5, log.csv
    tensorboard/<stage>/     TensorBoard logs
    model.keras (+ .json)    the final model: the last stage's best by validation accuracy, with its ModelInfo
    metrics.json             test metrics per stage and of the final model
    curves.png               loss and accuracy per epoch of every finished stage
    confusion_matrix.png     the final model's test confusion matrix
"""

import json
from pathlib import Path

from kerasflow.atomic import write_json
from kerasflow.config import load_recipe, recipe_to_dict, save_recipe
from kerasflow.errors import UserError
from kerasflow.model_io import MODEL_FILE, ModelInfo

RECIPE_FILE = "recipe.yaml"
STATE_FILE = "state.json"
CLASSES_FILE = "classes.json"
METRICS_FILE = "metrics.json"


def model_info(recipe, class_names, stage, val_accuracy=None):
    """The ``ModelInfo`` of the model ``stage`` trains in a run of ``recipe``."""
    from kerasflow.models.kinds import STAGE_MODEL

    return ModelInfo(kind=recipe.model.kind, stage=stage, model=STAGE_MODEL[stage],
                     inputs=tuple(recipe.inputs_for(stage)), class_names=tuple(class_names),
                     val_accuracy=val_accuracy)


class RunFolder:
    """A run folder and its ``state.json``: which stages are finished, where the current one stands."""

    def __init__(self, recipe):
        self.recipe = recipe
        self.folder = Path(recipe.runtime.output_dir)
        self.state_path = self.folder / STATE_FILE
        self._check_or_save_recipe()
        self.state = {"completed": [], "current": {}}
        if self.state_path.exists():
            try:
                self.state = json.loads(self.state_path.read_text())
            except ValueError:
                raise UserError(f"{self.state_path} is corrupt; delete the run folder to start again") from None

    def _check_or_save_recipe(self):
        saved = self.folder / RECIPE_FILE
        if saved.exists():
            previous = load_recipe(saved)
            if recipe_to_dict(previous) != recipe_to_dict(self.recipe):
                raise UserError(
                    f"{self.folder} holds a run of a different recipe ({saved}); "
                    "set another runtime.output_dir or delete that folder"
                )
        else:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                save_recipe(self.recipe, saved)
            except OSError as error:
                raise UserError(
                    f"cannot write the run folder {self.folder} ({error.strerror}); set runtime.output_dir "
                    "to a writable folder"
                ) from None

    def check_classes(self, class_names):
        """Record the class list, or refuse a resumed run whose dataset now has other classes."""
        path = self.folder / CLASSES_FILE
        if path.exists():
            previous = json.loads(path.read_text())
            if previous != class_names:
                added = sorted(set(class_names) - set(previous))
                removed = sorted(set(previous) - set(class_names))
                raise UserError(
                    f"{self.folder} was trained on other classes than {self.recipe.data.root} holds now "
                    f"(added {added}, removed {removed}, or reordered); restore the dataset or use another "
                    "runtime.output_dir"
                )
        else:
            write_json(path, class_names)

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

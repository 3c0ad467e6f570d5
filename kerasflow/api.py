"""kerasflow from Python, for people who do not use the command line.

```python
import kerasflow

recipe = kerasflow.load_recipe("demo", ["stages.flow.epochs=2"])  # a path or an installed recipe's name
metrics = kerasflow.fit(recipe)                                  # = python -m kerasflow.fit demo
model = kerasflow.load_model(recipe.runtime.output_dir)          # the run's model.keras
report = kerasflow.predict_video(model, "clip.avi", top_k=3)     # {"predictions": [...], "seconds": ...}
table = kerasflow.report_runs(["runs/a", "runs/b"])              # = python -m kerasflow.report runs/a runs/b
```

A problem with a user's files or recipe raises ``kerasflow.errors.UserError`` with a one-line message; an
argument out of range raises ``ValueError`` (``... Received: ...``), as Keras does.
"""

import numbers

from kerasflow.accuracy_report import report_runs
from kerasflow.config import Recipe, load_recipe

__all__ = ["build_model", "fit", "load_model", "load_recipe", "predict_video", "report_runs"]


def _recipe(recipe, overrides=()):
    if isinstance(recipe, Recipe):
        if overrides:
            raise TypeError("overrides apply to a recipe path or name, not to a loaded Recipe")
        return recipe
    return load_recipe(recipe, overrides)


def fit(recipe, overrides=(), log=print):
    """Train a recipe (a ``Recipe``, a YAML path, an installed name or a run folder to resume where it
    is) as ``python -m kerasflow.fit`` does, resuming its run folder; returns the run's metrics
    (``metrics.json``).

    Whether it returns or raises, it leaves the process as it found it: Keras' dtype policy (the
    recipe's ``runtime.mixed_precision``) and the global seeds it sets (``runtime.seed``: Python's
    ``random``, NumPy, TensorFlow, Keras) are put back (``kerasflow.training.runtime_setup.globals_restored``).
    """
    from kerasflow.data.pipeline import bad_videos_as_user_errors
    from kerasflow.training.run_folder import fit_recipe
    from kerasflow.training.runtime_setup import globals_restored
    from kerasflow.training.trainer import train_recipe

    recipe = _recipe(recipe, overrides) if isinstance(recipe, Recipe) else fit_recipe(recipe, overrides)
    with globals_restored(), bad_videos_as_user_errors():
        return train_recipe(recipe, log=log)


def build_model(recipe, overrides=(), num_classes=None):
    """The model a run of ``recipe`` ends with (e.g. the joint two-stream model), untrained, with the
    ImageNet weights ``model.weights`` names. ``num_classes`` defaults to ``data.synthetic.classes`` for
    the synthetic dataset, else to the classes of the recipe's dataset, which must exist: building a
    model makes no data."""
    recipe = _recipe(recipe, overrides)
    if num_classes is None:
        num_classes = _class_count(recipe.data)
    models = recipe.kind.build_models(recipe.model, recipe.data, num_classes)
    return models[recipe.kind.final_model]


def _class_count(data):
    from kerasflow.data.datasets import build_index
    from kerasflow.errors import UserError

    if data.dataset == "synthetic":  # made on first use, with this many classes
        return data.synthetic.classes
    try:
        return len(build_index(data.dataset, data.root, data.split, "train", data.flow_root).class_names)
    except UserError as error:
        raise UserError(f"build_model needs the number of classes: pass num_classes=, or make the dataset "
                        f"the recipe names ({error})") from None


def load_model(path):
    """The ``keras.Model`` of a run folder or a ``.keras`` file, with its ``ModelInfo`` (inputs, class
    names) as ``model.kerasflow_info``."""
    from kerasflow.model_io import load_saved_model

    model, info, _ = load_saved_model(path)
    model.kerasflow_info = info
    return model


def predict_video(model, video, top_k=5, flow_dir=None):
    """The ``top_k`` classes of one video (a file or a frame folder) with their probabilities.

    ``model`` is what ``load_model`` returns, or a run folder or ``.keras`` path. ``flow_dir`` is the
    video's TV-L1 ``flow_x`` folder, for optical-flow models. Returns ``{"video", "predictions":
    [{"class", "probability"}, ...], "seconds": {"decode", "model"}}``.
    """
    from kerasflow.export.predictors import KerasPredictor
    from kerasflow.prediction import check_request
    from kerasflow.prediction import predict_video as predict

    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1:
        raise ValueError(f"`top_k` must be an integer >= 1 (how many classes to list). Received: top_k={top_k!r}")
    if not hasattr(model, "kerasflow_info"):
        model = load_model(model)
    check_request(str(video), getattr(model, "name", "the model"), model.kerasflow_info, flow_dir)
    return predict(KerasPredictor(model.kerasflow_info, model.name, model), video, top_k, flow_dir)

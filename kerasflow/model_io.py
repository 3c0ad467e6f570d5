"""Saved models as kerasflow writes them: ``X.keras`` plus ``X.keras.json``, a typed ``ModelInfo``.

The info says how to feed the model (its kind, the training stage that made it, each input with its
frames and crop size) and names its classes, so evaluate, predict and export need nothing else.
Both files are written atomically. Weights checkpoints are ``.weights.h5``.
"""

import contextlib
import dataclasses
import json
import math
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np

from kerasflow import __version__
from kerasflow.atomic import atomic_path, write_json
from kerasflow.data.inputs import LEGACY_NAMES, InputSpec
from kerasflow.errors import UserError

MODEL_FILE = "model.keras"
INFO_FORMAT = 2  # format 1 (kerasflow 0.1) had no "format" key and flat frame counts
LEGACY_CONVLSTM = "conv_lstm2d/cell/vars"  # where keras.layers.ConvLSTM2D kept the ConvLSTM's variables


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What a saved model is and how to feed it (the ``X.keras.json`` next to ``X.keras``).

    Attributes:
        kind: the recipe's ``model.kind``.
        stage: the training stage that produced the model.
        model: which of the kind's models it is (``rgb``, ``flow`` or ``joint``).
        inputs: the model's inputs (``InputSpec``), in order.
        class_names: class names in label order.
        val_accuracy: the validation top-1 for which it was kept (a stage's best model), or None.
        version: the kerasflow version that wrote it.
    """

    kind: str
    stage: str
    model: str
    inputs: tuple
    class_names: tuple
    val_accuracy: Optional[float] = None
    version: str = __version__

    @property
    def input_names(self):
        return [spec.name for spec in self.inputs]

    def input(self, name):
        """The ``InputSpec`` called ``name``; ``KeyError`` when the model has no such input."""
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def to_dict(self):
        values = dataclasses.asdict(self)
        values["inputs"] = [spec.to_dict() for spec in self.inputs]
        values["class_names"] = list(self.class_names)
        return {"format": INFO_FORMAT, **values}

    @classmethod
    def from_dict(cls, values):
        values = dict(values)
        values.pop("format")
        values["inputs"] = tuple(InputSpec.from_dict(spec) for spec in values["inputs"])
        values["class_names"] = tuple(values["class_names"])
        return cls(**values)


def info_path(model_file):
    """``X.keras`` -> ``X.keras.json``."""
    return Path(f"{model_file}.json")


def stored_bytes(model):
    """About how many bytes ``model``'s weights and its optimizer's state take in a file."""
    optimizer = getattr(model, "optimizer", None)
    variables = list(model.weights) + (list(optimizer.variables) if optimizer is not None else [])
    return sum(math.prod(variable.shape) * np.dtype(variable.dtype).itemsize for variable in variables)


def save_model(model, path, info):
    """Save ``model`` to ``path`` (``.keras``) and its ``ModelInfo`` next to it, both atomically."""
    with atomic_path(path, ".keras", needed_bytes=stored_bytes(model)) as temporary:
        model.save(temporary)
    write_json(info_path(path), info.to_dict())


def save_weights(model, path):
    """Save ``model``'s weights (and its optimizer's state) to ``path`` (``.weights.h5``) atomically."""
    with atomic_path(path, ".weights.h5", needed_bytes=stored_bytes(model)) as temporary:
        model.save_weights(temporary)


def load_weights(model, path):
    """``model.load_weights(path)`` (``.weights.h5`` or ``.keras``), also for a file written before
    ``kerasflow.layers.ConvLSTM`` replaced ``keras.layers.ConvLSTM2D``, so runs started then resume.

    Such a file keeps the ConvLSTM's three variables under ``.../conv_lstm2d/cell/vars``; the layer
    keeps the same variables, in the same order, under ``.../conv_lstm/vars``. A copy with the groups
    moved is loaded instead, from a temporary folder. Any other mismatch raises Keras' error.
    """
    import tempfile

    try:
        model.load_weights(path)
    except ValueError:
        with tempfile.TemporaryDirectory(prefix="kerasflow-weights-") as folder:
            upgraded = Path(folder) / "upgraded.weights.h5"
            if not _moved_legacy_convlstm(path, upgraded):
                raise
            model.load_weights(upgraded)


def _moved_legacy_convlstm(path, upgraded):
    """Write the weights of ``path`` to ``upgraded`` with every ``ConvLSTM2D`` group moved to where
    ``ConvLSTM`` keeps its variables; False when ``path`` holds none or cannot be read."""
    import h5py

    try:
        if str(path).endswith(".keras"):
            with zipfile.ZipFile(path) as archive:
                upgraded.write_bytes(archive.read("model.weights.h5"))
        else:
            upgraded.write_bytes(Path(path).read_bytes())
        with h5py.File(upgraded, "r+") as store:
            legacy = []
            store.visit(lambda name: legacy.append(name) if name.endswith(LEGACY_CONVLSTM) else None)
            for name in legacy:
                store.move(name, name[: -len(LEGACY_CONVLSTM)] + "conv_lstm/vars")
                del store[name[: -len("/cell/vars")]]
    except (OSError, KeyError, zipfile.BadZipFile):
        return False
    return bool(legacy)


def find_model_file(path, accepted="a run folder or a .keras model file"):
    """``RUN_DIR/model.keras`` for a run folder, else the ``.keras`` file ``path``; ``UserError`` otherwise,
    saying that the command takes ``accepted``."""
    path = Path(path)
    if path.is_dir():
        model_file = path / MODEL_FILE
        if model_file.is_file():
            return model_file
        if (path / "state.json").is_file() and (path / "recipe.yaml").is_file():
            raise UserError(f"{path} has no {MODEL_FILE} yet; finish its training with "
                            f"python -m kerasflow.fit {path}")
        raise UserError(f"{path} is not a run folder (it has no {MODEL_FILE}); pass {accepted}")
    if not path.exists():
        raise UserError(f"model {str(path)!r} does not exist; pass {accepted}")
    if path.name.endswith(".weights.h5"):
        raise UserError(f"{path} is a weights checkpoint, not a model file; pass the run folder or a .keras "
                        "model file")
    if path.suffix in (".yaml", ".yml"):
        raise UserError(f"{path} is a recipe, not a model file; pass the run folder or a .keras model file "
                        "(evaluate takes a recipe beside the model)")
    if path.suffix != ".keras":
        raise UserError(f"{path} is not a model file; pass {accepted}")
    return path


def read_model_info(model_file):
    """The ``ModelInfo`` ``kerasflow.fit`` writes next to a model file (see ``save_model``)."""
    metadata_file = info_path(model_file)
    try:
        values = json.loads(metadata_file.read_text())
    except FileNotFoundError:
        raise UserError(f"{metadata_file} is missing: a model file needs the metadata kerasflow.fit writes "
                        "next to it (kind, inputs, class names)") from None
    except (ValueError, OSError):
        raise UserError(f"{metadata_file} is not readable JSON; copy it again from the run folder") from None
    if not isinstance(values, dict) or values.get("format") != INFO_FORMAT:
        raise UserError(f"{metadata_file} was written by another kerasflow version (metadata format "
                        f"{values.get('format', 1) if isinstance(values, dict) else '?'}, this version reads "
                        f"{INFO_FORMAT}); train the model again with this version")
    try:
        return ModelInfo.from_dict(values)
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(f"{metadata_file} is damaged ({type(error).__name__}: {error}); "
                        "copy it again from the run folder") from None


def load_model_file(model_file):
    """The ``keras.Model`` in a ``.keras`` file; ``UserError`` when it is not a readable Keras archive."""
    if not zipfile.is_zipfile(model_file):
        raise UserError(f"{model_file} is not a Keras model file (not a .keras zip archive); "
                        "copy it again from the run folder")
    import keras

    import kerasflow.models.builders  # noqa: F401  (registers every custom layer a model file can refer to)

    try:
        with _current_input_names(model_file) as readable:
            return keras.saving.load_model(readable, compile=False)
    except Exception as error:  # Keras raises many types for a damaged archive
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{model_file} cannot be loaded ({reason[:200]}); copy it again from the run folder") from None


@contextlib.contextmanager
def _current_input_names(model_file):
    """``model_file``, or for a model saved with an input under a legacy name (``LEGACY_NAMES``: the TV-L1
    stack was ``flow``) a temporary copy whose config names it as today, so it is fed as models built now.

    An input layer holds no weights, so renaming it and every reference to it leaves the weights as saved."""
    import tempfile

    with zipfile.ZipFile(model_file) as archive:
        config = json.loads(archive.read("config.json"))
        inputs = config.get("config", {}).get("input_layers")
        if not isinstance(inputs, dict) or not LEGACY_NAMES.keys() & inputs.keys():
            yield model_file
            return
        with tempfile.TemporaryDirectory(prefix="kerasflow-model-") as folder:
            upgraded = Path(folder) / "upgraded.keras"
            with zipfile.ZipFile(upgraded, "w") as copy:
                for entry in archive.infolist():
                    data = archive.read(entry)
                    if entry.filename == "config.json":
                        data = json.dumps(_renamed_layers(config, LEGACY_NAMES)).encode("utf-8")
                    copy.writestr(entry, data)
            yield upgraded


def _renamed_layers(config, names):
    """A Keras model config with the layers ``names`` maps (old name: new name) renamed: their ``name``,
    the ``input_layers`` keys and every ``[layer, node, tensor]`` reference (``keras_history``, ``input_layers``)."""
    if isinstance(config, list):
        if len(config) == 3 and config[0] in names and all(isinstance(n, int) for n in config[1:]):
            return [names[config[0]], *config[1:]]
        return [_renamed_layers(item, names) for item in config]
    if not isinstance(config, dict):
        return config
    return {names.get(key, key): (names.get(value, value) if key == "name" and isinstance(value, str)
                                  else _renamed_layers(value, names)) for key, value in config.items()}


def load_saved_model(path):
    """``(keras.Model, ModelInfo, model_file)`` of a run folder or a ``.keras`` file (with its ``.json``)."""
    model_file = find_model_file(path)
    info = read_model_info(model_file)
    return load_model_file(model_file), info, model_file

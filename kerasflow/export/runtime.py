"""Running what kerasflow saves and exports, whatever its format, behind one call.

``load_predictor(path)`` takes a run folder, a ``.keras`` model file, an export folder (what
``python -m kerasflow.export`` writes, with its ``metadata.json``) or a ``.tflite`` file, and returns a
``Predictor``: ``predictor(inputs)`` maps ``{input name: uint8 batch}`` to float32 logits ``(B, K)``,
and ``predictor.info`` is the model's ``ModelInfo`` (inputs, class names). Exported models take a
batch of one; a predictor feeds them one clip at a time.
"""

import json
from pathlib import Path

import numpy as np

from kerasflow.data.inputs import InputSpec
from kerasflow.errors import UserError
from kerasflow.model_io import ModelInfo, find_model_file, load_model_file, read_model_info

METADATA_FILE = "metadata.json"
ACCEPTED = "a run folder, a .keras model file, an export folder or a .tflite file"
MODEL_FILES = {"keras": "model.keras", "saved_model": "saved_model.pb", "tflite": "model.tflite"}


class Predictor:
    """A model behind ``predictor(inputs) -> logits``; ``info``: its ``ModelInfo``; ``path``: its file;
    ``keras_model``: the Keras model when there is one (for its streams and CAM maps), else None;
    ``source_run``: for an export, the run folder it was exported from (or None)."""

    format = "keras"
    source_run = None

    def __init__(self, info, path, keras_model=None):
        self.info, self.path, self.keras_model = info, Path(path), keras_model

    def __call__(self, inputs, training=False):
        raise NotImplementedError

    def _one_by_one(self, inputs, run_one):
        size = len(next(iter(inputs.values())))
        return np.concatenate([run_one({name: np.asarray(value[i : i + 1]) for name, value in inputs.items()})
                               for i in range(size)]).astype(np.float32)


class KerasPredictor(Predictor):
    def __call__(self, inputs, training=False):
        from kerasflow.backend import predict_logits

        return predict_logits(self.keras_model, inputs)


class SavedModelPredictor(Predictor):
    format = "saved_model"

    def __init__(self, info, path):
        import tensorflow as tf

        super().__init__(info, path)
        self._serve = tf.saved_model.load(str(Path(path).parent)).signatures["serving_default"]

    def __call__(self, inputs, training=False):
        return self._one_by_one(inputs, lambda one: self._serve(**one)["logits"].numpy())


class TFLitePredictor(Predictor):
    format = "tflite"

    def __init__(self, info, path, threads=None):
        from ai_edge_litert.interpreter import Interpreter

        super().__init__(info, path)
        self._run = Interpreter(model_path=str(path), num_threads=threads).get_signature_runner("serving_default")

    def __call__(self, inputs, training=False):
        return self._one_by_one(inputs, lambda one: self._run(**one)["logits"])


def read_metadata(folder):
    """The ``metadata.json`` of an export folder as a dict, and its ``ModelInfo``."""
    path = Path(folder) / METADATA_FILE
    try:
        metadata = json.loads(path.read_text())
        info = ModelInfo(kind=metadata["kind"], stage=metadata["stage"], model=metadata["model"],
                         inputs=tuple(InputSpec(**{key: spec[key] for key in ("name", "frames", "size", "sampling",
                                                                              "stride")})
                                      for spec in metadata["inputs"]),
                         class_names=tuple(metadata["class_names"]), version=metadata["kerasflow_version"])
    except FileNotFoundError:
        raise UserError(f"{path} is missing: an export folder holds the metadata python -m kerasflow.export "
                        "writes; export the model again") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"{path} is not readable export metadata ({type(error).__name__}); export the model "
                        "again") from None
    return metadata, info


def _export_folder(path):
    """The export folder of ``path`` (an export folder or a ``.tflite`` file in one), or None."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if (folder / METADATA_FILE).is_file() and (path.is_dir() or path.suffix == ".tflite"):
        return folder
    if path.suffix == ".tflite" and not path.is_file():
        raise UserError(f"model {str(path)!r} does not exist; pass {ACCEPTED}")
    if path.suffix == ".tflite":
        raise UserError(f"{path} has no {METADATA_FILE} beside it: keep the file in the folder "
                        "python -m kerasflow.export wrote (the metadata names its classes and inputs)")
    return None


def read_info(path):
    """The ``ModelInfo`` of what ``load_predictor(path)`` would load, without loading it."""
    folder = _export_folder(path)
    return read_metadata(folder)[1] if folder is not None else read_model_info(find_model_file(path, ACCEPTED))


def load_predictor(path, threads=None):
    """The ``Predictor`` of a run folder, a ``.keras`` file, an export folder or a ``.tflite`` file."""
    path = Path(path)
    folder = _export_folder(path)
    if folder is not None:
        metadata, info = read_metadata(folder)
        model_path = folder / MODEL_FILES[metadata["format"]]
        if metadata["format"] == "tflite":
            predictor = TFLitePredictor(info, path if path.suffix == ".tflite" else model_path, threads)
        elif metadata["format"] == "saved_model":
            predictor = SavedModelPredictor(info, model_path)
        else:
            predictor = KerasPredictor(info, model_path, load_model_file(model_path))
        predictor.source_run = metadata["source"]["run"]
        return predictor
    model_file = find_model_file(path, ACCEPTED)
    return KerasPredictor(read_model_info(model_file), model_file, load_model_file(model_file))

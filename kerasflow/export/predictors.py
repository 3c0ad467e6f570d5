"""Running what kerasflow saves and exports, whatever its format, behind one call.

``load_predictor(path)`` takes a run folder, a ``.keras`` model file, an export folder (what
``python -m kerasflow.export`` writes, with its ``metadata.json``) or a ``.tflite`` file, and returns a
``Predictor``: ``predictor(inputs)`` maps ``{input name: uint8 batch}`` to float32 logits ``(B, K)``,
and ``predictor.info`` is the model's ``ModelInfo`` (inputs, class names). Exported models take a
batch of one; a predictor feeds them one clip at a time.
"""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from kerasflow.data.inputs import CROPS, INPUT_NAMES, SAMPLINGS, InputSpec, current_name
from kerasflow.errors import UserError
from kerasflow.model_io import ModelInfo, find_model_file, load_model_file, read_model_info

METADATA_FILE = "metadata.json"
ACCEPTED = "a run folder, a .keras model file, an export folder or a .tflite file"
# The InputSpec fields a metadata.json input holds (crop and subsample are absent from older exports).
INPUT_SPEC_KEYS = tuple(field.name for field in dataclasses.fields(InputSpec))
MODEL_FILES = {"keras": "model.keras", "saved_model": "saved_model.pb", "tflite": "model.tflite"}


class Predictor:
    """A model behind ``predictor(inputs) -> logits``; ``info``: its ``ModelInfo``; ``path``: its file;
    ``keras_model``: the Keras model when there is one (for its streams and CAM maps), else None;
    ``source_run``: for an export, the run folder it was exported from (or None)."""

    format = "keras"
    source_run = None
    artifact_names = {}  # {input name: the artifact's own name} where they differ (exports of kerasflow 0.2)

    def __init__(self, info, path, keras_model=None):
        self.info, self.path, self.keras_model = info, Path(path), keras_model

    def __call__(self, inputs, training=False):
        raise NotImplementedError

    def signature(self):
        """``({input name: (shape, dtype name)}, logits shape or None)`` of the loaded artifact."""
        model = self.keras_model
        output = model.output["logits"] if isinstance(model.output, dict) else model.output
        return ({tensor.name: (tuple(tensor.shape), str(tensor.dtype)) for tensor in model.inputs},
                tuple(output.shape))

    def _one_by_one(self, inputs, run_one):
        size = len(next(iter(inputs.values())))
        return np.concatenate([run_one({self.artifact_names.get(name, name): np.asarray(value[i : i + 1])
                                        for name, value in inputs.items()})
                               for i in range(size)]).astype(np.float32)


class KerasPredictor(Predictor):
    """A Keras model; ``jit_compile`` (``runtime.jit_compile``: true, false or "auto") says whether it runs
    through XLA (``kerasflow.training.runtime_setup.use_xla``)."""

    def __init__(self, info, path, keras_model, jit_compile="auto"):
        super().__init__(info, path, keras_model)
        self.set_jit_compile(jit_compile)

    def set_jit_compile(self, jit_compile):
        """Run the model through XLA or not from now on, as ``runtime.jit_compile`` says."""
        from kerasflow.training.runtime_setup import forward_function

        self._forward = forward_function(self.keras_model, jit_compile)

    def __call__(self, inputs, training=False):
        from kerasflow.backend import predict_logits

        return predict_logits(self._forward, inputs)


class SavedModelPredictor(Predictor):
    format = "saved_model"

    def __init__(self, info, path):
        import tensorflow as tf

        super().__init__(info, path)
        try:
            self._serve = tf.saved_model.load(str(Path(path).parent)).signatures["serving_default"]
        except Exception as error:  # TensorFlow raises many types for a damaged SavedModel
            raise _unloadable(Path(path).parent, "a SavedModel", error) from None
        self.artifact_names = _legacy_names(self._serve.structured_input_signature[1])

    def __call__(self, inputs, training=False):
        return self._one_by_one(inputs, lambda one: self._serve(**one)["logits"].numpy())

    def signature(self):
        inputs = self._serve.structured_input_signature[1]
        logits = self._serve.structured_outputs.get("logits")
        return ({current_name(name): (tuple(spec.shape.as_list()), spec.dtype.name) for name, spec in inputs.items()},
                tuple(logits.shape.as_list()) if logits is not None else None)


class TFLitePredictor(Predictor):
    format = "tflite"

    def __init__(self, info, path, threads=None):
        from ai_edge_litert.interpreter import Interpreter

        from kerasflow.native_output import native_output_kept_back

        super().__init__(info, path)
        try:  # one run on zeros: LiteRT's one-time notice of its CPU delegate stays off stderr
            with native_output_kept_back(replay=False):
                self._run = Interpreter(model_path=str(path), num_threads=threads).get_signature_runner(
                    "serving_default")
                self._run(**{name: np.zeros(detail["shape"], detail["dtype"])
                             for name, detail in self._run.get_input_details().items()})
        except (ValueError, RuntimeError) as error:
            raise _unloadable(path, "a TFLite model", error) from None
        self.artifact_names = _legacy_names(self._run.get_input_details())

    def __call__(self, inputs, training=False):
        return self._one_by_one(inputs, lambda one: self._run(**one)["logits"])

    def signature(self):
        outputs = self._run.get_output_details()
        return ({current_name(name): (tuple(int(n) for n in detail["shape"]), np.dtype(detail["dtype"]).name)
                 for name, detail in self._run.get_input_details().items()},
                tuple(int(n) for n in outputs["logits"]["shape"]) if "logits" in outputs else None)


def _legacy_names(names):
    """``{input name: the artifact's name}`` of an artifact's input ``names`` that are legacy names."""
    return {current_name(name): name for name in names if current_name(name) != name}


def _unloadable(path, what, error):
    reason = " ".join(str(error).split())[:200] or type(error).__name__
    return UserError(f"{path} cannot be loaded as {what} ({reason}); it is damaged or not one: copy it again or "
                     "export the model again")


def read_metadata(folder):
    """The ``metadata.json`` of an export folder as a dict, and its ``ModelInfo``; ``UserError`` naming the
    file and the key when it is not what ``python -m kerasflow.export`` writes (e.g. after an edit)."""
    path = Path(folder) / METADATA_FILE
    try:
        metadata = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} is missing: an export folder holds the metadata python -m kerasflow.export "
                        "writes; export the model again") from None
    except (OSError, ValueError) as error:
        raise UserError(f"{path} is not readable export metadata ({type(error).__name__}); export the model "
                        "again") from None
    problem = _metadata_problem(metadata)
    if problem:
        raise UserError(f"{path}: {problem}; it was edited or is damaged: export the model again")
    info = ModelInfo(kind=metadata["kind"], stage=metadata["stage"], model=metadata["model"],
                     inputs=tuple(InputSpec.from_dict({key: spec[key] for key in INPUT_SPEC_KEYS if key in spec})
                                  for spec in metadata["inputs"]),
                     class_names=tuple(metadata["class_names"]), version=metadata["kerasflow_version"])
    return metadata, info


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _metadata_problem(metadata):
    """What is wrong with an export's metadata (``read_metadata``), in words, or None."""
    if not isinstance(metadata, dict):
        return f"holds a JSON {type(metadata).__name__}, not an object"
    for key in ("format", "kind", "stage", "model", "kerasflow_version", "class_names", "inputs", "outputs", "source"):
        if key not in metadata:
            return f'the key "{key}" is missing'
    if metadata["format"] not in MODEL_FILES:
        return f'"format" is {json.dumps(metadata["format"])}, not one of {", ".join(MODEL_FILES)}'
    names = metadata["class_names"]
    if not isinstance(names, list) or not names or not all(isinstance(name, str) and name for name in names):
        return f'"class_names" is {json.dumps(names)[:60]}, not a list of class names (strings)'
    if len(set(names)) < len(names):
        return f'"class_names" names a class twice ({next(n for n in names if names.count(n) > 1)!r})'
    outputs = metadata["outputs"]
    if outputs != {"logits": [1, len(names)], "probs": [1, len(names)]}:
        return (f'"outputs" is {json.dumps(outputs)[:80]} but "class_names" holds {len(names)} names '
                f'(expected logits and probs of [1, {len(names)}])')
    if not isinstance(metadata["inputs"], list) or not metadata["inputs"]:
        return '"inputs" is not a list of inputs'
    for number, spec in enumerate(metadata["inputs"]):
        where = f'"inputs"[{number}]'
        if not isinstance(spec, dict):
            return f"{where} is not an object"
        checks = {"name": (lambda value: isinstance(value, str) and current_name(value) in INPUT_NAMES,
                           f"one of {', '.join(INPUT_NAMES)}"),
                  "frames": (_is_count, "an integer >= 1"), "size": (_is_count, "an integer >= 1"),
                  "sampling": (lambda value: value in SAMPLINGS, f"one of {', '.join(SAMPLINGS)}"),
                  "stride": (_is_count, "an integer >= 1")}
        for key, (check, expected) in checks.items():
            if key not in spec:
                return f'{where} lacks "{key}"'
            if not check(spec[key]):
                return f'{where}."{key}" is {json.dumps(spec[key])[:40]}, not {expected}'
        # Exports written before data.crop existed lack the two crop keys: they were multi-scale at 1.
        optional = {"crop": (lambda value: value in CROPS, f"one of {', '.join(CROPS)}"),
                    "subsample": (_is_count, "an integer >= 1")}
        for key, (check, expected) in optional.items():
            if key in spec and not check(spec[key]):
                return f'{where}."{key}" is {json.dumps(spec[key])[:40]}, not {expected}'
    if not isinstance(metadata["source"], dict) or not isinstance(metadata["source"].get("run"), (str, type(None))):
        return '"source" is not an object with the "run" it was exported from'
    return None


def check_artifact(predictor, metadata_path):
    """Refuse an artifact whose real inputs and outputs are not what its metadata says (one ``UserError``
    line): e.g. edited frames or crop size, a class list of another length, a file of another model."""
    inputs, logits = predictor.signature()
    expected = {spec.name: ((1, *spec.shape), "uint8") for spec in predictor.info.inputs}
    name = {"tflite": predictor.path.name, "saved_model": "the SavedModel"}.get(predictor.format, "model.keras")
    if inputs != expected:
        def show(signature):
            return ", ".join(f"{key} {list(shape)} {dtype}" for key, (shape, dtype) in sorted(signature.items()))

        raise UserError(f"{metadata_path} describes the inputs {show(expected)} but {name} takes {show(inputs)}; the "
                        "metadata was edited or belongs to another model: export the model again")
    classes = len(predictor.info.class_names)
    if logits != (1, classes):
        scores = "no logits" if logits is None else f"{math.prod(logits[1:])} scores"
        raise UserError(f"{metadata_path} names {classes} classes but {name} gives {scores}; the metadata was edited "
                        "or belongs to another model: export the model again")


def _export_folder(path):
    """The export folder of ``path`` (an export folder or a ``.tflite`` file in one), or None."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if (folder / METADATA_FILE).is_file() and (path.is_dir() or path.suffix == ".tflite"):
        return folder
    exported = [name for name in (MODEL_FILES["tflite"], MODEL_FILES["saved_model"]) if (folder / name).is_file()]
    if path.is_dir() and exported:
        raise UserError(f"{path} holds {exported[0]} but no {METADATA_FILE}: an export folder keeps the metadata "
                        "python -m kerasflow.export writes (classes, inputs) beside the model; copy the whole "
                        "folder again or export the model again")
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
        check_artifact(predictor, folder / METADATA_FILE)
        predictor.source_run = metadata["source"]["run"]
        return predictor
    model_file = find_model_file(path, ACCEPTED)
    return KerasPredictor(read_model_info(model_file), model_file, load_model_file(model_file))

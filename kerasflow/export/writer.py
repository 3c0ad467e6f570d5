"""Writing an export folder: the model in one format, its ``metadata.json``, and the check that the
written artifact gives what the Keras model gives.

Formats: ``keras`` (``model.keras``), ``saved_model`` (a TensorFlow SavedModel with a
``serving_default`` signature) and ``tflite`` (``model.tflite``, converted from that SavedModel with
TFLite's builtin ops only: a file that needs Flex ops cannot run in Python's interpreter), optionally
quantized (``float16``, ``dynamic_int8``: int8 weights, or ``int8``: int8 weights and activations,
calibrated on a representative set of clips; what the converter really quantized is read back from
the file, ``kerasflow.export.quantization``). Every format takes ``{input name: uint8 (1, ...)}`` and
returns ``logits`` and ``probs``. The folder is written under a temporary name and renamed into place
once checked, so a failure leaves no half-written export.
"""

import dataclasses
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from kerasflow import __version__
from kerasflow.atomic import disk_full_error, remove_stale_temporary_folders, write_error, write_json
from kerasflow.errors import UserError
from kerasflow.export.predictors import METADATA_FILE, MODEL_FILES, KerasPredictor, SavedModelPredictor, TFLitePredictor
from kerasflow.export.quantization import describe, float_ops, tensor_names, weight_summary

FORMATS = ("keras", "saved_model", "tflite")
QUANTIZATIONS = ("none", "float16", "dynamic_int8", "int8")
# Largest |probability difference| accepted between the artifact and the Keras model, by quantization;
# None: reported only (int8 changes the numbers, the top-1 agreement is what matters).
PROBABILITY_TOLERANCE = {"none": 1e-4, "float16": 1e-2, "dynamic_int8": None, "int8": None}
# Ops a full-integer export keeps float32: TFLite's int8 DIV stops the interpreter when a divisor
# quantizes to its zero point, which the frame normalisation's and the flow layer's divisions reach.
INT8_FLOAT_OPS = ("DIV",)
# The artifact's size for float32 weights of 1 byte, by quantization (graph overhead not counted).
ARTIFACT_SHARE = {"none": 1.0, "float16": 0.5, "dynamic_int8": 0.25, "int8": 0.25}


@dataclasses.dataclass
class ExportReport:
    """One written export: where, how large, and how it compares with the Keras model on ``clips``."""

    format: str
    quantize: str
    folder: str
    bytes: int
    clips: int
    max_probability_difference: float
    top1_agreement: float
    milliseconds_per_clip: float
    keras_milliseconds_per_clip: float
    # What stayed float32 after quantizing, {op name: count}: ops with float32 weights (dynamic_int8) or
    # computing in float32 (int8); and the training clips int8 was calibrated on.
    kept_float: dict = dataclasses.field(default_factory=dict)
    representative_clips: int = 0

    def row(self):
        return (f"{self.format:<12} {self.quantize:<13} {self.bytes / 1e6:>9.2f} MB "
                f"{self.max_probability_difference:>12.2e} {self.top1_agreement:>9.3f} "
                f"{self.milliseconds_per_clip:>9.1f} ms ({self.keras_milliseconds_per_clip:.1f} ms in Keras)")


REPORT_HEADER = f"{'format':<12} {'quantize':<13} {'size':>12} {'max |dprob|':>12} {'top-1 agr':>9} {'per clip':>12}"


def _geometry(spec, frame_size):
    """How a frame is brought to the crop's scale, before the centre crop (``kerasflow.data.pipeline``)."""
    from kerasflow.data.pipeline import short_side_for

    subsample = spec.subsample
    kept = {"subsample": subsample, "crop_size": frame_size}
    if subsample > 1:
        kept["subsampling"] = f"every {subsample}th row and column of the frame, from the first, before resizing"
    if spec.crop == "random":
        return {**kept, "resize": "none; a frame whose shorter side is under crop_size has it scaled to crop_size "
                                  "(bilinear, OpenCV INTER_LINEAR)"}
    return {**kept, "short_side": short_side_for(frame_size),
            "resize": "bilinear (OpenCV INTER_LINEAR): the shorter side to short_side px, the longer to "
                      "short_side * longer // shorter"}


def metadata(info, export_format, quantize, source, run_folder, frame_size):
    """The ``metadata.json`` of an export: what a client in any language needs to feed the model."""
    return {
        "format": export_format,
        "file": MODEL_FILES[export_format] if export_format != "saved_model" else ".",
        "quantize": quantize,
        "kerasflow_version": __version__,
        "kind": info.kind,
        "stage": info.stage,
        "model": info.model,
        "class_names": list(info.class_names),
        "inputs": [{**spec.to_dict(), "dtype": "uint8", "shape": [1, *spec.shape],
                    "holds": "TV-L1 flow planes x0, y0, x1, y1, ... (dense_flow JPEG coding)" if not spec.is_clip
                    else "RGB frames"} for spec in info.inputs],
        "outputs": {"logits": [1, len(info.class_names)], "probs": [1, len(info.class_names)]},
        "preprocessing": {
            "colour": "RGB frames, uint8 0..255 (the model normalises them)",
            **_geometry(info.inputs[0], frame_size),
            "crop": "the centre crop_size x crop_size square: top (height - crop_size) // 2, left "
                    "(width - crop_size) // 2",
            "sampling": {"segments": "of a video of N frames, frame floor(i * N / T) for i = 0 .. T-1",
                         "contiguous": "T frames stride apart, starting at max(N - ((T - 1) * stride + 1), 0) // 2; "
                                       "an index past the end repeats the last frame"},
        },
        "source": {"model": str(source), "run": str(run_folder) if run_folder else None},
    }


def _write_artifact(serving, export_format, quantize, folder, representative=None, intermediate=None):
    """Write ``serving`` (the serving Keras model) into ``folder`` in ``export_format``; returns the ops a
    quantized TFLite file kept float (``_quantized_ops``). ``representative``: ``{input name: uint8 (N,
    ...)}`` clips that ``int8`` calibrates its activation ranges on. A TFLite file is converted from a
    SavedModel written to the folder ``intermediate`` (made here, removed by the caller)."""
    import keras
    import tensorflow as tf

    if export_format == "keras":
        serving.save(folder / MODEL_FILES["keras"])
        return {}
    archive = keras.export.ExportArchive()
    archive.track(serving)
    signature = {tensor.name: tf.TensorSpec(tensor.shape, tf.uint8, name=tensor.name) for tensor in serving.inputs}
    archive.add_endpoint("serving_default", serving.call, input_signature=[signature])
    saved_model = folder if export_format == "saved_model" else intermediate
    archive.write_out(str(saved_model), verbose=False)
    if export_format == "saved_model":
        return {}
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=["serving_default"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    try:
        data = (_full_integer(converter, representative, _float_scopes(serving)) if quantize == "int8"
                else converter.convert())
    except Exception as error:  # the converter raises its own error types, with the unsupported ops
        needs = "Flex (Select TF) ops" if "flex" in str(error).lower() else "ops TFLite cannot convert"
        raise UserError(f"this model cannot be converted to TFLite with builtin ops only: it {needs} "
                        f"({' '.join(str(error).split())[:200]}); export the saved_model format instead") from None
    kept_float = _quantized_ops(data, quantize)
    (folder / MODEL_FILES["tflite"]).write_bytes(data)
    return kept_float


def _float_scopes(model):
    """The name scopes, as TFLite tensor names spell them, of ``model``'s ``RepresentationFlow`` layers:
    a layer at path ``flow_block/flow_1`` writes tensors named ``.../flow_block_1/flow_1_1/...`` (the
    export's tracing suffixes each scope with ``_N``)."""
    import re

    from kerasflow.layers import RepresentationFlow

    return [re.compile("(?:^|/)" + "/".join(re.escape(part) + r"(?:_\d+)?" for part in layer.path.split("/")) + "/")
            for layer in model._flatten_layers(include_self=False) if isinstance(layer, RepresentationFlow)]


def _tensors_in_scopes(converter, scopes):
    """The output tensor names of a float conversion of ``converter`` that lie in one of ``scopes``."""
    optimizations, converter.optimizations = converter.optimizations, []
    try:
        data = converter.convert()
    finally:
        converter.optimizations = optimizations
    return sorted({name for name in tensor_names(data) if any(scope.search(name) for scope in scopes)})


def _full_integer(converter, representative, float_scopes=()):
    """The int8 TFLite file of ``converter``: int8 weights and activations where TFLite has an int8 kernel
    (float elsewhere), ranges calibrated on ``representative`` clips, ``INT8_FLOAT_OPS`` and the ops of
    ``float_scopes`` (``_float_scopes``) kept float; the uint8 frames stay the input.

    The representation-flow layers stay float: their flow and dual fields are re-quantized at every one
    of their iterations with one scale per map, and on the demo model that rounding changed the top-1 of
    2 of 8 test clips (docs/deploy.md)."""
    import tensorflow as tf

    def clips():
        for index in range(len(next(iter(representative.values())))):
            yield {name: value[index : index + 1] for name, value in representative.items()}

    denylisted_nodes = _tensors_in_scopes(converter, float_scopes) if float_scopes else []
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.representative_dataset = clips
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(INT8_FLOAT_OPS),
                                                            denylisted_nodes=denylisted_nodes)
    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=clips,
                                                         debug_options=options)
    return debugger.get_nondebug_quantized_model()


def _quantized_ops(data, quantize):
    """``{op name: count}`` of what the converter left float in the TFLite file ``data``: ops with float32
    weights (``dynamic_int8``) or computing in float32 (``int8``). A ``dynamic_int8`` file with no int8
    weight at all is refused (``ValueError``): it is the float model under a quantized name."""
    if quantize == "dynamic_int8":
        weights = weight_summary(data)
        if weights["int8_bytes"] == 0:
            raise ValueError(f"`quantize` must leave some weights int8, but TFLite's dynamic-range quantization "
                             f"leaves all of this model's weights float32: {describe(weights['float'])} "
                             f"({weights['float_bytes'] / 1e6:.2f} MB); quantize 'float16' (halves them) or 'none'; "
                             "nothing was written. Received: quantize='dynamic_int8'")
        return weights["float"]
    return float_ops(data) if quantize == "int8" else {}


def _timed(predictor, inputs):
    """(logits (N, K), median milliseconds per clip) of ``predictor`` on ``inputs``, one clip at a time."""
    logits, seconds = [], []
    for index in range(len(next(iter(inputs.values())))):
        one = {name: value[index : index + 1] for name, value in inputs.items()}
        start = time.perf_counter()
        logits.append(predictor(one))
        seconds.append(time.perf_counter() - start)
    return np.concatenate(logits), 1000 * statistics.median(seconds[1:] or seconds)


def _softmax(logits):
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _check(model, info, folder, export_format, quantize, clips, kept_float, representative_clips):
    """Run the written artifact and the Keras model on ``clips``; refuse a disagreement."""
    keras_logits, keras_ms = _timed(KerasPredictor(info, folder, model), clips)
    path = folder / MODEL_FILES[export_format]
    artifact = {"keras": lambda: KerasPredictor(info, path, _load_keras(path)),
                "saved_model": lambda: SavedModelPredictor(info, path),
                "tflite": lambda: TFLitePredictor(info, path)}[export_format]()
    logits, milliseconds = _timed(artifact, clips)
    difference = float(np.abs(_softmax(logits) - _softmax(keras_logits)).max())
    agreement = float(np.mean(logits.argmax(1) == keras_logits.argmax(1)))
    tolerance = PROBABILITY_TOLERANCE[quantize]
    if tolerance is not None and (difference > tolerance or agreement < 1.0):
        raise UserError(f"the {export_format} export ({quantize}) disagrees with the Keras model: max |dprob| "
                        f"{difference:.2e} (allowed {tolerance:.0e}), top-1 agreement {agreement:.3f} on "
                        f"{len(logits)} clips; nothing was written")
    size = sum(file.stat().st_size for file in folder.rglob("*") if file.is_file())
    return ExportReport(export_format, quantize, "", size, len(logits), difference, agreement, milliseconds, keras_ms,
                        kept_float, representative_clips)


def _load_keras(path):
    from kerasflow.model_io import load_model_file

    return load_model_file(path)


def _check_options(export_format, quantize):
    """Refuse a format or quantization kerasflow does not write, or a quantization of another format than
    TFLite (``ValueError``)."""
    if export_format not in FORMATS:
        raise ValueError(f"`export_format` must be one of {FORMATS}. Received: export_format={export_format!r}")
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"`quantize` must be one of {QUANTIZATIONS}. Received: quantize={quantize!r}")
    if quantize != "none" and export_format != "tflite":
        raise ValueError(f"`quantize` applies to the tflite format only; it must be 'none' for {export_format}. "
                         f"Received: quantize={quantize!r}")


def export(model, info, export_format, out, *, quantize="none", overwrite=False, clips, source, run_folder=None,
           frame_size, representative=None):
    """Write ``model`` (a trained Keras model, its ``ModelInfo`` ``info``) to the export folder ``out``.

    ``clips``: ``{input name: uint8 (N, ...)}`` to check the artifact on; ``representative``: clips of the
    same form that ``quantize="int8"`` calibrates on (its training clips). Returns an ``ExportReport``.
    The folder is written as ``.<name>.<pid>.tmp`` beside ``out`` and renamed into place; the SavedModel
    a TFLite file is converted from goes to the system's temporary folder, or beside ``out`` when that
    lacks room. A full disk or an unwritable folder is one ``UserError`` line; so is a disk with less
    room than the weights need, before any work.
    """
    _check_options(export_format, quantize)
    if quantize == "int8" and not representative:
        raise ValueError("`representative` must hold the training clips int8 calibrates on. Received: "
                         f"representative={representative!r}")
    import tensorflow as tf

    from kerasflow.export.serving import serving_model

    out = Path(out)
    if out.exists() and not overwrite:
        raise UserError(f"the export folder {out} exists; overwrite it, or export to another folder")
    if out.exists() and not (out / METADATA_FILE).is_file():
        raise UserError(f"{out} exists and is not an export folder; it is not replaced: export to another folder")
    serving = serving_model(model, info)
    weights = 4 * sum(int(np.prod(weight.shape)) for weight in serving.weights)  # float32
    needed = int(weights * ARTIFACT_SHARE[quantize if export_format == "tflite" else "none"])
    work = intermediate = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporary_folders(out.parent)
        if export_format == "tflite":
            system = Path(tempfile.gettempdir())
            remove_stale_temporary_folders(system)
            room = shutil.disk_usage(system).free >= 2 * weights
            intermediate = (system / f".kerasflow-export.{os.getpid()}.tmp" if room
                            else out.parent / f".{out.name}-saved_model.{os.getpid()}.tmp") / "saved_model"
            needed += 0 if room else weights
        full = disk_full_error(out, needed)
        if full is not None:
            raise full
        work = out.parent / f".{out.name}.{os.getpid()}.tmp"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        kept_float = _write_artifact(serving, export_format, quantize, work, representative, intermediate)
        calibration = len(next(iter(representative.values()))) if quantize == "int8" else 0
        report = _check(model, info, work, export_format, quantize, clips, kept_float, calibration)
        write_json(work / METADATA_FILE, {**metadata(info, export_format, quantize, source, run_folder, frame_size),
                                          "check": dataclasses.asdict(report)})
        _replace(work, out)
    except (OSError, tf.errors.OpError) as error:
        if intermediate is not None and str(intermediate.parent) in str(error):  # the SavedModel TFLite needs
            user_error = write_error(intermediate, error, weights)
        else:
            user_error = write_error(out, error, needed)
        if user_error is None and isinstance(error, OSError):
            user_error = UserError(f"cannot write {out}: {error.strerror}; export to another folder")
        if user_error is None:
            raise
        raise user_error from None
    finally:
        for folder in (work, intermediate.parent if intermediate is not None else None):
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
    report.folder = str(out)
    return report


def _replace(work, out):
    """Put the finished folder ``work`` at ``out``, replacing an older export there."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.{os.getpid()}.old")
        os.replace(out, old)
    os.replace(work, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

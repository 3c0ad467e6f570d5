"""python -m kerasflow.export on the tiny trained run: each of its models (the two-stream model, its RGB
stream model, its representation-flow model) and an optical-flow model in every format; parity with
the Keras model recomputed here; builtin TFLite ops only; predict and evaluate agreeing across the run,
the SavedModel and the TFLite file; every refusal in one line with nothing half-written."""

import collections
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from cli_testing import DEMO, SIZE, assert_one_error_line, call, tiny_overrides
from model_testing import softmax

from kerasflow import evaluate, predict
from kerasflow.config import load_recipe
from kerasflow.data.pipeline import make_dataset
from kerasflow.export import __main__ as export_command
from kerasflow.export import writer
from kerasflow.export.predictors import load_predictor, read_info
from kerasflow.model_io import load_model_file, read_model_info, save_model
from kerasflow.models import build_stage_models
from kerasflow.training.run_folder import model_info

CLIP = f"[1, 4, {SIZE}, {SIZE}, 3]"  # how an export's error lines print the tiny run's clip inputs
MODELS = {"two_stream": "model.keras", "rgb": "stages/rgb_stage2/best.keras", "flow": "stages/flow/best.keras"}


@pytest.fixture(scope="module")
def optical_flow_model(tiny_run, tmp_path_factory):
    """An untrained two-stream TV-L1 model (RGB clip + flow stack inputs), saved as kerasflow.fit saves."""
    folder = tmp_path_factory.mktemp("optical")
    recipe = load_recipe(DEMO, tiny_overrides(folder) + ["model.kind=two_stream_optical_flow"])
    class_names = json.loads((tiny_run / "classes.json").read_text())
    model = build_stage_models(recipe.model, recipe.data, len(class_names))["joint"]
    save_model(model, str(folder / "joint.keras"), model_info(recipe, class_names, "joint"))
    return folder / "joint.keras"


@pytest.fixture(scope="module")
def exported(tiny_run, optical_flow_model, tmp_path_factory):
    """``exported(model, format, quantize="none", capsys=) -> (stdout, folder)``: the export command's
    output and folder, each export made once per module."""
    root, made = tmp_path_factory.mktemp("exports"), {}

    def make(model, export_format, quantize="none", capsys=None):
        key = (model, export_format, quantize)
        if key not in made:
            source = optical_flow_model if model == "optical_flow" else tiny_run / MODELS[model]
            out = root / f"{model}-{export_format}-{quantize}"
            argv = [str(source), "--format", export_format, "--out", str(out), "--quantize", quantize]
            if model != "optical_flow":  # its test videos have no TV-L1 folders: checked on random stacks
                argv += ["--recipe", str(tiny_run / "recipe.yaml")]
            status, stdout, err = call(export_command, argv, capsys)
            assert status == 0, err
            made[key] = (stdout, out)
        return made[key]

    return make


def held_out_inputs(index, inputs):
    """``({input name: uint8 (N, ...)}, labels)`` of every test video, decoded by the test pipeline."""
    batches = list(make_dataset(index, inputs, batch_size=len(index)))
    return ({name: np.concatenate([batch[0][name].numpy() for batch in batches]) for name in batches[0][0]},
            np.concatenate([batch[1].numpy() for batch in batches]))


FORMATS = [("two_stream", "keras"), ("two_stream", "saved_model"), ("two_stream", "tflite"),
           ("rgb", "saved_model"), ("rgb", "tflite"), ("flow", "saved_model"), ("flow", "tflite"),
           ("optical_flow", "saved_model"), ("optical_flow", "tflite")]


@pytest.mark.parametrize("model, export_format", FORMATS)
def test_export_matches_the_keras_model(model, export_format, exported, tiny_run, optical_flow_model,
                                        tiny_held_out, capsys):
    stdout, folder = exported(model, export_format, capsys=capsys)
    source = optical_flow_model if model == "optical_flow" else tiny_run / MODELS[model]
    info = read_model_info(source)
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["format"] == export_format and metadata["kind"] == info.kind
    assert metadata["class_names"] == json.loads((tiny_run / "classes.json").read_text())
    assert [(spec["name"], spec["shape"], spec["dtype"]) for spec in metadata["inputs"]] == \
        [(spec.name, [1, *spec.shape], "uint8") for spec in info.inputs]
    assert metadata["outputs"] == {"logits": [1, 3], "probs": [1, 3]}
    row = next(line for line in stdout.splitlines() if line.startswith(export_format))
    assert metadata["check"]["max_probability_difference"] <= 1e-4 and metadata["check"]["top1_agreement"] == 1.0
    assert f"{metadata['check']['bytes'] / 1e6:.2f} MB" in row
    assert not [path for path in folder.parent.iterdir() if path.name.startswith(".")]  # no temporaries left
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask  # as any folder the user makes

    # Parity recomputed here, on every test video (the TV-L1 model on random stacks: the test videos
    # have no flow folders).
    predictor = load_predictor(folder if export_format != "tflite" else folder / "model.tflite")
    assert predictor.info.class_names == info.class_names
    if model == "optical_flow":
        rng = np.random.default_rng(1)
        clips = {spec.name: rng.integers(0, 256, (4, *spec.shape), dtype=np.uint8) for spec in info.inputs}
    else:
        clips, _ = held_out_inputs(tiny_held_out, info.inputs)
    expected = np.asarray(load_model_file(source).predict(clips, batch_size=2, verbose=0), np.float64)
    got = np.asarray(predictor(clips), np.float64)
    assert got.shape == expected.shape
    assert np.abs(softmax(got) - softmax(expected)).max() <= 1e-4
    np.testing.assert_array_equal(got.argmax(1), expected.argmax(1))


def tflite_ops(path):
    from ai_edge_litert.interpreter import Interpreter

    return {op["op_name"] for op in Interpreter(model_path=str(path))._get_ops_details()}


@pytest.mark.parametrize("model", ["two_stream", "optical_flow"])
def test_tflite_uses_builtin_ops_only(model, exported, capsys):
    _, folder = exported(model, "tflite", capsys=capsys)
    ops = tflite_ops(folder / "model.tflite")
    assert {"CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= ops
    assert not [op for op in ops if op.startswith("Flex") or op in ("CUSTOM", "DELEGATE")]
    assert b"Flex" not in (folder / "model.tflite").read_bytes()
    if model == "two_stream":  # the unrolled ConvLSTM and flow iterations: no loop or TensorList op
        assert not ops & {"WHILE", "IF", "CALL_ONCE"}


def test_a_convlstm2d_in_an_older_model_is_unrolled_for_serving():
    # Models saved before kerasflow's own ConvLSTM hold keras.layers.ConvLSTM2D, a loop TFLite lacks.
    from kerasflow.export.serving import _prepared

    inputs = keras.Input((3, 4, 4, 2))
    _, _, cell = keras.layers.ConvLSTM2D(2, 3, padding="same", return_state=True)(inputs)
    rebuilt = keras.Model.from_config(_prepared(keras.Model(inputs, cell).get_config(), batch_size=1))
    (convlstm,) = [layer for layer in rebuilt.layers if isinstance(layer, keras.layers.ConvLSTM2D)]
    assert convlstm.unroll and tuple(rebuilt.inputs[0].shape) == (1, 3, 4, 4, 2)


@pytest.mark.parametrize("quantize, tolerance", [("float16", 1e-2), ("dynamic_int8", None), ("int8", None)])
def test_quantized_tflite(quantize, tolerance, exported, tiny_run, capsys):
    stdout, folder = exported("two_stream", "tflite", quantize, capsys=capsys)
    _, plain = exported("two_stream", "tflite", capsys=capsys)
    check = json.loads((folder / "metadata.json").read_text())["check"]
    assert check["quantize"] == quantize and 0.0 <= check["top1_agreement"] <= 1.0
    assert f"{check['top1_agreement']:.3f}" in stdout
    if tolerance is not None:
        assert check["max_probability_difference"] <= tolerance and check["top1_agreement"] == 1.0
    # float16 halves the weights; int8 quarters them (the tiny model's graph is a large share).
    assert (folder / "model.tflite").stat().st_size < 0.75 * (plain / "model.tflite").stat().st_size
    if quantize == "dynamic_int8":  # what stayed float is read from the file, and said
        kept = float_weight_ops(folder / "model.tflite")
        assert check["kept_float"] == kept and kept  # the flow stream's 3-D convolutions (and, at 64 px, masks)
        assert "kept float32: the weights of these ops (no dynamic-range int8 kernel): " + \
            ", ".join(f"{name} x{count}" for name, count in sorted(kept.items())) in stdout


def tensor_types(path):
    """``[(op name, [input dtypes], [output dtypes])]`` of a TFLite file, from its interpreter."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    dtypes = {tensor["index"]: tensor["dtype"] for tensor in interpreter.get_tensor_details()}
    return [(op["op_name"], [dtypes[i] for i in op["inputs"] if i >= 0], [dtypes[i] for i in op["outputs"]])
            for op in interpreter._get_ops_details()]


def float_weight_ops(path):
    """``{op name: count}`` of the ops with a float32 constant input (one that no op writes and that is not
    a model input: a weight, a mask) of 1024 or more elements."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    tensors = {tensor["index"]: tensor for tensor in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    computed = {index for op in ops for index in op["outputs"]} | {t["index"] for t in interpreter.get_input_details()}
    found = collections.Counter()
    for op in ops:
        constants = [tensors[index] for index in op["inputs"] if index >= 0 and index not in computed]
        if any(c["dtype"] == np.float32 and np.prod(c["shape"]) >= 1024 for c in constants):
            found[op["op_name"]] += 1
    return dict(found)


def test_full_integer_tflite_takes_uint8_frames_computes_int8_and_lists_what_stays_float(exported, tiny_run,
                                                                                         tiny_held_out, capsys):
    stdout, folder = exported("two_stream", "tflite", "int8", capsys=capsys)
    check = json.loads((folder / "metadata.json").read_text())["check"]
    split = json.loads((tiny_run / "split.json").read_text())
    # the training list before any hold-out (the tiny run's classes are too small for one: validation auto)
    training_clips = len(split["train"]) + len(split.get("validation", []))
    assert check["representative_clips"] == training_clips
    assert f"int8 calibrated on {training_clips} training clips" in stdout
    ops = tensor_types(folder / "model.tflite")
    float_ops = collections.Counter(name for name, inputs, outputs in ops
                                    if name not in ("QUANTIZE", "DEQUANTIZE", "CAST")
                                    and np.float32 in [*inputs, *outputs])
    assert check["kept_float"] == dict(float_ops) and float_ops["DIV"] > 0
    # the flow layer's threshold (a clip: MINIMUM and MAXIMUM) and |grad I| (SQRT) stay float; int8 had them
    assert float_ops["MINIMUM"] > 0 and float_ops["MAXIMUM"] > 0 and float_ops["SQRT"] > 0
    assert "kept float32: these ops (no int8 TFLite kernel; DIV and the representation-flow layers on " \
        "purpose): " + \
        ", ".join(f"{name} x{count}" for name, count in sorted(float_ops.items())) in stdout
    convolutions = [(inputs, outputs) for name, inputs, outputs in ops if name in ("CONV_2D", "FULLY_CONNECTED")]
    assert convolutions and all(inputs[:2] == [np.int8, np.int8] and outputs == [np.int8]
                                for inputs, outputs in convolutions)
    predictor = load_predictor(folder)
    assert all(spec["dtype"] == "uint8" for spec in json.loads((folder / "metadata.json").read_text())["inputs"])
    clips, _ = held_out_inputs(tiny_held_out, predictor.info.inputs)
    assert predictor(clips).shape == (len(tiny_held_out), 3)


def test_int8_keeps_float_the_tflite_tensors_of_each_representation_flow_layer():
    from kerasflow.layers import RepresentationFlow

    inputs = keras.Input((3, 8, 8, 2))
    model = keras.Model(inputs, RepresentationFlow(n_iter=1, name="flow_1")(inputs))
    [scope] = writer._float_scopes(model)
    inside = ["flow_1/mul", "flow_stream_1/flow_1_1/mul", "a/flow_1_2/Sqrt;a/flow_1_2/add"]
    outside = ["flow_stream_1/flow_10/mul", "flow_stream_1/reduce_1/mul", "xflow_1/mul", "flow_stream_1/flow_1_1"]
    assert [bool(scope.search(name)) for name in inside + outside] == [True] * 3 + [False] * 4


def test_int8_needs_the_training_clips(optical_flow_model, tmp_path, capsys):
    out = tmp_path / "int8"
    status, _, err = call(export_command, [str(optical_flow_model), "--format", "tflite", "--quantize", "int8",
                                           "--out", str(out)], capsys)
    assert_one_error_line(status, err, "--quantize int8 calibrates on the model's training clips",
                          "pass --recipe")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.large
def test_dynamic_int8_that_quantizes_nothing_is_refused(tmp_path, capsys):
    # An inflated 3-D flow network is all CONV_3D, which TFLite's dynamic-range quantization leaves float:
    # the "quantized" file would be the float model (issue 24, item 11).
    recipe = load_recipe(DEMO, tiny_overrides(tmp_path) + [
        "model.kind=representation_flow", "model.flow_network=inflated_3d", "data.synthetic.frames=16",
        "data.flow_frames=13", "data.flow_stride=1"])
    model = build_stage_models(recipe.model, recipe.data, 3)["flow"]
    save_model(model, str(tmp_path / "flow.keras"), model_info(recipe, ["a", "b", "c"], "flow"))
    out = tmp_path / "exports" / "dynamic"
    status, _, err = call(export_command, [str(tmp_path / "flow.keras"), "--format", "tflite", "--quantize",
                                           "dynamic_int8", "--out", str(out), "--check-clips", "1"], capsys)
    assert_one_error_line(status, err, "--quantize dynamic_int8: --quantize must leave some weights int8, but "
                          "TFLite's dynamic-range quantization leaves all of this model's weights float32: CONV_3D x",
                          "quantize 'float16' (halves them) or 'none'; nothing was written.")
    assert list(out.parent.iterdir()) == []


def test_dynamic_int8_that_quantizes_nothing_is_a_value_error_of_quantize(monkeypatch):
    # The library words it as Keras does; the command above names --quantize.
    monkeypatch.setattr(writer, "weight_summary",
                        lambda data: {"int8_bytes": 0, "float": {"CONV_3D": 20}, "float_bytes": 2_500_000})
    with pytest.raises(ValueError) as caught:
        writer._quantized_ops(b"", "dynamic_int8")
    assert str(caught.value) == (
        "`quantize` must leave some weights int8, but TFLite's dynamic-range quantization leaves all of this "
        "model's weights float32: CONV_3D x20 (2.50 MB); quantize 'float16' (halves them) or 'none'; nothing was "
        "written. Received: quantize='dynamic_int8'")


def test_predict_and_evaluate_agree_across_run_saved_model_and_tflite(exported, tiny_run, tiny_held_out, capsys,
                                                                       tmp_path):
    _, saved_model = exported("two_stream", "saved_model", capsys=capsys)
    _, tflite = exported("two_stream", "tflite", capsys=capsys)
    models = {"run": tiny_run, "saved_model": saved_model, "tflite": tflite / "model.tflite"}
    video = tiny_held_out.items[0].source
    predictions, evaluations = {}, {}
    for name, model in models.items():
        status, out, err = call(predict, [video, "--model", str(model), "--json", "--top-k", "3"], capsys)
        assert status == 0, err
        predictions[name] = {p["class"]: p["probability"] for p in json.loads(out)["predictions"]}
        status, out, err = call(evaluate, [str(model), "--json", "--output", str(tmp_path / name)], capsys)
        assert status == 0, err
        evaluations[name] = json.loads(out)
    for name in ("saved_model", "tflite"):
        assert max(predictions[name], key=predictions[name].get) == max(predictions["run"], key=predictions["run"].get)
        for label, probability in predictions["run"].items():
            assert predictions[name][label] == pytest.approx(probability, abs=1e-4)
        for key in ("top1", "top5", "num_videos", "confusion_matrix", "per_class_accuracy"):
            assert evaluations[name][key] == evaluations["run"][key], key
    assert evaluations["run"]["num_videos"] == len(tiny_held_out)


def test_export_refusals_leave_nothing_written(exported, tiny_run, tmp_path, capsys, monkeypatch):
    _, existing = exported("rgb", "saved_model", capsys=capsys)
    rgb = str(tiny_run / MODELS["rgb"])
    before = (existing / "metadata.json").read_bytes()
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    (tmp_path / "no-model").mkdir()
    cases = [
        ([rgb, "--format", "saved_model", "--out", str(existing)], ["exists", "--overwrite"]),
        ([rgb, "--format", "saved_model", "--quantize", "float16", "--out", str(tmp_path / "q")],
         ["--quantize float16", "--format tflite"]),
        ([str(tmp_path / "no-model"), "--format", "tflite"], ["no-model", "model.keras"]),
        ([rgb, "--format", "keras", "--out", str(not_a_folder / "sub")], ["cannot write", "export to another folder"]),
    ]
    for argv, fragments in cases:
        status, _, err = call(export_command, argv, capsys)
        assert_one_error_line(status, err, *fragments)
    assert (existing / "metadata.json").read_bytes() == before

    # A model the converter cannot express in builtin ops, and a failed parity check, write nothing and
    # leave no temporary folder.
    import tensorflow as tf

    class NeedsFlex:
        def __init__(self, *args, **kwargs):
            self.target_spec = type("Spec", (), {})()

        def convert(self):
            raise tf.errors.UnimplementedError(None, None, "op Foo needs the Flex delegate")

    out = tmp_path / "exports" / "rejected"
    with monkeypatch.context() as patch:
        patch.setattr(tf.lite.TFLiteConverter, "from_saved_model", NeedsFlex)
        status, _, err = call(export_command, [rgb, "--format", "tflite", "--out", str(out)], capsys)
    assert_one_error_line(status, err, "cannot be converted to TFLite with builtin ops only", "Flex",
                          "export the saved_model format instead")
    assert not out.exists() and list(out.parent.iterdir()) == []
    monkeypatch.setitem(writer.PROBABILITY_TOLERANCE, "none", -1.0)
    status, _, err = call(export_command, [rgb, "--format", "tflite", "--out", str(out), "--check-clips", "2"],
                          capsys)
    assert_one_error_line(status, err, "disagrees with the Keras model", "nothing was written")
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_overwrite_replaces_an_export(exported, tiny_run, tmp_path, capsys):
    _, original = exported("rgb", "saved_model", capsys=capsys)
    out = tmp_path / "copy"
    shutil.copytree(original, out)
    (out / "stale.txt").write_text("from the older export")
    argv = [str(tiny_run / MODELS["rgb"]), "--format", "keras", "--out", str(out), "--overwrite", "--check-clips", "2"]
    status, _, err = call(export_command, argv, capsys)
    assert status == 0, err
    assert sorted(path.name for path in out.iterdir()) == ["metadata.json", "model.keras"]
    assert [path.name for path in tmp_path.iterdir()] == ["copy"]
    assert read_info(out).class_names == read_info(original).class_names


def test_predict_refuses_broken_export_folders(exported, tiny_held_out, tmp_path, capsys):
    _, tflite = exported("two_stream", "tflite", capsys=capsys)
    video = tiny_held_out.items[0].source
    alone = tmp_path / "alone.tflite"
    shutil.copy(tflite / "model.tflite", alone)
    broken = tmp_path / "broken"
    shutil.copytree(tflite, broken)
    (broken / "metadata.json").write_text("{not json")
    for model, fragments in ((alone, ["metadata.json", "beside it"]), (broken, ["metadata.json", "export the model"])):
        status, _, err = call(predict, [video, "--model", str(model)], capsys)
        assert_one_error_line(status, err, *fragments)


def test_default_out_is_under_saved_models(tiny_run):
    assert export_command.default_out(tiny_run / "model.keras", tiny_run, "tflite", "none") == \
        Path("saved_models") / tiny_run.name / "tflite"
    assert export_command.default_out(tiny_run / "stages/flow/best.keras", tiny_run, "tflite", "float16") == \
        Path("saved_models") / f"{tiny_run.name}-flow" / "tflite-float16"
    assert SIZE == read_model_info(tiny_run / "model.keras").inputs[0].size


def readme_client():
    """The Python client of docs/deploy.md, the page's first python block."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "deploy.md").read_text(encoding="utf-8")
    return re.search(r"```python\n(.*?)```", page, re.DOTALL).group(1)


def test_readme_client_runs_as_written_and_agrees_with_predict(exported, tiny_run, tiny_held_out, capsys):
    _, saved_model = exported("two_stream", "saved_model", capsys=capsys)
    _, tflite = exported("two_stream", "tflite", capsys=capsys)
    video = tiny_held_out.items[1].source
    code = readme_client()
    for placeholder in ("data/synthetic-motion/02_down/02_down_003.avi", "saved_models/demo-synthetic/saved_model",
                        "saved_models/demo-synthetic/tflite"):
        assert f'"{placeholder}"' in code
    code = (code.replace("data/synthetic-motion/02_down/02_down_003.avi", video)
            .replace("saved_models/demo-synthetic/saved_model", str(saved_model))
            .replace("saved_models/demo-synthetic/tflite", str(tflite)))
    namespace = {}
    exec(compile(code, "docs/deploy.md", "exec"), namespace)
    tflite_probs = namespace["probs"]
    printed = capsys.readouterr().out
    status, out, err = call(predict, [video, "--model", str(tiny_run), "--json", "--top-k", "3"], capsys)
    assert status == 0, err
    expected = {p["class"]: p["probability"] for p in json.loads(out)["predictions"]}
    class_names = json.loads((tiny_run / "classes.json").read_text())
    np.testing.assert_allclose(tflite_probs, [expected[name] for name in class_names], atol=1e-4)
    best = max(expected, key=expected.get)
    assert f"SavedModel: {best} " in printed and f"TFLite: {best} " in printed


def edited_export(source, folder, change):
    """A copy of the export folder ``source`` at ``folder`` with ``change(metadata, folder)`` applied."""
    shutil.copytree(source, folder)
    metadata = json.loads((folder / "metadata.json").read_text())
    change(metadata, folder)
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder


def _set(key, value, number=None):
    def change(metadata, folder):
        (metadata if number is None else metadata["inputs"][number])[key] = value
    return change


def _copy_model(source):
    return lambda metadata, folder: shutil.copy(source, folder / "model.tflite")


def _truncate(metadata, folder):
    data = (folder / "model.tflite").read_bytes()
    (folder / "model.tflite").write_bytes(data[: len(data) // 3])


@pytest.mark.parametrize("case, change, line", [
    ("two names for 3 outputs", _set("class_names", ["a", "b"]),
     '/metadata.json: "outputs" is {"logits": [1, 3], "probs": [1, 3]} but "class_names" holds 2 names'),
    ("4 names for 3 outputs", _set("class_names", ["a", "b", "c", "d"]), '"class_names" holds 4 names'),
    ("4 names and outputs", lambda m, f: m.update(class_names=["a", "b", "c", "d"],
                                                  outputs={"logits": [1, 4], "probs": [1, 4]}),
     "/metadata.json names 4 classes but model.tflite gives 3 scores"),
    ("integer names", _set("class_names", [1, 2, 3]), '"class_names" is [1, 2, 3], not a list of class names'),
    ("frames", _set("frames", 8, 0), "/metadata.json describes the inputs "),
    ("size", _set("size", 48, 1), f"but model.tflite takes flow_clip {CLIP} uint8, rgb {CLIP}"),
    ("stride -3", _set("stride", -3, 0), '"inputs"[0]."stride" is -3, not an integer >= 1'),
    ("stride 0", _set("stride", 0, 1), '"inputs"[1]."stride" is 0, not an integer >= 1'),
    ("sampling", _set("sampling", "bogus", 0), '"inputs"[0]."sampling" is "bogus", not one of contiguous, segments'),
    ("a list", lambda m, f: m.clear(), 'the key "format" is missing'),
    ("truncated", _truncate, "/model.tflite cannot be loaded as a TFLite model (The model is not a valid Flatbuffer"),
])
def test_an_edited_or_damaged_tflite_export_is_one_line(case, change, line, exported, tiny_held_out, tmp_path, capsys):
    _, tflite = exported("two_stream", "tflite", capsys=capsys)
    folder = edited_export(tflite, tmp_path / "edited", change)
    video = tiny_held_out.items[0].source
    for model in (folder, folder / "model.tflite"):
        status, _, err = call(predict, [video, "--model", str(model)], capsys)
        assert_one_error_line(status, err, line, "export the model again")


def test_a_tflite_file_of_another_model_is_refused_by_predict_evaluate_and_stream(exported, tiny_held_out, tmp_path,
                                                                                  capsys):
    _, tflite = exported("two_stream", "tflite", capsys=capsys)
    _, flow_only = exported("flow", "tflite", capsys=capsys)
    folder = edited_export(tflite, tmp_path / "swapped", _copy_model(flow_only / "model.tflite"))
    video = tiny_held_out.items[0].source
    expected = (f"error: {folder / 'metadata.json'} describes the inputs flow_clip {CLIP} uint8, rgb {CLIP} uint8 "
                f"but model.tflite takes flow_clip {CLIP} uint8; the metadata was "
                "edited or belongs to another model: export the model again")
    for command, argv in ((predict, [video]), (predict, ["--stream", video]), (evaluate, [])):
        status, _, err = call(command, [*argv, str(folder)] if command is evaluate else [*argv, "--model", str(folder)],
                              capsys)
        assert_one_error_line(status, err)
        assert err.strip().splitlines()[-1] == expected
    assert not (folder / "evaluations").exists()


def test_an_edited_saved_model_export_is_one_line(exported, tiny_held_out, tmp_path, capsys):
    _, saved_model = exported("two_stream", "saved_model", capsys=capsys)
    video = tiny_held_out.items[0].source
    folder = edited_export(saved_model, tmp_path / "edited", _set("frames", 8, 0))
    status, _, err = call(predict, [video, "--model", str(folder)], capsys)
    assert_one_error_line(status, err, f"describes the inputs flow_clip {CLIP} uint8, rgb [1, 8, {SIZE}, {SIZE}, 3] "
                          f"uint8 but the SavedModel takes flow_clip {CLIP} uint8, rgb {CLIP}")
    folder = edited_export(saved_model, tmp_path / "damaged", lambda m, f: (f / "saved_model.pb").write_bytes(b"x"))
    status, _, err = call(predict, [video, "--model", str(folder)], capsys)
    assert_one_error_line(status, err, f"{folder} cannot be loaded as a SavedModel", "export the model again")


FULL_DISK_SCRIPT = """
set -u
mount -t tmpfs -o size=2M tmpfs "$DISK" || exit 99
cd "$REPO"
mkdir "$DISK/.tflite.999999999.tmp" && echo stale > "$DISK/.tflite.999999999.tmp/model.tflite"
for format in saved_model tflite keras; do
  "$PYTHON" -m kerasflow.export "$RUN" --format $format --out "$DISK/$format" --check-clips 2 \\
    > "$OUT/$format.out" 2> "$OUT/$format.err"; echo $? > "$OUT/$format.status"
  ls -A "$DISK" > "$OUT/$format.ls"
done
mount -o remount,ro "$DISK"
"$PYTHON" -m kerasflow.export "$RUN" --format keras --out "$DISK/sub/x" > "$OUT/ro.out" 2> "$OUT/ro.err"
echo $? > "$OUT/ro.status"
"""


def test_export_to_a_full_disk_is_one_line_and_leaves_nothing(tiny_run, tmp_path):
    # On a 2 MB disk: the SavedModel (about 3 MB) fails while written; the TFLite file (1.3 MB) fits, its
    # intermediate SavedModel going to the system's temporary folder; then 0.7 MB are left for a model of
    # 1.0 MB of weights, refused before any work. A killed export's temporary folder is cleared.
    from cli_testing import in_private_mount_namespace
    from test_reliability import ENV

    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    env = {**ENV, "DISK": str(disk), "OUT": str(out), "REPO": str(Path(__file__).resolve().parents[1]),
           "PYTHON": sys.executable, "RUN": str(tiny_run)}
    result = in_private_mount_namespace(FULL_DISK_SCRIPT, env)
    assert result.returncode == 0, result.stderr[-2000:]
    results = {name: ((out / f"{name}.status").read_text().strip(), (out / f"{name}.err").read_text(),
                      (out / f"{name}.ls").read_text().split()) for name in ("saved_model", "tflite", "keras")}
    status, err, listing = results["saved_model"]
    assert status == "2" and "Traceback" not in err, err[-2000:]
    assert re.fullmatch(rf"error: cannot write {disk / 'saved_model'}: the disk is full \(it needs about 1\.0 MB, "
                        r"\d\.\d MB free\); free some space and run the same command again \(what was written before "
                        r"is intact\)", err.strip().splitlines()[-1]), err[-2000:]
    assert listing == []  # the stale temporary folder of a killed export went too
    status, err, listing = results["tflite"]
    assert status == "0", err[-2000:]
    assert listing == ["tflite"]
    # No TensorFlow or LiteRT C++ log line (start-up notices, the XNNPACK delegate's) among its output.
    assert not [line for line in err.splitlines() if NATIVE_LOG.match(line)], err[-2000:]
    status, err, listing = results["keras"]
    assert re.fullmatch(rf"error: cannot write {disk / 'keras'}: the disk is full \(it needs about 1\.0 MB, 0\.\d MB "
                        r"free\); .*", err.strip().splitlines()[-1]), err[-2000:]
    assert status == "2" and listing == ["tflite"]
    # A read-only disk: the folder to make writable is the one that exists, not sub/ that was to be made.
    assert (out / "ro.status").read_text().strip() == "2"
    assert (out / "ro.err").read_text().strip().splitlines()[-1] == (
        f"error: cannot write {disk / 'sub' / 'x'}: Read-only file system; make {disk} writable or choose another "
        "folder")


NATIVE_LOG = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} |To enable the following|INFO: Created "
                        r"TensorFlow Lite)")


def test_export_help_starts_no_tensorflow():
    code = ("import sys; from kerasflow.export.__main__ import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n"
            "    print('tensorflow imported:', 'tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.startswith("usage: python -m kerasflow.export")
    assert result.stdout.splitlines()[-1] == "tensorflow imported: False"


def test_evaluate_of_an_export_writes_beside_it_and_a_folder_without_metadata_says_so(exported, tiny_held_out,
                                                                                      tmp_path, capsys):
    _, tflite = exported("two_stream", "tflite", capsys=capsys)
    shipped = tmp_path / "shipped" / "tflite"
    shutil.copytree(tflite, shipped)
    files = {path.name: path.read_bytes() for path in shipped.iterdir()}
    status, out, err = call(evaluate, [str(shipped), "--json"], capsys)
    assert status == 0, err
    report = json.loads(out)
    written = Path(report["evaluation_json"])
    assert written.parent.parent == tmp_path / "shipped" / "evaluations" and written.parent.name.startswith(
        "tflite-test-synthetic-") and written.is_file()
    assert {path.name: path.read_bytes() for path in shipped.iterdir()} == files  # the shipped export as it was

    (shipped / "metadata.json").unlink()
    status, _, err = call(predict, [tiny_held_out.items[0].source, "--model", str(shipped)], capsys)
    assert_one_error_line(status, err, f"{shipped} holds model.tflite but no metadata.json",
                          "copy the whole folder again or export the model again")


def test_options_the_writer_refuses_are_value_errors_and_one_line_in_the_command(tmp_path, capsys):
    refused = {("onnx", "none"): r"^`export_format` must be one of \('keras', 'saved_model', 'tflite'\)\. "
                                 r"Received: export_format='onnx'$",
               ("saved_model", "float16"): r"^`quantize` applies to the tflite format only; it must be 'none' for "
                                           r"saved_model\. Received: quantize='float16'$"}
    for (export_format, quantize), message in refused.items():
        with pytest.raises(ValueError, match=message):
            writer.export(None, None, export_format, tmp_path / "out", quantize=quantize, clips={}, source=None,
                          frame_size=32)
    status, _, err = call(export_command, [str(tmp_path / "m.keras"), "--format", "saved_model", "--quantize",
                                           "float16"], capsys)
    assert_one_error_line(status, err, "--quantize float16 applies to --format tflite; leave it out for saved_model")
    assert list(tmp_path.iterdir()) == []

"""``model.init_from``: a run starts from other runs' streams, layer by layer; the classifier is new when
the classes differ and kept when they match; a source that does not fit stops the run in one line."""

import json

import numpy as np
import pytest
from cli_testing import DEMO, assert_one_error_line, call, tiny_overrides

import kerasflow.fit_command as fit_module
from kerasflow.config import load_recipe, recipe_from_dict, recipe_to_dict
from kerasflow.data.feeds import recipe_indexes
from kerasflow.errors import UserError
from kerasflow.model_io import load_model_file
from kerasflow.models.common import walk_layers
from kerasflow.models.stage_rules import trainable_layers
from kerasflow.training.init_from import initialize_from
from kerasflow.training.trainer import train_recipe

# The flow run and the two-stream run built from it have no representation-flow layer: a cheap flow stage.
NO_FLOW_LAYERS = "model.flow.num_layers=0"


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """``(rgb run, flow run)``: a finished tiny RGB run and representation-flow run on the same 3 classes."""
    folder = tmp_path_factory.mktemp("sources")
    runs = {"rgb": folder / "rgb", "flow": folder / "flow"}
    for options in (["model.kind=rgb"], ["model.kind=representation_flow", NO_FLOW_LAYERS]):
        kind = "rgb" if options == ["model.kind=rgb"] else "flow"
        recipe = load_recipe(DEMO, tiny_overrides(folder) + options + [f"runtime.output_dir={runs[kind]}"])
        train_recipe(recipe, log=lambda *_: None)
    return runs["rgb"], runs["flow"]


def weights_by_path(model):
    """``{layer path: [arrays]}`` of every layer of ``model`` that holds weights."""
    return {path: layer.get_weights() for path, layer in walk_layers(model) if layer.weights}


def same(first, second):
    return len(first) == len(second) and all(np.array_equal(a, b) for a, b in zip(first, second))


def started_models(recipe):
    """The freshly built models of ``recipe`` started from its ``model.init_from``, their class names, and
    the lines ``initialize_from`` logged."""
    class_names = recipe_indexes(recipe.data)[0].class_names
    models = recipe.kind.build_models(recipe.model, recipe.data, len(class_names))
    lines = []
    initialize_from(recipe, models, class_names, log=lines.append)
    return models, class_names, lines


def test_fine_tune_on_other_classes_replaces_the_classifier_only(sources, tmp_path):
    rgb_run, _ = sources
    source = load_model_file(rgb_run / "model.keras")
    source_classes = json.loads((rgb_run / "classes.json").read_text())
    recipe = load_recipe(DEMO, tiny_overrides(tmp_path) + [
        "model.kind=rgb", "data.synthetic.classes=2", f"model.init_from={rgb_run}"])

    # Step 0: every layer of the stream is the source's, the classifier is new and shaped for 2 classes.
    models, class_names, lines = started_models(recipe)
    assert len(class_names) == 2 and len(source_classes) == 3
    started, held = weights_by_path(models["rgb"]), weights_by_path(source)
    assert set(started) == set(held) and len(started) > 20
    differing = sorted(path for path in started if not same(started[path], held[path]))
    assert differing == ["rgb_classifier"]
    assert started["rgb_classifier"][0].shape == (8, 2) and held["rgb_classifier"][0].shape == (8, 3)
    model_file = rgb_run / "model.keras"
    assert lines == [
        f"model.init_from: this run's 2 classes differ from the 3 of {model_file}, so these start new: rgb_classifier",
        f"model.init_from: loaded rgb_stream from {model_file}; not loaded: rgb_classifier (new: other classes)",
    ]

    # Trained: the layers no RGB stage trains are still the source's; the ones they train have moved.
    log = []
    train_recipe(recipe, log=log.append)
    assert lines[1] in log
    tuned = load_model_file(tmp_path / "run" / "model.keras")
    assert tuned.output.shape == (None, 2)
    trained = set(trainable_layers(tuned, "rgb_stage1")) | set(trainable_layers(tuned, "rgb_stage2"))
    tuned_weights = weights_by_path(tuned)
    frozen = [path for path in tuned_weights if path not in trained]
    assert len(frozen) > 20 and all(same(tuned_weights[path], held[path]) for path in frozen)
    assert not same(tuned_weights["rgb_stream/convlstm"], held["rgb_stream/convlstm"])

    # Resumed inside rgb_stage2 (as if killed after its epoch): init_from runs again, then the run's own
    # weights go over it, so the stage ends where it was, not at the source.
    run, stage2 = tmp_path / "run", tmp_path / "run" / "stages" / "rgb_stage2"
    tuned.load_weights(stage2 / "final.weights.h5")
    before = weights_by_path(tuned)
    best = json.loads((stage2 / "best.keras.json").read_text())["val_accuracy"]
    (run / "state.json").write_text(json.dumps(
        {"completed": ["rgb_stage1"], "current": {"stage": "rgb_stage2", "epoch": 1, "best": best}}))
    (stage2 / "final.weights.h5").unlink()
    resumed = []
    train_recipe(recipe, log=resumed.append)
    assert lines[1] in resumed and "rgb_stage2: resuming after epoch 1 of 1" in resumed
    tuned.load_weights(stage2 / "final.weights.h5")
    after = weights_by_path(tuned)
    assert all(same(after[path], before[path]) for path in before)
    assert not same(after["rgb_stream/convlstm"], held["rgb_stream/convlstm"])


def test_a_two_stream_run_starts_from_an_rgb_run_and_a_flow_run(sources, tmp_path):
    rgb_run, flow_run = sources
    rgb_file, flow_file = rgb_run / "model.keras", flow_run / "model.keras"
    rgb_source, flow_source = load_model_file(rgb_file), load_model_file(flow_file)
    # A run folder and a model file: each names the same model.keras.
    recipe = load_recipe(DEMO, tiny_overrides(tmp_path) + [
        NO_FLOW_LAYERS, f"model.init_from=[{rgb_run}, {flow_file}]"])
    models, _, lines = started_models(recipe)
    joint = weights_by_path(models["joint"])
    expected = {**weights_by_path(rgb_source), **weights_by_path(flow_source)}
    # Same classes: the streams' own classifiers are kept too; only the fusion classifier is new.
    for model in (models["rgb"], models["flow"]):
        for path, weights in weights_by_path(model).items():
            assert same(weights, expected[path]), path
    assert sorted(path for path in joint if path not in expected) == ["fusion_classifier"]
    assert all(same(joint[path], expected[path]) for path in joint if path != "fusion_classifier")
    assert lines == [f"model.init_from: loaded rgb_stream from {rgb_file}, flow_stream from {flow_file}, "
                     f"rgb_classifier from {rgb_file}, flow_classifier from {flow_file}; "
                     "not loaded: fusion_classifier (new)"]

    only_flow = load_recipe(DEMO, tiny_overrides(tmp_path) + [
        NO_FLOW_LAYERS, f"model.init_from=[{rgb_run}, {flow_run}]", "model.init_streams=[flow]"])
    models, _, lines = started_models(only_flow)
    rgb = weights_by_path(models["rgb"])
    assert not same(rgb["rgb_stream/stem/conv1"], expected["rgb_stream/stem/conv1"])
    assert same(weights_by_path(models["flow"])["flow_stream/stem/conv1"], expected["flow_stream/stem/conv1"])
    assert lines == [f"model.init_from: loaded flow_stream from {flow_file}, flow_classifier from {flow_file}; "
                     "not loaded: rgb_stream (not in model.init_streams), rgb_classifier (new), "
                     "fusion_classifier (new)"]


def test_init_keys_are_paths_and_round_trip_through_the_saved_recipe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe(DEMO, ["model.init_from=[runs/rgb, flow.keras]", "model.init_streams=[flow]"])
    assert recipe.model.init_from == (str(tmp_path / "runs" / "rgb"), str(tmp_path / "flow.keras"))
    assert recipe.model.init_streams == ("flow",)
    assert recipe_from_dict(recipe_to_dict(recipe)) == recipe  # a resumed run compares the saved recipe
    assert load_recipe(DEMO, ["model.init_from=runs/rgb"]).model.init_from == (str(tmp_path / "runs" / "rgb"),)


@pytest.mark.parametrize("options, message", [
    (["model.init_from=[]"], "model.init_from = [] is not allowed: expected a run folder or .keras model file, "
                             "a list of them, or null"),
    (["model.init_from=run", "model.init_streams=[rgb, rgb]"],
     "model.init_streams = ['rgb', 'rgb'] is not allowed: expected a list of the streams model.kind two_stream "
     "has, each once: rgb, flow"),
    (["model.kind=rgb", "model.init_from=run", "model.init_streams=[flow]"],
     "model.init_streams = ['flow'] is not allowed: expected a list of the streams model.kind rgb has, each once: rgb"),
])
def test_init_keys_are_checked_with_the_recipe(options, message):
    with pytest.raises(UserError) as error:
        load_recipe(DEMO, options)
    assert str(error.value) == f"{DEMO}: {message}"


@pytest.mark.parametrize("options, fragments", [
    (["model.kind=rgb", "model.convlstm_units=16", "model.init_from={rgb}"],
     ["model.init_from: {rgb}/model.keras does not fit this recipe's model: layer rgb_stream/convlstm has weights "
      "[(3, 3, 64, 32), (3, 3, 8, 32), (32,)] there and [(3, 3, 64, 64), (3, 3, 16, 64), (64,)] here"]),
    (["model.kind=representation_flow", "model.init_from={flow}"],  # the source has no flow block
     ["layer flow_stream/flow_block has weights none (no such layer) there"]),
    (["model.init_from={rgb}", "model.init_streams=[flow]"],
     ["model.init_streams asks for the flow stream but none is in {rgb}/model.keras"]),
    (["model.kind=representation_flow", NO_FLOW_LAYERS, "model.init_from={rgb}"],
     ["model.init_from: no stream of model.kind representation_flow (flow_stream) is in {rgb}/model.keras"]),
    (["model.init_from={rgb}/missing"], ["model.init_from: model '{rgb}/missing' does not exist"]),
    (["model.init_streams=[rgb]"], ["model.init_streams is only read with model.init_from"]),
])
def test_a_source_that_does_not_fit_is_one_line_and_leaves_no_folder(sources, tmp_path, capsys, options, fragments):
    rgb_run, flow_run = sources
    argv = [str(DEMO)] + [f"--set={option}" for option in tiny_overrides(tmp_path) + options]
    status, _, err = call(fit_module, [arg.format(rgb=rgb_run, flow=flow_run) for arg in argv], capsys)
    assert_one_error_line(status, err, *(fragment.format(rgb=rgb_run, flow=flow_run) for fragment in fragments))
    assert not (tmp_path / "run").exists()

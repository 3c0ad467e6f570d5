"""Recipe schema: shipped recipes, one-line errors, --set overrides, save/load round trips."""

import copy
import os
from pathlib import Path

import pytest
import yaml

from kerasflow.config import (
    Recipe,
    load_recipe,
    recipe_from_dict,
    recipe_to_dict,
    save_recipe,
)
from kerasflow.errors import UserError

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
PAPER_RECIPES = {"gtea61": 2, "egtea": 1, "hmdb51": 1}


def minimal(kind="two_stream"):
    """The smallest valid recipe mapping for ``kind`` (defaults everywhere else)."""
    stage_names = {"rgb": ["rgb_stage1", "rgb_stage2"], "representation_flow": ["flow"],
                   "optical_flow": ["flow"]}.get(kind, ["rgb_stage1", "rgb_stage2", "flow", "joint"])
    return {
        "data": {"dataset": "folder", "root": "videos"},
        "model": {"kind": kind},
        "stages": [{"name": name, "epochs": 2, "optimizer": "adam", "learning_rate": 1e-3}
                   for name in stage_names],
        "runtime": {"output_dir": "runs/x"},
    }


def error_of(raw, source="r.yaml"):
    with pytest.raises(UserError) as caught:
        recipe_from_dict(raw, source=source)
    message = str(caught.value)
    assert "\n" not in message
    return message


def write(tmp_path, raw, name="recipe.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Shipped recipes


@pytest.mark.parametrize("name", sorted(PAPER_RECIPES))
def test_paper_recipes_carry_section_3a_settings(name):
    recipe = load_recipe(RECIPES / f"{name}.yaml")
    assert recipe.data.dataset == name and recipe.data.split == PAPER_RECIPES[name]
    assert (recipe.data.frame_size, recipe.data.rgb_frames, recipe.data.flow_frames) == (224, 25, 16)
    assert (recipe.model.kind, recipe.model.backbone) == ("two_stream", "resnet34")
    assert (recipe.model.flow.num_layers, recipe.model.flow.iterations) == (2, 20)
    assert (recipe.model.flow.trainable, recipe.model.flow.learning_rate_scale, recipe.model.flow.weight_decay) == (
        (0, 1, 1, 1, 1), 0.01, None)  # the flow group takes the stage's decay, as the representation-flow code's
    assert (recipe.data.flow_sampling, recipe.data.flow_stride, recipe.data.validation) == ("contiguous", 2, "test")
    assert recipe.model.weights == "imagenet" and recipe.model.stream_weights("flow") == ("resnet34", "imagenet")
    assert [s.name for s in recipe.stages] == ["rgb_stage1", "rgb_stage2", "flow", "joint"]
    rgb1, rgb2, flow, joint = recipe.stages
    assert (rgb1.epochs, rgb1.optimizer, rgb1.learning_rate, rgb1.epsilon, rgb1.weight_decay) == (
        200, "adam", 1e-3, 1e-4, 4e-5)
    assert rgb1.schedule.milestones == [25, 75, 150] and rgb1.schedule.gamma == 0.1
    assert (rgb2.epochs, rgb2.learning_rate, rgb2.schedule.milestones) == (150, 1e-4, [25, 75])
    assert (flow.epochs, flow.optimizer, flow.learning_rate, flow.momentum, flow.weight_decay) == (
        750, "sgd", 1e-3, 0.9, 5e-4)
    assert flow.schedule.milestones == [150, 300, 500] and flow.schedule.gamma == 0.5
    assert (joint.epochs, joint.optimizer, joint.learning_rate, joint.flow_learning_rate) == (
        250, "sgd", 1e-2, 1e-4)
    assert (joint.schedule.type, joint.schedule.gamma) == ("exponential", 0.99)
    assert [recipe.batch_size_for(s) for s in recipe.stages] == [32, 32, 16, 32]
    # Learning rates the schedules give (0-based epochs; multistep decays at the milestone epoch).
    assert rgb1.learning_rate_at(24) == pytest.approx(1e-3)
    assert rgb1.learning_rate_at(25) == pytest.approx(1e-4)
    assert rgb1.learning_rate_at(199) == pytest.approx(1e-6)
    assert flow.learning_rate_at(500) == pytest.approx(1e-3 * 0.5 ** 3)
    assert joint.learning_rate_at(100) == pytest.approx(1e-2 * 0.99 ** 100)


def test_demo_recipe_is_small_synthetic_two_stream():
    recipe = load_recipe(RECIPES / "demo.yaml")
    assert recipe.data.dataset == "synthetic"
    assert recipe.data.root == os.path.abspath("data/synthetic-motion")
    assert recipe.data.synthetic.classes == 4 and recipe.data.frame_size == 64
    assert (recipe.data.rgb_frames, recipe.data.flow_frames) == (8, 8)
    assert (recipe.model.backbone, recipe.model.weights) == ("tiny", None)
    assert (recipe.model.flow.num_layers, recipe.model.flow.iterations) == (1, 10)  # docs/motion-learning.md
    assert all(s.optimizer == "adam" for s in recipe.stages) and sum(s.epochs for s in recipe.stages) <= 60
    assert recipe.data.random_flip is False and recipe.model.flow.position == 1
    assert recipe.data.validation == "auto"  # a hold-out only when every class keeps enough training clips
    assert recipe.runtime.output_dir == os.path.abspath("runs/demo-synthetic")


def test_defaults_are_filled_in():
    recipe = recipe_from_dict(minimal())
    assert (recipe.data.split, recipe.data.frame_size, recipe.data.batch_size) == (1, 224, 32)
    assert (recipe.data.on_bad_video, recipe.data.flow_stack, recipe.data.flow_root) == ("skip", 5, None)
    assert (recipe.model.backbone, recipe.model.flow.position, recipe.model.rgb_dropout) == (
        "resnet34", 2, 0.7)
    stage = recipe.stages[0]
    assert (stage.epsilon, stage.momentum, stage.schedule.type) == (1e-7, None, "constant")
    assert stage.learning_rate_at(10) == 1e-3
    assert (recipe.runtime.seed, recipe.runtime.distribution, recipe.runtime.mixed_precision) == (
        0, "none", False)


# ---------------------------------------------------------------------------------------------
# One-line errors


def test_unknown_key_names_full_path_and_closest_key():
    raw = minimal()
    raw["data"]["rgb_frame"] = 10
    assert error_of(raw) == "r.yaml: unknown key data.rgb_frame; did you mean data.rgb_frames?"
    raw = minimal()
    raw["stages"][2]["learnig_rate"] = 1
    assert "unknown key stages[2].learnig_rate; did you mean stages[2].learning_rate?" in error_of(raw)
    raw = minimal()
    raw["runtim"] = {}
    assert "unknown key runtim; did you mean runtime?" in error_of(raw)
    raw = minimal()
    raw["model"]["zzz"] = 1
    assert "unknown key model.zzz; valid keys: kind, backbone, flow_backbone, weights" in error_of(raw)


@pytest.mark.parametrize("section, key, value, fragment", [
    ("data", "split", 5, "data.split = 5 is not allowed: expected 1 (folder has 1 split)"),
    ("data", "frame_size", "big", "data.frame_size = 'big' is not allowed: expected an integer >= 32"),
    ("data", "batch_size", 0, "data.batch_size = 0 is not allowed: expected an integer >= 1"),
    ("data", "rgb_frames", 2.5, "data.rgb_frames = 2.5 is not allowed: expected an integer >= 1"),
    ("data", "rgb_frames", True, "data.rgb_frames = True is not allowed: expected an integer"),
    ("data", "on_bad_video", "skp", "data.on_bad_video = 'skp' is not allowed: expected one of "
                                    "skip, fail (did you mean skip?)"),
    ("data", "dataset", "egtea2", "expected one of gtea61, egtea, hmdb51, folder, synthetic"),
    ("data", "root", 3, "data.root = 3 is not allowed: expected a path"),
    ("data", "flow_root", 3, "data.flow_root = 3 is not allowed: expected a path or null"),
    ("model", "kind", "twostream", "model.kind = 'twostream' is not allowed: expected one of "
                                    "two_stream, rgb"),
    ("model", "backbone", "resnet152", "model.backbone = 'resnet152' is not allowed"),
    ("model", "flow", {"num_layers": 4}, "model.flow.num_layers = 4 is not allowed: expected an "
                                         "integer >= 0 and <= 3"),
    ("model", "flow", {"iterations": 0}, "model.flow.iterations = 0 is not allowed"),
    ("model", "flow", {"trainable": [0, 1, 1]}, "model.flow.trainable = [0, 1, 1] is not allowed: expected 5 "
                                                "flags 0/1: [image_gradient, grad_div, theta, lambda, tau]"),
    ("model", "flow", {"trainable": [0, 1, 2, 1, 1]}, "model.flow.trainable[2] = 2 is not allowed: expected "
                                                      "an integer >= 0 and <= 1"),
    ("model", "flow", {"normalize": "batch"}, "model.flow.normalize = 'batch' is not allowed: expected one of "
                                              "sample, sample_channel, none"),
    ("model", "num_flow_layers", 2, "model.num_flow_layers is now model.flow.num_layers; rename it"),
    ("model", "flow_iterations", 20, "model.flow_iterations is now model.flow.iterations; rename it"),
    ("model", "fusion", "late", "model.fusion = 'late' is not allowed: expected one of features, scores"),
    ("data", "flow_sampling", "random", "data.flow_sampling = 'random' is not allowed: expected one of "
                                        "contiguous, segments"),
    ("data", "validation", 1.5, "data.validation = 1.5 is not allowed: expected test, auto, a fraction between 0 "
                                "and 1, or a list file"),
    ("data", "validation", "val.txt", "data.validation = 'val.txt' is not allowed: expected test, auto, a "
                                      "fraction between 0 and 1, or an existing list file"),
    ("data", "colour_jitter", 1.5, "data.colour_jitter = 1.5 is not allowed: expected a number >= 0.0 and <= 1.0"),
    ("model", "rgb_dropout", 1.0, "model.rgb_dropout = 1.0 is not allowed: expected a number "
                                  ">= 0.0 and < 1.0"),
    ("model", "weights", ["a"], "model.weights = ['a'] is not allowed: expected a path or imagenet or null"),
    ("runtime", "distribution", "mirror", "runtime.distribution = 'mirror' is not allowed: expected "
                                          "one of none, mirrored, multi_worker_mirrored "
                                          "(did you mean mirrored?)"),
    ("runtime", "mixed_precision", "yes please", "runtime.mixed_precision = 'yes please' is not "
                                                 "allowed: expected true or false or one of float16, bfloat16"),
    ("runtime", "mixed_precision", 16, "runtime.mixed_precision = 16 is not "
                                       "allowed: expected true or false or one of float16, bfloat16"),
    ("runtime", "seed", -1, "runtime.seed = -1 is not allowed: expected an integer >= 0"),
])
def test_wrong_value_names_key_value_and_allowed(section, key, value, fragment):
    raw = minimal()
    raw[section][key] = value
    message = error_of(raw)
    assert message.startswith("r.yaml: ")
    assert fragment in message


def test_colour_jitter_is_refused_with_packed_clips():
    raw = minimal()
    raw["data"].update(colour_jitter=0.3, packed={"train": "a.tfrecord", "test": "b.tfrecord"})
    assert error_of(raw) == ("r.yaml: data.colour_jitter = 0.3 is not allowed: expected 0 with data.packed "
                             "(the TFRecord reader does not jitter colours)")
    raw["data"]["colour_jitter"] = 0.0
    assert recipe_from_dict(raw).data.colour_jitter == 0.0


def test_fit_refuses_colour_jitter_with_packed_clips_in_one_line(tmp_path, capsys):
    from cli_testing import assert_one_error_line, call

    import kerasflow.fit_command as fit
    status, _, err = call(fit, ["demo", "--set", "data.colour_jitter=0.4", "--set",
                                f"data.packed={{train: {tmp_path}/a.tfrecord, test: {tmp_path}/b.tfrecord}}"], capsys)
    assert_one_error_line(status, err)
    assert err.rstrip().splitlines()[-1] == ("error: recipe demo: data.colour_jitter = 0.4 is not allowed: expected 0 "
                                             "with data.packed (the TFRecord reader does not jitter colours)")


def test_split_range_depends_on_dataset():
    raw = minimal()
    raw["data"].update(dataset="gtea61", split=4)
    assert recipe_from_dict(raw).data.split == 4
    raw["data"].update(dataset="egtea")
    assert "data.split = 4 is not allowed: expected an integer from 1 to 3 (egtea has 3 splits)" in (
        error_of(raw))
    raw["data"]["split"] = 0
    assert "data.split = 0 is not allowed: expected an integer >= 1" in error_of(raw)


@pytest.mark.parametrize("change, fragment", [
    (lambda s: s.update(optimizer="rmsprop"), "stages[1].optimizer = 'rmsprop' is not allowed: "
                                              "expected one of adam, sgd"),
    (lambda s: s.update(learning_rate=0), "stages[1].learning_rate = 0 is not allowed: expected a "
                                          "number > 0.0"),
    (lambda s: s.update(learning_rate="fast"), "stages[1].learning_rate = 'fast' is not allowed"),
    (lambda s: s.update(momentum=0.9), "stages[1].momentum is only read with optimizer: sgd "
                                       "(optimizer is adam); remove it"),
    (lambda s: s.update(optimizer="sgd", epsilon=1e-4), "stages[1].epsilon is only read with "
                                                        "optimizer: adam (optimizer is sgd)"),
    (lambda s: s.update(flow_learning_rate=1e-4), "stages[1].flow_learning_rate is only read by "
                                                  "the joint stage (this stage is rgb_stage2)"),
    (lambda s: s.update(name="rgb_stag1"), "stages[1].name = 'rgb_stag1' is not allowed: expected "
                                            "one of rgb_stage1, rgb_stage2, flow, joint "
                                            "(did you mean rgb_stage1?)"),
    (lambda s: s.update(schedule={"type": "cosine"}), "stages[1].schedule.type = 'cosine' is not "
                                                      "allowed: expected one of multistep, "
                                                      "exponential, constant"),
    (lambda s: s.update(schedule={"type": "multistep"}), "missing required key "
                                                         "stages[1].schedule.milestones"),
    (lambda s: s.update(schedule={"type": "multistep", "milestones": [5, 5]}),
     "stages[1].schedule.milestones = [5, 5] is not allowed: expected strictly increasing epochs"),
    (lambda s: s.update(schedule={"type": "multistep", "milestones": [5, "x"]}),
     "stages[1].schedule.milestones[1] = 'x' is not allowed: expected an integer >= 1"),
    (lambda s: s.update(schedule={"type": "multistep", "milestones": 5}),
     "stages[1].schedule.milestones = 5 is not allowed: expected a list of integers >= 1 or null"),
    (lambda s: s.update(schedule={"type": "exponential"}), "missing required key "
                                                           "stages[1].schedule.gamma"),
    (lambda s: s.update(schedule={"type": "exponential", "gamma": 0.9, "milestones": [1]}),
     "stages[1].schedule.milestones is only read with type: multistep (type is exponential)"),
    (lambda s: s.update(schedule={"type": "constant", "gamma": 0.5}),
     "stages[1].schedule.gamma is not read with type: constant"),
    (lambda s: s.update(schedule={"type": "exponential", "gamma": 1.5}),
     "stages[1].schedule.gamma = 1.5 is not allowed: expected a number > 0.0 and <= 1.0 or null"),
    (lambda s: s.update(schedule="constant"), "stages[1].schedule = 'constant' is not allowed: "
                                              "expected a mapping with keys type, milestones, gamma"),
    (lambda s: s.pop("epochs"), "r.yaml: missing required key stages[1].epochs"),
])
def test_stage_errors(change, fragment):
    raw = minimal()
    change(raw["stages"][1])
    assert fragment in error_of(raw)


def test_missing_required_keys():
    for section, key in [("data", "root"), ("data", "dataset"), ("model", "kind"),
                         ("runtime", "output_dir")]:
        raw = minimal()
        del raw[section][key]
        assert error_of(raw) == f"r.yaml: missing required key {section}.{key}"
    raw = minimal()
    del raw["stages"]
    assert error_of(raw) == "r.yaml: missing required key stages"
    raw = minimal()
    raw["data"] = "videos"
    assert "data = 'videos' is not allowed: expected a mapping with keys dataset, root" in error_of(raw)


@pytest.mark.parametrize("kind, names, fragment", [
    ("two_stream", ["rgb_stage1", "rgb_stage2", "flow"],
     "stages: model.kind two_stream trains rgb_stage1, rgb_stage2, flow, joint; "
     "got rgb_stage1, rgb_stage2, flow (missing joint)"),
    ("representation_flow", ["rgb_stage1"], "got rgb_stage1 (missing flow)"),
    ("optical_flow", ["flow", "flow"], "got flow, flow (repeated: flow)"),
    ("rgb", [], "got no stages (missing rgb_stage1, rgb_stage2)"),
])
def test_stages_a_kind_needs_must_be_there_once(kind, names, fragment):
    raw = minimal(kind)
    raw["stages"] = [{"name": n, "epochs": 1, "optimizer": "adam", "learning_rate": 1e-3}
                     for n in names]
    assert fragment in error_of(raw)


def test_a_kind_trains_its_stages_in_its_order_and_skips_the_others():
    raw = minimal("two_stream")
    raw["stages"] = [{"name": n, "epochs": e, "optimizer": "adam", "learning_rate": 1e-3}
                     for n, e in (("joint", 4), ("flow", 3), ("rgb_stage2", 2), ("rgb_stage1", 1))]
    recipe = recipe_from_dict(raw)
    assert [(s.name, s.epochs) for s in recipe.trained_stages] == [
        ("rgb_stage1", 1), ("rgb_stage2", 2), ("flow", 3), ("joint", 4)]
    assert recipe.skipped_stages == []
    raw["model"]["kind"] = "representation_flow"
    recipe = recipe_from_dict(raw)
    assert [s.name for s in recipe.trained_stages] == ["flow"]
    assert recipe.skipped_stages == ["joint", "rgb_stage2", "rgb_stage1"]
    assert [spec.name for spec in recipe.inputs_for("flow")] == ["flow_clip"]


@pytest.mark.parametrize("kind", ["two_stream", "rgb", "representation_flow", "optical_flow",
                                  "two_stream_optical_flow"])
def test_every_kind_loads_with_its_stages(kind):
    assert recipe_from_dict(minimal(kind)).model.kind == kind


def test_cross_key_frame_checks():
    raw = minimal("representation_flow")
    raw["model"]["flow"] = {"num_layers": 3}
    raw["data"]["flow_frames"] = 3
    assert "data.flow_frames = 3 is not allowed: expected at least 4" in error_of(raw)
    raw["data"]["flow_frames"] = 4
    raw["stages"][0]["frames"] = 2
    assert "stages[0].frames = 2 is not allowed: expected at least 4" in error_of(raw)
    raw = minimal("optical_flow")
    raw["stages"][0]["frames"] = 8
    assert "stages[0].frames is not read by the optical-flow stream; set data.flow_stack" in (
        error_of(raw))
    raw = minimal()
    raw["stages"][3]["frames"] = 8
    assert "stages[3].frames is not read by the joint stage" in error_of(raw)
    raw = minimal()
    raw["data"].update(dataset="synthetic", rgb_frames=8, flow_frames=8,
                       synthetic={"frames": 10})
    raw["stages"][0]["frames"] = 12
    assert "data.synthetic.frames = 10 is not allowed: expected at least 12" in error_of(raw)
    raw = minimal()
    raw["data"]["synthetic"] = {"classes": 1}
    raw["data"]["dataset"] = "synthetic"
    raw["data"]["synthetic"]["classes"] = 1
    assert "data.synthetic.classes = 1 is not allowed: expected an integer >= 2" in error_of(raw)


def test_another_dataset_ignores_the_synthetic_options(caplog):
    """The demo on one's own videos: --set data.dataset=folder leaves data.synthetic unread, with a note."""
    raw = minimal()
    raw["data"]["synthetic"] = {"classes": 3}
    recipe = recipe_from_dict(raw, source="demo")
    assert recipe.data.synthetic is None
    assert caplog.messages == ["demo: data.synthetic is only read with data.dataset: synthetic; ignoring it "
                               "(data.dataset is folder)"]
    demo = load_recipe("demo", ["data.dataset=folder", "data.root=my_videos"])
    assert (demo.data.dataset, demo.data.synthetic) == ("folder", None)
    assert demo.runtime.output_dir == os.path.abspath("runs/demo-folder")


def test_output_dir_fields(tmp_path):
    raw = minimal()
    raw["runtime"]["output_dir"] = "runs/{dataset}-split{split}-{kind}-{backbone}"
    assert recipe_from_dict(raw).runtime.output_dir == os.path.abspath("runs/folder-split1-two_stream-resnet34")
    egtea = load_recipe(RECIPES / "egtea.yaml", ["data.split=3"])
    assert egtea.runtime.output_dir == os.path.abspath("runs/egtea-split3")
    for bad in ("runs/{nope}", "runs/{", "runs/{}"):
        raw["runtime"]["output_dir"] = bad
        assert ("runtime.output_dir = " in error_of(raw) and
                "expected a path whose {...} fields are {dataset}, {split}, {kind}, {backbone}" in error_of(raw))


def test_installed_recipes_load_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no recipes/ folder here: the installed copies are read
    assert load_recipe("demo") == load_recipe(RECIPES / "demo.yaml")
    assert load_recipe("egtea.yaml").data.dataset == "egtea"
    with pytest.raises(UserError, match=r"^recipe demo: unknown key data.rgb_frame; did you mean data.rgb_frames\?$"):
        load_recipe("demo", ["data.rgb_frame=3"])


def test_per_stage_batch_and_frame_overrides():
    raw = minimal()
    raw["data"].update(rgb_frames=25, flow_frames=16, batch_size=32)
    raw["stages"][0].update(frames=10, batch_size=4)
    raw["stages"][2].update(frames=6)
    recipe = recipe_from_dict(raw)
    assert [recipe.frames_for(s) for s in recipe.stages] == [(10, 16), (25, 16), (25, 6), (25, 16)]
    assert [recipe.batch_size_for(s) for s in recipe.stages] == [4, 32, 32, 32]
    assert recipe.stage("flow") is recipe.stages[2]
    with pytest.raises(KeyError):
        recipe_from_dict(minimal("rgb")).stage("joint")


def test_numbers_written_like_python_are_floats():
    raw = yaml.safe_load("learning_rate: 1e-3\nweight_decay: 5e-4")
    assert raw["learning_rate"] == "1e-3"  # PyYAML's YAML 1.1 reading; the schema accepts it
    stage = minimal()["stages"][0] | raw
    recipe = recipe_from_dict({**minimal(), "stages": [stage] + minimal()["stages"][1:]})
    assert (recipe.stages[0].learning_rate, recipe.stages[0].weight_decay) == (1e-3, 5e-4)


def test_file_errors(tmp_path):
    with pytest.raises(UserError, match=r"^recipe file not found: .*nope\.yaml \(installed recipes: demo, "
                                        r"demo-ablation, egtea, gtea61, hmdb51, hmdb51-ablation, hmdb51-repflow\)$"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [1, 2\nmodel: {}\n")
    with pytest.raises(UserError, match=r"bad\.yaml is not valid YAML: .* at line \d+, column \d+$"):
        load_recipe(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- data\n- model\n")
    with pytest.raises(UserError, match=r"list\.yaml: expected a mapping with sections data, model, "
                                        r"stages, runtime, training, evaluation, search, got list$"):
        load_recipe(listed)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(UserError, match="empty.yaml: .*got an empty document"):
        load_recipe(empty)
    with pytest.raises(UserError, match="is a folder; pass a YAML recipe file or an installed recipe's name"):
        load_recipe(tmp_path)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(UserError, match="binary.yaml is not a text"):
        load_recipe(binary)


# ---------------------------------------------------------------------------------------------
# --set overrides


def test_overrides_by_index_name_nested_and_lists(tmp_path):
    path = write(tmp_path, minimal())
    recipe = load_recipe(path, [
        "data.root=/elsewhere",
        "stages.0.epochs=3",
        "stages.joint.epochs=7",
        "stages[1].learning_rate=5e-4",
        "stages.flow.schedule={type: multistep, milestones: [2, 4], gamma: 0.5}",
        "stages.joint.schedule.type=exponential",
        "stages.joint.schedule.gamma=0.9",
        "data.synthetic.classes=6",  # creates the section
        "data.dataset=synthetic",
        "model.weights=",
        "runtime.mixed_precision=true",
    ])
    assert recipe.data.root == "/elsewhere"
    assert [s.epochs for s in recipe.stages] == [3, 2, 2, 7]
    assert recipe.stages[1].learning_rate == 5e-4
    assert recipe.stage("flow").schedule.milestones == [2, 4]
    assert recipe.stage("flow").learning_rate_at(4) == pytest.approx(1e-3 * 0.25)
    assert recipe.stage("joint").learning_rate_at(2) == pytest.approx(1e-3 * 0.81)
    assert recipe.data.synthetic.classes == 6 and recipe.data.synthetic.frames == 32
    assert recipe.model.weights is None and recipe.runtime.mixed_precision is True
    # Later overrides win; the file on disk is unchanged.
    assert load_recipe(path, ["stages.0.epochs=3", "stages.0.epochs=4"]).stages[0].epochs == 4
    assert load_recipe(path).stages[0].epochs == 2


@pytest.mark.parametrize("override, fragment", [
    ("data.root", "the override 'data.root': expected KEY=VALUE with a dotted KEY"),
    ("=3", "the override '=3': expected KEY=VALUE"),
    ("data..root=3", "the override 'data..root=3': expected KEY=VALUE"),
    ("stages.0.schedule.milestones=[1, 2", "the value '[1, 2' is not valid YAML"),
    ("stages.jiont.epochs=3", "no stage named 'jiont' in stages (have rgb_stage1, rgb_stage2, "
                              "flow, joint); use a name or an index"),
    ("stages.9.epochs=3", "stages.9 is out of range (the list has 4 entries)"),
    ("data.root.x=3", "data.root is 'videos', not a section that has keys"),
    ("dta.root=x", "r.yaml: unknown key dta; did you mean data?"),
    ("stages.0.epoch=3", "unknown key stages[0].epoch; did you mean stages[0].epochs?"),
    ("model.flow.iterations=many", "model.flow.iterations = 'many' is not allowed: expected an "
                                   "integer >= 1"),
])
def test_override_errors(tmp_path, override, fragment):
    path = write(tmp_path, minimal(), name="r.yaml")
    with pytest.raises(UserError) as caught:
        load_recipe(path, [override])
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


# ---------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("name", ["gtea61", "egtea", "hmdb51", "demo"])
def test_save_load_round_trip(tmp_path, monkeypatch, name):
    recipe = load_recipe(RECIPES / f"{name}.yaml", ["stages.0.batch_size=4"])
    saved = tmp_path / "run" / "recipe.yaml"
    save_recipe(recipe, saved)
    assert sorted(p.name for p in saved.parent.iterdir()) == ["recipe.yaml"]  # no temporary left
    monkeypatch.chdir(tmp_path)  # absolute paths: the saved recipe loads from anywhere
    again = load_recipe(saved)
    assert again == recipe and isinstance(again, Recipe)
    assert recipe_to_dict(again) == recipe_to_dict(recipe)
    assert again.stages[0].batch_size == 4


def test_relative_paths_resolve_against_working_directory(tmp_path, monkeypatch):
    raw = minimal()
    raw["data"]["flow_root"] = "~/flow"
    monkeypatch.chdir(tmp_path)
    recipe = recipe_from_dict(copy.deepcopy(raw))
    assert recipe.data.root == str(tmp_path / "videos")
    assert recipe.runtime.output_dir == str(tmp_path / "runs" / "x")
    assert recipe.data.flow_root == os.path.expanduser("~/flow")


def test_save_replaces_existing_file_atomically(tmp_path, monkeypatch):
    first = recipe_from_dict(minimal())
    second = recipe_from_dict({**minimal(), "runtime": {"output_dir": "runs/y", "seed": 7}})
    path = tmp_path / "recipe.yaml"
    save_recipe(first, path)

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        save_recipe(second, path)
    monkeypatch.undo()
    assert load_recipe(path) == first  # the old file survives a failed write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.yaml"]
    save_recipe(second, path)
    assert load_recipe(path).runtime.seed == 7

"""A second backbone family and a new model kind, each registered in a few lines, train through ``fit``:
nothing outside ``kerasflow/backbones/`` knows the ResNets, and a kind that reuses streams is one
``register_kind``."""

import keras
import numpy as np
import pytest
from cli_testing import SIZE, assert_one_error_line, call, tiny_recipe

import kerasflow
import kerasflow.fit_command as fit_module
from kerasflow.backbones import Backbone, BackboneFamily, register_family
from kerasflow.backbones.registry import FAMILIES, PRESETS, stage_strides
from kerasflow.config import load_recipe
from kerasflow.models.common import walk_layers
from kerasflow.models.kinds import KINDS, REPRESENTATION_FLOW, RGB, ModelKind, register_kind


class ToyBackbone(Backbone):
    """A stride-2 conv stem and one 3x3 conv + ReLU per stage; no normalisation, so ``pre_bn`` is the
    stage's output."""

    def __init__(self, widths, strides, input_channels=3, include_head=True, num_head_classes=10, image_size=None,
                 name=None, **kwargs):
        image = keras.Input((image_size, image_size, input_channels))
        stem_input = keras.Input((image_size, image_size, input_channels))
        stem = keras.Model(stem_input, keras.layers.Conv2D(widths[0], 3, 2, "same", name="stem_conv")(stem_input),
                           name="stem")
        stages = []
        for index, (width, stride) in enumerate(zip(widths, strides), start=1):
            stage_input = keras.Input((None, None, stages[-1].output[0].shape[-1] if stages else widths[0]))
            y = keras.layers.Conv2D(width, 3, stride, "same", activation="relu", name=f"block{index}_conv")(stage_input)
            stages.append(keras.Model(stage_input, [y, y], name=f"block{index}"))
        pool = keras.layers.GlobalAveragePooling2D(name="pool")
        head = keras.layers.Dense(num_head_classes, name="fc") if include_head else None
        x = stem(image)
        for stage in stages:
            x, _ = stage(x)
        outputs = {"pooled": pool(x)}
        if head is not None:
            outputs["logits"] = head(outputs["pooled"])
        super().__init__(image, outputs, name=name, **kwargs)
        self._set_parts(stem, stages, pool, head, widths[-1], input_channels, include_head, num_head_classes)


TOY = BackboneFamily(
    name="toy", backbone_class=ToyBackbone, stage_strides=lambda config: config["strides"],
    presets={"toy": {"description": "two convolutions", "config": {"widths": (4, 6), "strides": (2, 2)}}},
    layer_groups={"last_stage": ("block2/*",), "last_stage_convs": ("block2/block2_conv",)},
)


@pytest.fixture
def toy_family():
    register_family(TOY)
    yield
    del FAMILIES["toy"], PRESETS["toy"]


def test_the_registry_and_the_schema_take_a_new_family(toy_family):
    assert stage_strides("toy") == (2, 2)
    assert load_recipe("demo", ["model.backbone=toy"]).model.backbone == "toy"
    with pytest.raises(ValueError, match="registered already"):
        register_family(TOY)


def test_a_3d_network_on_a_family_without_one_is_one_line(toy_family, tmp_path, capsys):
    path = tiny_recipe(tmp_path, kind="representation_flow", epochs=(1,))
    status, _, err = call(fit_module, [str(path), "--set", "model.backbone=toy", "--set",
                                       "model.flow_network=inflated_3d"], capsys)
    assert_one_error_line(status, err, "backbone preset 'toy' (toy family) has no 3-D version; "
                                       "use model.flow_network: per_frame")
    assert not (tmp_path / "run").exists()


def _fit_toy(folder, learning_rate):
    """Train the tiny representation-flow recipe on the toy backbone for one epoch; returns the run's model."""
    folder.mkdir()
    path = tiny_recipe(folder, kind="representation_flow", epochs=(1,))
    metrics = kerasflow.fit(str(path), ["model.backbone=toy", "model.flow_network=per_frame",
                                        f"stages.flow.learning_rate={learning_rate}"], log=lambda *_: None)
    assert metrics["final"]["num_videos"] == 4 and (folder / "run" / "model.keras").is_file()
    return kerasflow.load_model(folder / "run")


@pytest.mark.large
def test_a_test_only_family_trains_a_per_frame_flow_stream_through_fit(toy_family, tmp_path):
    """The same seeded run at a learning rate of 1e-12 keeps the initial weights; at 0.01 the toy
    backbone's convolutions move: gradients reach the new family's layers through fit."""
    untrained = _fit_toy(tmp_path / "still", 1e-12)
    trained = _fit_toy(tmp_path / "trained", 0.01)
    stream = trained.get_layer("flow_stream")
    assert {"stem", "block1", "block2", "flow_block"} <= {layer.name for layer in stream.layers}
    for stage in ("stem", "block1", "block2"):
        conv = "stem_conv" if stage == "stem" else f"{stage}_conv"
        before = untrained.get_layer("flow_stream").get_layer(stage).get_layer(conv).kernel.numpy()
        after = stream.get_layer(stage).get_layer(conv).kernel.numpy()
        assert np.abs(after - before).max() > 1e-4, stage
    # Adam moves each weight by about the learning rate a step: 2 steps at 1e-12 leave the weights the
    # seeded recipe starts from (batch-norm statistics move at any rate).
    recipe = load_recipe(tmp_path / "still" / "run" / "recipe.yaml")
    keras.utils.set_random_seed(recipe.runtime.seed)
    initial = recipe.kind.build_models(recipe.model, recipe.data, 2)["flow"]
    kept = dict(walk_layers(untrained))
    for path, layer in walk_layers(initial):
        for start, end in zip(layer.weights, kept[path].weights):
            if start.trainable:
                np.testing.assert_allclose(start.numpy(), end.numpy(), atol=1e-9, err_msg=f"{path}/{start.name}")
    clip = np.random.default_rng(0).integers(0, 256, (1, 4, SIZE, SIZE, 3), dtype=np.uint8)
    assert trained({"flow_clip": clip}).shape == (1, 2)


def test_a_kinds_stage_rules_use_the_layer_groups_of_its_backbones(toy_family):
    recipe = load_recipe("demo", ["model.backbone=toy", "model.flow_backbone=tiny", "data.frame_size=64",
                                  "data.rgb_frames=2", "data.flow_frames=3", "model.flow.iterations=1",
                                  "model.convlstm_units=4", "model.num_head_classes=5"])
    joint = recipe.kind.build_models(recipe.model, recipe.data, 3)["joint"]
    trained = recipe.kind.set_trainable(joint, "joint", recipe.model)
    assert "rgb_stream/block2/block2_conv" in trained and "rgb_stream/block1/block1_conv" not in trained
    assert "flow_stream/layer4/layer4_0_conv1" in trained and "flow_stream/layer3/layer3_0_conv1" not in trained


@pytest.mark.large
def test_a_kind_that_reuses_streams_is_one_registration(tmp_path):
    register_kind(ModelKind("flow_then_joint", "representation flow, then fused with an untrained RGB stream",
                            (RGB, REPRESENTATION_FLOW), stages=("flow", "joint")))
    try:
        path = tiny_recipe(tmp_path, kind="two_stream", epochs=(1, 1, 1, 1))
        kerasflow.fit(str(path), ["model.kind=flow_then_joint"], log=lambda *_: None)
        model = kerasflow.load_model(tmp_path / "run")
        info = model.kerasflow_info
        assert (info.kind, info.stage, info.model) == ("flow_then_joint", "joint", "joint")
        assert [spec.name for spec in info.inputs] == ["rgb", "flow_clip"]
        assert sorted(path.name for path in (tmp_path / "run" / "stages").iterdir()) == ["flow", "joint"]
    finally:
        del KINDS["flow_then_joint"]

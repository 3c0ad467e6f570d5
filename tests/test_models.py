"""The paper's models at tiny sizes: shapes, trainable sets per stage, save/load, weights, a training step."""

import json
import types

import keras
import numpy as np
import pytest
from model_testing import run_model_test, softmax
from test_cam_attention import numpy_cam_attention

from kerasflow.backbones import from_preset
from kerasflow.backbones.weights import config_path
from kerasflow.config.schema import ModelConfig
from kerasflow.config.validation import Checker, build
from kerasflow.data.synthetic import render_video
from kerasflow.models import (
    build_optical_flow_stream,
    build_representation_flow_stream,
    build_rgb_stream,
    build_stage_models,
    cam_maps_model,
    set_trainable_for_stage,
    single_stream_model,
    trainable_layers,
    two_stream_model,
)
from kerasflow.models.kinds import get_kind

FRAMES, SIZE, CLASSES = 4, 64, 3


def model_cfg(kind, **overrides):
    """A checked recipe ``model`` section at tiny size."""
    values = dict(kind=kind, backbone="tiny", flow={"iterations": 3, "position": 2, "bottleneck": 4},
                  convlstm_units=8, num_head_classes=10)
    values.update(overrides)
    return build(ModelConfig, values, "model", Checker("test"))


DATA = types.SimpleNamespace(frame_size=SIZE, rgb_frames=FRAMES, flow_frames=3, flow_stack=2)


def clip(batch=2, frames=FRAMES, seed=0):
    """Raw frames, as the models take them."""
    return np.random.default_rng(seed).integers(0, 256, (batch, frames, SIZE, SIZE, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "kind,keys,joint_inputs",
    [
        ("rgb", ["rgb"], None),
        ("representation_flow", ["flow"], None),
        ("optical_flow", ["flow"], None),
        ("two_stream", ["rgb", "flow", "joint"], ["flow_clip", "rgb"]),
        ("two_stream_optical_flow", ["rgb", "flow", "joint"], ["rgb", "tvl1_stack"]),
    ],
)
def test_stage_models_and_output_shapes(kind, keys, joint_inputs):
    models = build_stage_models(model_cfg(kind), DATA, CLASSES)
    assert sorted(models) == sorted(keys)
    inputs = {
        "rgb": clip(),
        "flow_clip": clip(frames=DATA.flow_frames),
        "tvl1_stack": np.zeros((2, SIZE, SIZE, 4), "uint8"),
    }
    for key, model in models.items():
        names = [t.name for t in model.inputs]
        assert sorted(names) == sorted(get_kind(kind).inputs[key])
        if key == "joint":
            assert names == joint_inputs
        assert model({name: inputs[name] for name in names}).shape == (2, CLASSES)


def test_flow_block_position_and_time_steps():
    stream = build_representation_flow_stream(5, SIZE, backbone="tiny", num_flow_layers=3, flow_iterations=2,
                                              flow_position=1, bottleneck=4)
    block = stream.get_layer("flow_block")
    # After stage 1 of the tiny ResNet: 64 / 4 = 16 px maps with 8 channels, 5 frames -> 2 steps.
    assert tuple(block.input.shape) == (None, 5, 16, 16, 8)
    assert tuple(block.output.shape) == (None, 2, 16, 16, 8)
    without = build_representation_flow_stream(5, SIZE, backbone="tiny", num_flow_layers=0)
    assert "flow_block" not in [layer.name for layer in without.layers]
    assert without(clip(frames=5)).shape == (2, 64)


def test_trainable_sets_per_stage():
    models = build_stage_models(model_cfg("two_stream"), DATA, CLASSES)
    rgb, flow, joint = models["rgb"], models["flow"], models["joint"]
    assert trainable_layers(rgb, "rgb_stage1") == ["rgb_stream/convlstm", "rgb_classifier"]
    assert sorted(trainable_layers(rgb, "rgb_stage2")) == [
        "rgb_classifier",
        "rgb_stream/cam_attention",
        "rgb_stream/convlstm",
        "rgb_stream/layer4/layer4_0_conv1",
        "rgb_stream/layer4/layer4_0_conv2",
    ]
    flow_layers = trainable_layers(flow, "flow")
    assert "flow_stream/flow_block" in flow_layers and "flow_stream/stem/bn1" in flow_layers
    assert sorted(trainable_layers(joint, "joint")) == [
        "flow_stream/flow_block",
        "flow_stream/layer4/layer4_0_bn1",
        "flow_stream/layer4/layer4_0_bn2",
        "flow_stream/layer4/layer4_0_conv1",
        "flow_stream/layer4/layer4_0_conv2",
        "flow_stream/layer4/layer4_0_downsample_bn",
        "flow_stream/layer4/layer4_0_downsample_conv",
        "fusion_classifier",
        "rgb_stream/cam_attention",
        "rgb_stream/convlstm",
        "rgb_stream/layer4/layer4_0_conv1",
        "rgb_stream/layer4/layer4_0_conv2",
    ]
    set_trainable_for_stage(rgb, "rgb_stage1")
    stage1_count = sum(int(np.prod(w.shape)) for w in rgb.trainable_weights)
    # ConvLSTM(8) on 64 channels: 2 * 9 * 64 * 32 ... computed by hand, plus the classifier 8*3+3.
    convlstm = 9 * 64 * 4 * 8 + 9 * 8 * 4 * 8 + 4 * 8
    assert stage1_count == convlstm + 8 * CLASSES + CLASSES
    set_trainable_for_stage(rgb, "rgb_stage2")
    stage2_count = sum(int(np.prod(w.shape)) for w in rgb.trainable_weights)
    layer4_convs = 3 * 3 * 32 * 64 + 3 * 3 * 64 * 64
    cam_head = 64 * 10  # the CAM kernel; its bias only moves the argmax and is not trainable
    assert stage2_count == stage1_count + layer4_convs + cam_head
    # Batch norms of the RGB stream never train, so they run in inference mode.
    bns = [layer for path, layer in _leaves(rgb) if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and not any(bn.trainable for bn in bns)


def _leaves(model):
    from kerasflow.models.common import walk_layers

    return list(walk_layers(model))


@pytest.mark.large
def test_one_training_step_lowers_the_loss():
    keras.utils.set_random_seed(0)
    models = build_stage_models(model_cfg("two_stream"), DATA, CLASSES)
    x, y = clip(batch=4, seed=1), np.array([0, 1, 2, 1])
    for key, stage in (("rgb", "rgb_stage1"), ("flow", "flow"), ("joint", "joint")):
        model = models[key]
        set_trainable_for_stage(model, stage)
        model.compile(optimizer=keras.optimizers.SGD(0.05),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        flow_clip = clip(batch=4, frames=DATA.flow_frames, seed=1)
        feed = {"flow": {"flow_clip": flow_clip}, "rgb": {"rgb": x}, "joint": {"rgb": x, "flow_clip": flow_clip}}[key]
        model.layers[-2].rate = 0.0  # no dropout noise: compare the same function before and after
        before = float(model.evaluate(feed, y, verbose=0))
        model.train_on_batch(feed, y)
        after = float(model.evaluate(feed, y, verbose=0))
        assert after < before, (key, before, after)


@pytest.mark.parametrize("kind", [pytest.param("two_stream", marks=pytest.mark.large), "two_stream_optical_flow"])
def test_model_contract_config_shapes_and_reloads(kind):
    model = build_stage_models(model_cfg(kind), DATA, CLASSES)["joint"]
    x = clip()
    feed = {"rgb": x, "flow_clip": clip(frames=DATA.flow_frames, seed=3),
            "tvl1_stack": np.random.default_rng(4).integers(0, 256, (2, SIZE, SIZE, 4), dtype=np.uint8)}
    feed = {tensor.name: feed[tensor.name] for tensor in model.inputs}
    loaded = run_model_test(model, feed, (2, CLASSES))
    maps = np.asarray(cam_maps_model(loaded)(x))
    assert maps.shape == (2, FRAMES, 2, 2)
    np.testing.assert_allclose(maps.sum(axis=(2, 3)), 1.0, atol=1e-5)


def test_the_attention_map_of_a_real_clip_is_not_constant():
    """At 64 px the tiny ResNet's last maps are 2 x 2 (a total stride of 32), so the CAM attention can
    follow the frame: on a demo video it is not the constant 1/4 of a map without structure, and it is
    eq. (2) computed in NumPy from the features the attention layer receives."""
    keras.utils.set_random_seed(0)
    rgb = build_stage_models(model_cfg("rgb"), DATA, CLASSES)["rgb"]
    video = render_video(np.random.default_rng(2), (0, 1), FRAMES, SIZE)[None, ..., ::-1].copy()  # BGR -> RGB
    maps = np.asarray(cam_maps_model(rgb)(video))
    assert maps.shape == (1, FRAMES, 2, 2)
    stream = rgb.get_layer("rgb_stream")
    cam = stream.get_layer("cam_attention")
    features, _ = keras.Model(stream.input, cam.input)(video)  # (frames, 2, 2, channels)
    features = np.asarray(features, np.float64)
    kernel, bias = (np.asarray(w, np.float64) for w in cam.get_weights())
    _, attention, _, _ = numpy_cam_attention(features, features, kernel, bias)
    np.testing.assert_allclose(maps[0], attention, atol=1e-5)
    spread = maps.max(axis=(2, 3)) - maps.min(axis=(2, 3))
    assert spread.min() > 0.1, spread  # 0.24 to 0.28 here; 0 for a map of 1 x 1 or without structure


def test_imagenet_weights_reach_the_streams(tmp_path):
    source = from_preset("tiny", num_head_classes=10)
    rng = np.random.default_rng(7)
    source.set_weights([rng.normal(size=w.shape).astype("float32") for w in source.get_weights()])
    path = tmp_path / "tiny.weights.h5"
    source.save_weights(path)
    with open(config_path(path), "w") as file:
        json.dump({"config": source.get_config()}, file)

    rgb = build_rgb_stream(FRAMES, SIZE, backbone="tiny", weights=str(path), units=8, num_head_classes=10)
    kernel, bias = rgb.get_layer("cam_attention").get_weights()
    np.testing.assert_array_equal(kernel, source.head.get_weights()[0])
    np.testing.assert_array_equal(bias, source.head.get_weights()[1])
    np.testing.assert_array_equal(
        rgb.get_layer("layer3").get_layer("layer3_0_conv1").get_weights()[0],
        source.find_layer("layer3_0_conv1").get_weights()[0],
    )
    flow = build_optical_flow_stream(SIZE, stack=5, backbone="tiny", weights=str(path))
    conv1 = flow.get_layer("stem").get_layer("conv1").get_weights()[0]
    expected = np.repeat(source.find_layer("conv1").get_weights()[0].mean(axis=2, keepdims=True), 10, axis=2)
    np.testing.assert_allclose(conv1, expected, rtol=1e-6)


def parameters(model):
    """Parameters as PyTorch counts them: batch-norm running statistics are buffers, not parameters."""
    return sum(
        int(np.prod(w.shape)) for w in model.weights if not w.path.endswith(("moving_mean", "moving_variance"))
    )


def test_parameter_counts_match_the_originals():
    rgb = build_rgb_stream(25, 224, backbone="resnet34", units=512)
    convlstm = rgb.get_layer("convlstm").count_params()
    assert convlstm == 18_876_416
    backbone_without_head = 21_797_672 - (512 * 1000 + 1000)
    cam_head = 512 * 1000 + 1000
    assert parameters(rgb) == backbone_without_head + cam_head + convlstm
    model = single_stream_model(rgb, 61, 0.7, "rgb", "rgb")
    assert parameters(model) == parameters(rgb) + 512 * 61 + 61
    flow = build_optical_flow_stream(224, stack=5, backbone="resnet34")
    # conv1 takes 10 planes instead of 3: 7 * 7 * 64 * 7 more weights than ResNet-34 without fc.
    assert parameters(flow) == backbone_without_head + 7 * 7 * 64 * 7
    flow_model = single_stream_model(flow, 61, 0.5, "optical_flow", "flow")
    joint = two_stream_model(model, flow_model, 61)
    assert parameters(joint) == parameters(rgb) + parameters(flow) + 1024 * 61 + 61
    # Fusing scores adds no layer: the two streams with their own classifiers.
    scores = two_stream_model(model, flow_model, 61, fusion="scores")
    assert parameters(scores) == parameters(model) + parameters(flow_model)


def test_score_fusion_is_the_log_of_the_mean_softmax():
    models = build_stage_models(model_cfg("two_stream", fusion="scores"), DATA, CLASSES)
    feed = {"rgb": clip(seed=4), "flow_clip": clip(frames=DATA.flow_frames, seed=5)}
    rgb = np.asarray(models["rgb"]({"rgb": feed["rgb"]}), np.float64)
    flow = np.asarray(models["flow"]({"flow_clip": feed["flow_clip"]}), np.float64)

    expected = np.log((softmax(rgb) + softmax(flow)) / 2)
    np.testing.assert_allclose(np.asarray(models["joint"](feed)), expected, rtol=1e-5, atol=1e-5)
    assert sorted(trainable_layers(models["joint"], "joint"))[:2] == ["flow_classifier", "flow_stream/flow_block"]
    assert "rgb_classifier" in trainable_layers(models["joint"], "joint")


def test_the_flow_stream_can_have_its_own_backbone():
    models = build_stage_models(model_cfg("two_stream", flow_backbone="resnet18"), DATA, CLASSES)
    flow_stream = models["joint"].get_layer("flow_stream")
    assert flow_stream.get_layer("layer4").output[0].shape[-1] == 512 and len(
        [layer for layer in flow_stream.get_layer("layer1").layers if layer.name.endswith("_conv1")]) == 2
    assert models["joint"].get_layer("rgb_stream").get_layer("layer1").count_params() < 1e5  # tiny

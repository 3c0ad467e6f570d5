"""The inflated 3-D ResNet flow network (``model.flow_network: inflated_3d``): shapes through every stage at
the reference's 16 frames of 112 px, parameter counts against the reference's layer list counted here,
ImageNet kernels repeated over time at load, its flow block against the per-frame one, the stage rules,
the recipe, export with builtin TFLite ops, a search over the two flow networks, and the demo learning
with it."""

import json

import keras
import numpy as np
import pytest
import yaml
from cli_testing import DEMO, call, tiny_recipe
from safetensors.numpy import save_file
from test_convert_weights import TINY, torchvision_state_dict
from test_export import tflite_ops

from kerasflow.backbones import InflatedResNetBackbone, convert_file, load_imagenet_weights
from kerasflow.backbones.resnet.resnet_converter import torch_prefix
from kerasflow.backbones.weights import read_weights_config
from kerasflow.config import load_recipe
from kerasflow.errors import UserError
from kerasflow.export import __main__ as export_command
from kerasflow.layers import RepresentationFlowBlock, SeparableMaxPooling3D
from kerasflow.model_io import save_model
from kerasflow.models import build_stage_models, trainable_layers
from kerasflow.models.flow_streams import build_inflated_flow_stream
from kerasflow.training.run_folder import model_info
from kerasflow.training.trainer import train_recipe
from kerasflow.tuning.space import SearchSpace

WIDTHS = (64, 128, 256, 512)
# The reference's layer list (flow_2p1d_resnets.py), as the issue gives it: time extent of each
# main-path convolution of a block, and whether the block is a bottleneck (4x expansion).
BLOCKS = {"resnet18": ((2, 2, 2, 2), False), "resnet34": ((3, 4, 6, 3), False),
          "resnet50": ((3, 4, 6, 3), True)}
BASIC_TIME, BOTTLENECK_TIME = (1, 3), (3, 1, 1)


def reference_parameter_count(blocks, bottleneck, in_channels=3, stem=64, widths=WIDTHS):
    """Weights (moving statistics included) of the inflated ResNet without its head, counted from the
    layer list: conv1 7x7x7; basic blocks 1x3x3 then 3x3x3; bottlenecks 3x1x1, 1x3x3, 1x1x1 (x4 wide);
    a 1x1x1 projection shortcut where the stride or the width changes; a batch norm (4 numbers a
    channel) after every convolution."""
    total = 7 * 7 * 7 * in_channels * stem + 4 * stem
    channels = stem
    for stage, (width, count) in enumerate(zip(widths, blocks)):
        for index in range(count):
            stride = 2 if stage > 0 and index == 0 else 1
            if bottleneck:
                convs = [(3 * 1 * 1, channels, width), (1 * 3 * 3, width, width), (1, width, 4 * width)]
            else:
                convs = [(1 * 3 * 3, channels, width), (3 * 3 * 3, width, width)]
            out = convs[-1][2]
            total += sum(volume * fan_in * fan_out + 4 * fan_out for volume, fan_in, fan_out in convs)
            if stride != 1 or channels != out:
                total += channels * out + 4 * out
            channels = out
    return total


@pytest.mark.large
@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_parameter_counts_follow_the_reference_layer_list(name):
    blocks, bottleneck = BLOCKS[name]
    backbone = InflatedResNetBackbone.from_preset(name, include_head=False)
    assert backbone.count_params() == reference_parameter_count(blocks, bottleneck)
    flow = InflatedResNetBackbone.from_preset(name, include_head=False, input_channels=2)
    assert flow.count_params() == reference_parameter_count(blocks, bottleneck, in_channels=2)


@pytest.fixture(scope="module")
def paper_stream():
    """The reference's network: inflated ResNet-50, 16 frames of 112 px, the flow block after stage 2."""
    return build_inflated_flow_stream(16, 112, backbone="resnet50", flow_iterations=1, flow_position=2)


@pytest.mark.large
def test_shapes_through_every_stage_at_16_frames_of_112_px(paper_stream):
    # Frames as the reference's padding rules give them: conv1 (7, no time padding) 16 -> 10, max pool
    # 3/2 padded by 1 -> 5, layer1 5, layer2 (stride 2, padded by 1) -> 4, two flow layers -> 2, layer3
    # -> 2, layer4 -> 2. Space: 56 after conv1, then 28, 28, 14, 14, 7, 4.
    x = keras.Input((16, 112, 112, 3))
    y = paper_stream.get_layer("stem")(x)
    shapes = [tuple(y.shape[1:])]
    for name in ("layer1", "layer2", "flow_block", "layer3", "layer4"):
        y = paper_stream.get_layer(name)(y)
        y = y[0] if isinstance(y, (list, tuple)) else y
        shapes.append(tuple(y.shape[1:]))
    assert shapes == [(5, 28, 28, 64), (5, 28, 28, 256), (4, 14, 14, 512), (2, 14, 14, 512),
                      (2, 7, 7, 1024), (2, 4, 4, 2048)]
    assert tuple(paper_stream.get_layer("flow_block").input.shape[1:]) == (4, 14, 14, 512)
    assert tuple(paper_stream.output.shape) == (None, 2048)


@pytest.mark.parametrize("shape", [(2, 7, 9, 9, 3), (1, 6, 8, 11, 2)])
def test_separable_max_pool_equals_the_3d_max_pool(shape):
    clips = np.random.default_rng(1).normal(size=shape).astype("float32")
    pool = SeparableMaxPooling3D(3, 2)
    expected = keras.layers.MaxPooling3D(3, strides=2)(clips)
    np.testing.assert_array_equal(pool(clips), expected)
    assert pool.compute_output_shape(shape) == tuple(expected.shape)
    assert SeparableMaxPooling3D.from_config(pool.get_config()).get_config() == pool.get_config()


def flow_block_parameter_count(channels, bottleneck, smooth_bias, flow_layer_weights):
    """The flow-of-flow block's weights from the issue's list: 1x1x1 C -> b, flow, 1x3x3 2b -> 2b, 1x1x1
    2b -> b, flow, 1x3x3 2b -> C, batch norm; plus the flow layers' own."""
    width = 2 * bottleneck
    convs = channels * bottleneck + 9 * width * width + width * bottleneck + 9 * width * channels
    return convs + width * smooth_bias + 4 * channels + flow_layer_weights


@pytest.mark.large
def test_the_inflated_flow_block_differs_from_the_per_frame_one_only_by_the_smooth_bias(paper_stream):
    block = paper_stream.get_layer("flow_block")
    assert (block.num_flow_layers, block.bottleneck, block.smooth_bias) == (2, 32, False)
    assert block.between[0].bias is None and block.norm.gamma.numpy().max() == 0.0
    flow_weights = sum(flow.count_params() for flow in block.flows)
    assert block.count_params() == flow_block_parameter_count(512, 32, False, flow_weights)
    per_frame = RepresentationFlowBlock(num_flow_layers=2, bottleneck=32, n_iter=1)
    per_frame.build((None, 4, 14, 14, 512))
    assert per_frame.count_params() == flow_block_parameter_count(512, 32, True, flow_weights)
    assert RepresentationFlowBlock.from_config(block.get_config()).smooth_bias is False

    # A new block is the reference's 3-frame mean residual (batch norm scale 0), through a ReLU.
    features = np.random.default_rng(0).random((1, 4, 6, 6, 8)).astype("float32")
    small = RepresentationFlowBlock(num_flow_layers=2, bottleneck=4, n_iter=2, smooth_bias=False)
    residual = np.maximum((features[:, :-2] + features[:, 1:-1] + features[:, 2:]) / 3, 0)
    np.testing.assert_allclose(small(features), residual, atol=1e-6)
    # With the per-frame block's weights and a zero bias, the two compute the same function.
    small.norm.gamma.assign(np.ones(8, "float32"))
    plain = RepresentationFlowBlock(num_flow_layers=2, bottleneck=4, n_iter=2)
    plain.build(features.shape)
    plain.set_weights(_with_zero_bias(plain, small))
    expected = small(features)
    assert np.abs(expected - residual).max() > 0.01  # the flow branch counts now
    np.testing.assert_allclose(plain(features), expected, atol=1e-5)


def _with_zero_bias(plain, biasless):
    """``biasless``'s weights in ``plain``'s order, with zeros for the smooth convolution's bias."""
    source = {weight.path.split("/", 1)[1]: value for weight, value in zip(biasless.weights, biasless.get_weights())}
    return [source.get(weight.path.split("/", 1)[1], np.zeros(weight.shape, "float32")) for weight in plain.weights]


def _time_extent(layer_name, bottleneck):
    """The reference's time extent of a convolution, by its torchvision name."""
    if layer_name == "conv1":
        return 7
    if layer_name.endswith("downsample_conv"):
        return 1
    return (BOTTLENECK_TIME if bottleneck else BASIC_TIME)[int(layer_name[-1]) - 1]


@pytest.mark.parametrize("kind, input_channels", [("basic", 3), ("bottleneck", 2)])
def test_imagenet_kernels_are_repeated_over_time_layer_by_layer(kind, input_channels, tmp_path):
    spec = TINY[kind]
    state = torchvision_state_dict(spec["widths"], spec["blocks"], spec["bottleneck"], seed=3)
    save_file(state, str(tmp_path / "imagenet.safetensors"))
    path = tmp_path / "imagenet.weights.h5"
    convert_file(tmp_path / "imagenet.safetensors", path)
    config = {**read_weights_config(path), "include_head": False, "input_channels": input_channels}
    backbone = InflatedResNetBackbone(**config)
    load_imagenet_weights(backbone, path)
    checked = set()
    for layer in backbone.leaf_layers():
        prefix = torch_prefix(layer.name)
        if isinstance(layer, keras.layers.Conv3D):
            kernel_2d = np.transpose(state[f"{prefix}.weight"], (2, 3, 1, 0))  # (kh, kw, in, out)
            if layer.name == "conv1" and input_channels != 3:  # the RGB mean for each input plane
                kernel_2d = np.repeat(kernel_2d.mean(axis=2, keepdims=True), input_channels, axis=2)
            kernel = layer.kernel.numpy()
            assert kernel.shape == (_time_extent(layer.name, spec["bottleneck"]), *kernel_2d.shape), layer.name
            for frame in kernel:  # every time slice is the 2-D kernel, unscaled
                np.testing.assert_allclose(frame, kernel_2d, rtol=1e-6, atol=1e-7, err_msg=layer.name)
            checked.add(f"{prefix}.weight")
        elif isinstance(layer, keras.layers.BatchNormalization):
            for key, variable in zip(("weight", "bias", "running_mean", "running_var"),
                                     (layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance)):
                np.testing.assert_array_equal(variable.numpy(), state[f"{prefix}.{key}"])
                checked.add(f"{prefix}.{key}")
    assert checked == {key for key in state if not key.startswith("fc.") and not key.endswith("num_batches_tracked")}


def _tiny_overrides(folder, *extra):
    """The demo at a tiny size with the inflated flow network: 13 frames of 32 px (the fewest the
    flow block after stage 1 and the stride-2 stages leave a frame for), 2 flow iterations."""
    return [f"data.root={folder}/data", f"runtime.output_dir={folder}/run", "model.flow_network=inflated_3d",
            "data.synthetic.classes=4", "data.synthetic.frames=16", "data.synthetic.size=32",
            "data.frame_size=32", "data.rgb_frames=4", "data.flow_frames=13", "data.flow_stride=1",
            "data.batch_size=8", "model.flow.iterations=2", "model.convlstm_units=8", *extra]


def test_stage_rules_pick_the_same_layers_as_in_the_per_frame_network(tmp_path):
    paths = {}
    for network in ("inflated_3d", "per_frame"):
        # 64 px: the RGB stream's CAM map is 2 x 2 (at 32 px its softmax is over one position)
        recipe = load_recipe(DEMO, _tiny_overrides(tmp_path, f"model.flow_network={network}", "data.frame_size=64",
                                                   "data.synthetic.size=64"))
        models = build_stage_models(recipe.model, recipe.data, 4)
        paths[network] = {stage: trainable_layers(models[model], stage)
                          for stage, model in (("flow", "flow"), ("joint", "joint"))}
    inflated = paths["inflated_3d"]
    assert inflated == paths["per_frame"]
    joint_flow = sorted({path.split("/")[1] for path in inflated["joint"] if path.startswith("flow_stream/")})
    assert joint_flow == ["flow_block", "layer4"]
    assert {path.split("/")[1] for path in inflated["flow"] if path.startswith("flow_stream/")} == \
        {"stem", "layer1", "layer2", "layer3", "layer4", "flow_block"}


def test_recipe_follows_the_reference_and_needs_its_frames():
    recipe = load_recipe("hmdb51-repflow")
    model, data, (stage,) = recipe.model, recipe.data, recipe.stages
    assert (model.kind, model.backbone, model.flow_network, model.flow_dropout) == \
        ("representation_flow", "resnet50", "inflated_3d", 0.3)
    assert (data.frame_size, data.flow_frames, data.flow_stride, data.flow_sampling) == (112, 16, 2, "contiguous")
    assert (model.flow.position, model.flow.num_layers, model.flow.bottleneck) == (2, 2, 32)
    # model.flow.weight_decay None: the stage's 1e-6, as the reference
    assert (model.flow.learning_rate_scale, model.flow.weight_decay) == (0.01, None)
    assert (stage.optimizer, stage.learning_rate, stage.momentum, stage.weight_decay, stage.epochs) == \
        ("sgd", 0.01, 0.9, 1e-6, 60)
    # 14 frames leave 3 after stage 2, 1 after the flow block: too few for stage 3's stride.
    with pytest.raises(UserError, match=r"data\.flow_frames.*14.*at least 15.*inflated_3d") as error:
        load_recipe("hmdb51-repflow", ["data.flow_frames=14"])
    assert "\n" not in str(error.value)


@pytest.fixture(scope="module")
def inflated_flow_model(tmp_path_factory):
    """An untrained representation-flow model with the inflated network, saved as kerasflow.fit saves."""
    folder = tmp_path_factory.mktemp("inflated")
    recipe = load_recipe(DEMO, _tiny_overrides(folder, "model.kind=representation_flow"))
    classes = ["right", "left", "down", "up"]
    model = build_stage_models(recipe.model, recipe.data, len(classes))["flow"]
    save_model(model, str(folder / "flow.keras"), model_info(recipe, classes, "flow"))
    return folder / "flow.keras"


@pytest.mark.large
@pytest.mark.parametrize("export_format", ["saved_model", "tflite"])
def test_exports_with_builtin_tflite_ops(export_format, inflated_flow_model, tmp_path, capsys):
    out = tmp_path / export_format
    argv = [str(inflated_flow_model), "--format", export_format, "--out", str(out), "--check-clips", "2"]
    status, _, err = call(export_command, argv, capsys)
    assert status == 0, err
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["check"]["max_probability_difference"] <= 1e-4 and metadata["check"]["top1_agreement"] == 1.0
    assert [(spec["name"], spec["shape"]) for spec in metadata["inputs"]] == [("flow_clip", [1, 13, 32, 32, 3])]
    if export_format == "tflite":
        ops = tflite_ops(out / "model.tflite")
        assert {"CONV_3D", "MAX_POOL_2D", "FULLY_CONNECTED"} <= ops
        assert not [op for op in ops if op.startswith("Flex") or op in ("CUSTOM", "DELEGATE")]


@pytest.mark.large
def test_the_demo_learns_with_the_inflated_network(tmp_path):
    # The demo's flow stream alone at a tiny size: 4 motion classes x 16 videos, 12 epochs (about 50
    # steps); the classes differ only in motion, so accuracy above chance (0.25) needs it.
    recipe = load_recipe(DEMO, _tiny_overrides(
        tmp_path, "model.kind=representation_flow", "data.synthetic.videos_per_class=16", "model.flow_dropout=0.3",
        "stages.flow.epochs=12", "stages.flow.learning_rate=3e-3", "stages.flow.schedule={type: constant}"))
    metrics = train_recipe(recipe, log=lambda *_: None)
    final = metrics["final"]
    assert final["num_videos"] == 16 and final["top1"] >= 0.5


def test_a_search_varies_the_flow_network_and_refuses_too_short_clips(tmp_path):
    path = tiny_recipe(tmp_path, kind="representation_flow")
    raw = yaml.safe_load(path.read_text())
    raw["search"] = {"mode": "grid", "stages": ["flow"],
                     "factors": {"model.flow_network": ["per_frame", "inflated_3d"]}}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    # The tiny recipe's 4-frame clips are too short for conv1's 7 frames: one line, before any training.
    with pytest.raises(UserError, match=r"model\.flow_network=inflated_3d.*data\.flow_frames.*at least 13") as error:
        SearchSpace(path)
    assert "\n" not in str(error.value)
    space = SearchSpace(path, ["data.flow_frames=13", "data.synthetic.frames=16", "data.flow_stride=1"])
    assert space.planned_trials() == [{"model.flow_network": "per_frame"}, {"model.flow_network": "inflated_3d"}]
    trial = space.trial_recipe({"model.flow_network": "inflated_3d"}, tmp_path / "trial")
    assert (trial.model.flow_network, trial.data.flow_frames) == ("inflated_3d", 13)

"""ResNetBackbone: torchvision parameter counts, nested sub-models, serialization, argument checks."""

import keras
import numpy as np
import pytest
from model_testing import run_backbone_test

from kerasflow.backbones import InflatedResNetBackbone, ResNetBackbone, from_preset, preset_names
from kerasflow.backbones.registry import PRESETS
from kerasflow.errors import UserError

TINY = {"stackwise_num_filters": (4, 8, 8, 8), "stackwise_num_blocks": (1, 2, 1, 1), "stem_filters": 4,
        "num_head_classes": 3}


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def randomize(model, seed=0):
    """Random values for every weight; moving variances stay positive."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        low, high = (0.5, 2.0) if "moving_variance" in weight.path else (-0.5, 0.5)
        weight.assign(rng.uniform(low, high, weight.shape).astype("float32"))


@pytest.mark.large
@pytest.mark.parametrize("name, expected", [
    ("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032), ("resnet101", 44_549_160),
])
def test_preset_parameter_counts_equal_torchvision(name, expected):
    backbone = from_preset(name)
    assert trainable_count(backbone) == expected
    assert backbone.feature_channels == (512 if PRESETS[name]["config"]["block_type"] == "basic_block" else 2048)


def test_flow_variant_counts_and_shapes():
    flow = ResNetBackbone.from_preset("resnet34", input_channels=10, include_head=False, image_size=224)
    # torchvision resnet34 minus fc (512*1000 + 1000) plus 7 more conv1 input channels (64*7*7*7)
    assert trainable_count(flow) == 21_797_672 - 513_000 + 64 * 7 * 7 * 7
    assert flow.head is None and set(flow.output) == {"stage1", "stage2", "stage3", "stage4", "stage4_pre_bn",
                                                       "pooled"}
    assert tuple(flow.output["stage4_pre_bn"].shape) == (None, 7, 7, 512)
    assert tuple(flow.output["stage1"].shape) == (None, 56, 56, 64)


def test_nested_models_reproduce_backbone_outputs():
    backbone = ResNetBackbone(block_type="bottleneck_block", **TINY)
    randomize(backbone)
    image = np.random.default_rng(1).normal(size=(2, 37, 45, 3)).astype("float32")
    outputs = backbone(image)
    x = backbone.stem(image)
    assert tuple(x.shape) == (2, 10, 12, 4)  # torch: conv 7x7/2 pad 3 then max pool 3x3/2 pad 1
    for index, stage in enumerate(backbone.stages, start=1):
        assert stage.name == f"layer{index}"
        x, pre_bn = stage(x)
        np.testing.assert_allclose(x, outputs[f"stage{index}"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pre_bn, outputs["stage4_pre_bn"], rtol=1e-5, atol=1e-5)
    logits = backbone.head(backbone.pool(x))
    np.testing.assert_allclose(logits, outputs["logits"], rtol=1e-5, atol=1e-5)
    assert backbone.feature_channels == 32 and outputs["pooled"].shape == (2, 32)


def test_pre_bn_is_last_conv_plus_shortcut_without_relu():
    backbone = ResNetBackbone(block_type="basic_block", **TINY)
    randomize(backbone, seed=3)
    stage4 = backbone.stages[3]
    x = np.random.default_rng(4).normal(size=(1, 6, 6, 8)).astype("float32")
    probe = keras.Model(stage4.input, [stage4.get_layer("layer4_0_conv2").output,
                                       stage4.get_layer("layer4_0_downsample_bn").output])
    last_conv, shortcut = probe(x)
    _, pre_bn = stage4(x)
    np.testing.assert_allclose(pre_bn, last_conv + shortcut, rtol=1e-5, atol=1e-5)
    assert np.min(pre_bn) < 0  # no ReLU


def test_backbone_contract_config_shapes_and_reloads():
    backbone = ResNetBackbone(block_type="basic_block", name="tiny", **TINY)
    randomize(backbone, seed=5)
    image = np.random.default_rng(6).normal(size=(2, 40, 33, 3)).astype("float32")
    # torch's ResNet: /4 after the stem, then /1, /2, /2, /2; the basic block keeps the stage width.
    expected = {"stage1": (2, 10, 9, 4), "stage2": (2, 5, 5, 8), "stage3": (2, 3, 3, 8), "stage4": (2, 2, 2, 8),
                "stage4_pre_bn": (2, 2, 2, 8), "pooled": (2, 8), "logits": (2, 3)}
    loaded = run_backbone_test(backbone, image, expected)
    assert isinstance(loaded, ResNetBackbone)
    np.testing.assert_array_equal(loaded.find_layer("layer2_1_bn2").moving_variance,
                                  backbone.find_layer("layer2_1_bn2").moving_variance)


def test_inflated_backbone_contract_config_shapes_and_reloads():
    backbone = InflatedResNetBackbone(block_type="basic_block", name="tiny_3d", **TINY)
    randomize(backbone, seed=7)
    clip = np.random.default_rng(8).normal(size=(2, 15, 40, 33, 3)).astype("float32")
    # Space as the 2-D backbone's above; time (resnet_3d_frames): conv1 leaves 15 - 6 = 9 frames, the
    # max pool (9 + 2 - 3) // 2 + 1 = 5, and each stage with stride 2 (T + 1) // 2 + 1: 5, 4, 3, 3.
    expected = {"stage1": (2, 5, 10, 9, 4), "stage2": (2, 4, 5, 5, 8), "stage3": (2, 3, 3, 3, 8),
                "stage4": (2, 3, 2, 2, 8), "stage4_pre_bn": (2, 3, 2, 2, 8), "pooled": (2, 8), "logits": (2, 3)}
    loaded = run_backbone_test(backbone, clip, expected)
    assert isinstance(loaded, InflatedResNetBackbone)
    np.testing.assert_array_equal(loaded.find_layer("layer2_1_conv2").kernel,
                                  backbone.find_layer("layer2_1_conv2").kernel)


def test_layer_names_follow_torchvision():
    backbone = ResNetBackbone(block_type="bottleneck_block", **TINY)
    names = {layer.name for layer in backbone.leaf_layers()}
    assert {"conv1", "bn1", "layer1_0_conv3", "layer1_0_downsample_conv", "layer2_1_bn3",
            "layer4_0_downsample_bn", "fc"} <= names
    assert "layer2_1_downsample_conv" not in names
    assert backbone.find_layer("layer2_0_conv2").strides == (2, 2)  # v1.5: stride on the 3x3 conv
    assert backbone.find_layer("layer2_0_conv1").strides == (1, 1)
    with pytest.raises(ValueError, match="layer2_0_conv2"):
        backbone.find_layer("layer2_0_conv2x")


@pytest.mark.parametrize("overrides, message", [
    ({"block_type": "basic"}, "block_type='basic' is unknown"),
    ({"stackwise_num_blocks": (1, 1, 1)}, r"stackwise_num_blocks=\[1, 1, 1\] must hold 4"),
    ({"input_channels": 0}, "input_channels=0 must be a positive integer"),
])
def test_bad_arguments_raise_user_error(overrides, message):
    with pytest.raises(UserError, match=message):
        ResNetBackbone(**{**TINY, **overrides})


def test_unknown_preset_lists_valid_names():
    assert preset_names() == ("resnet18", "resnet34", "resnet50", "resnet101", "tiny")
    with pytest.raises(UserError, match=r"'resnet99'; use one of resnet18, resnet34, resnet50, resnet101, tiny"):
        from_preset("resnet99")


def test_apply_stages_runs_a_range_of_stages():
    backbone = from_preset("tiny", num_head_classes=3)
    randomize(backbone, seed=7)
    image = np.random.default_rng(8).normal(size=(1, 64, 64, 3)).astype("float32")
    outputs = backbone(image)
    stem = backbone.stem(image)
    middle, _ = backbone.apply_stages(stem, 0, 2)
    np.testing.assert_allclose(middle, outputs["stage2"], rtol=1e-5, atol=1e-5)
    end, pre_bn = backbone.apply_stages(middle, 2)
    np.testing.assert_allclose(end, outputs["stage4"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pre_bn, outputs["stage4_pre_bn"], rtol=1e-5, atol=1e-5)



@pytest.mark.large
@pytest.mark.parametrize("network", ["per_frame", "inflated_3d"])
def test_random_start_is_torchvisions_kaiming_normal_fan_out(network):
    """With no ImageNet weights every convolution starts as torchvision's ResNet: N(0, 2 / fan_out), not
    truncated; batch norms at gamma 1, beta 0."""
    from kerasflow.backbones.resnet import InflatedResNetBackbone

    keras.utils.set_random_seed(0)
    cls = ResNetBackbone if network == "per_frame" else InflatedResNetBackbone
    backbone = cls.from_preset("resnet18")
    convs = [layer for layer in backbone.leaf_layers() if isinstance(layer, keras.layers.Conv2D | keras.layers.Conv3D)]
    assert convs
    for layer in convs:
        kernel = keras.ops.convert_to_numpy(layer.kernel).astype(np.float64)
        fan_out = kernel.size // kernel.shape[-2]  # receptive field x output channels
        if kernel.size < 30000:
            continue
        want = np.sqrt(2.0 / fan_out)
        assert abs(kernel.std() / want - 1) < 0.03, (layer.name, kernel.std(), want)
        assert abs(kernel.mean()) < 0.05 * want
        # A normal has 4.55 % of its mass beyond 2 standard deviations; a truncated one has none.
        assert 0.035 < np.mean(np.abs(kernel) > 2 * want) < 0.056, layer.name
    norms = [layer for layer in backbone.leaf_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms
    assert all(np.all(keras.ops.convert_to_numpy(n.gamma) == 1) and np.all(keras.ops.convert_to_numpy(n.beta) == 0)
               for n in norms)


def test_flow_block_convolutions_start_as_the_reference_flow_network():
    """flow_2p1d_resnets.py initialises its flow block's convolutions as the ResNet's: N(0, 2 / fan_out)."""
    from kerasflow.layers import RepresentationFlowBlock

    keras.utils.set_random_seed(0)
    block = RepresentationFlowBlock(num_flow_layers=2, n_iter=1, bottleneck=64)
    block(np.zeros((1, 4, 6, 6, 256), "float32"))
    kernels = {w.path.split("/")[-2]: keras.ops.convert_to_numpy(w) for w in block.weights if w.path.endswith("kernel")}
    smooth = kernels["smooth_1"]  # (1, 3, 3, 128, 128): fan-out 3 * 3 * 128
    assert abs(smooth.std() / np.sqrt(2.0 / (9 * 128)) - 1) < 0.03

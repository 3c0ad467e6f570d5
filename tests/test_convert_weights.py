"""ImageNet weight conversion: parity with an independent NumPy torchvision ResNet, bad files, CLI, 10-channel load."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_testing import assert_one_error_line, call
from numpy.lib.stride_tricks import sliding_window_view
from safetensors.numpy import save_file

from kerasflow.backbones import ResNetBackbone, convert_file, convert_state_dict, load_imagenet_weights
from kerasflow.backbones.weights import config_path
from kerasflow.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {
    "basic": {"widths": (4, 8, 8, 8), "blocks": (1, 1, 1, 2), "bottleneck": False},
    "bottleneck": {"widths": (4, 8, 8, 8), "blocks": (2, 1, 1, 1), "bottleneck": True},
}
STEM, CLASSES = 4, 5


# --- torchvision-layout state dict and forward pass, written from torchvision/models/resnet.py ---

def torchvision_state_dict(widths, blocks, bottleneck, stem=STEM, classes=CLASSES, seed=0, in_channels=3):
    """Random ``resnet.state_dict()`` of a torchvision ResNet (float32, plus int64 num_batches_tracked)."""
    rng = np.random.default_rng(seed)
    state = {}

    def conv(key, out_c, in_c, k):
        std = np.sqrt(2.0 / (in_c * k * k))
        state[f"{key}.weight"] = rng.normal(0, std, (out_c, in_c, k, k)).astype(np.float32)

    def bn(key, c):
        state[f"{key}.weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        state[f"{key}.bias"] = rng.normal(0, 0.2, c).astype(np.float32)
        state[f"{key}.running_mean"] = rng.normal(0, 0.3, c).astype(np.float32)
        state[f"{key}.running_var"] = rng.uniform(0.3, 3.0, c).astype(np.float32)
        state[f"{key}.num_batches_tracked"] = np.array(7, dtype=np.int64)

    expansion = 4 if bottleneck else 1
    conv("conv1", stem, in_channels, 7)
    bn("bn1", stem)
    in_c = stem
    for stage, (width, count) in enumerate(zip(widths, blocks), start=1):
        for index in range(count):
            prefix = f"layer{stage}.{index}"
            stride = 2 if stage > 1 and index == 0 else 1
            kernels = [(width, 1), (width, 3), (width * expansion, 1)] if bottleneck else [(width, 3), (width, 3)]
            c = in_c
            for number, (out_c, k) in enumerate(kernels, start=1):
                conv(f"{prefix}.conv{number}", out_c, c, k)
                bn(f"{prefix}.bn{number}", out_c)
                c = out_c
            if stride != 1 or in_c != width * expansion:
                conv(f"{prefix}.downsample.0", width * expansion, in_c, 1)
                bn(f"{prefix}.downsample.1", width * expansion)
            in_c = width * expansion
    state["fc.weight"] = rng.normal(0, 1 / np.sqrt(in_c), (classes, in_c)).astype(np.float32)
    state["fc.bias"] = rng.normal(0, 0.1, classes).astype(np.float32)
    return state


def np_conv(x, weight, stride, pad):
    """torch Conv2d (bias=False): NCHW cross-correlation with zero padding."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = sliding_window_view(x, weight.shape[2:], axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwij,ocij->nohw", windows, weight.astype(np.float64))


def np_bn(x, state, key):
    shape = (1, -1, 1, 1)
    mean, var = state[f"{key}.running_mean"].reshape(shape), state[f"{key}.running_var"].reshape(shape)
    gamma, beta = state[f"{key}.weight"].reshape(shape), state[f"{key}.bias"].reshape(shape)
    return (x - mean) / np.sqrt(var + 1e-5) * gamma + beta


def np_maxpool(x):
    """torch MaxPool2d(3, stride=2, padding=1): -inf padding."""
    x = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    return sliding_window_view(x, (3, 3), axis=(2, 3))[:, :, ::2, ::2].max(axis=(-1, -2))


def relu(x):
    return np.maximum(x, 0)


def np_block(x, state, prefix, stride, bottleneck):
    """Returns (output, noBN): EgoRCNN's noBN = last conv before its BN + residual, no ReLU."""
    if bottleneck:
        out = relu(np_bn(np_conv(x, state[f"{prefix}.conv1.weight"], 1, 0), state, f"{prefix}.bn1"))
        out = relu(np_bn(np_conv(out, state[f"{prefix}.conv2.weight"], stride, 1), state, f"{prefix}.bn2"))
        last = np_conv(out, state[f"{prefix}.conv3.weight"], 1, 0)
        last_bn = np_bn(last, state, f"{prefix}.bn3")
    else:
        out = relu(np_bn(np_conv(x, state[f"{prefix}.conv1.weight"], stride, 1), state, f"{prefix}.bn1"))
        last = np_conv(out, state[f"{prefix}.conv2.weight"], 1, 1)
        last_bn = np_bn(last, state, f"{prefix}.bn2")
    residual = x
    if f"{prefix}.downsample.0.weight" in state:
        residual = np_bn(np_conv(x, state[f"{prefix}.downsample.0.weight"], stride, 0), state,
                         f"{prefix}.downsample.1")
    return relu(last_bn + residual), last + residual


def np_resnet(image_nchw, state, blocks, bottleneck):
    x = np.asarray(image_nchw, np.float64)
    x = np_maxpool(relu(np_bn(np_conv(x, state["conv1.weight"], 2, 3), state, "bn1")))
    outputs = {}
    for stage, count in enumerate(blocks, start=1):
        for index in range(count):
            stride = 2 if stage > 1 and index == 0 else 1
            x, no_bn = np_block(x, state, f"layer{stage}.{index}", stride, bottleneck)
        outputs[f"stage{stage}"] = x
    outputs["stage4_pre_bn"] = no_bn
    outputs["pooled"] = x.mean(axis=(2, 3))
    outputs["logits"] = outputs["pooled"] @ state["fc.weight"].T + state["fc.bias"]
    return outputs


# --- fixtures ---

@pytest.fixture(scope="module", params=sorted(TINY))
def converted(request, tmp_path_factory):
    spec = TINY[request.param]
    state = torchvision_state_dict(spec["widths"], spec["blocks"], spec["bottleneck"])
    folder = tmp_path_factory.mktemp(request.param)
    in_path, out_path = folder / "tiny.safetensors", folder / "tiny.weights.h5"
    save_file(state, str(in_path))
    backbone = convert_file(in_path, out_path)
    return {"spec": spec, "state": state, "backbone": backbone, "in": in_path, "out": out_path}


def max_relative_error(actual, expected):
    return np.abs(actual - expected).max() / np.abs(expected).max()


# --- (a, b) parity, including odd input sizes that exercise the torch padding ---

@pytest.mark.parametrize("size", [(64, 64), (65, 67)])
def test_converted_backbone_matches_numpy_torchvision_forward(converted, size):
    spec, state, backbone = converted["spec"], converted["state"], converted["backbone"]
    image = np.random.default_rng(1).normal(size=(2, 3, *size)).astype(np.float32)
    expected = np_resnet(image, state, spec["blocks"], spec["bottleneck"])
    actual = backbone(np.transpose(image, (0, 2, 3, 1)), training=False)
    for key, value in expected.items():
        got = np.asarray(actual[key])
        if got.ndim == 4:
            got = np.transpose(got, (0, 3, 1, 2))
        assert got.shape == value.shape, key
        assert max_relative_error(got, value) <= 1e-4, key
    # the noBN tensor differs from the BN'd output, so the check above is not vacuous
    assert max_relative_error(expected["stage4_pre_bn"], expected["stage4"]) > 0.1


def test_converted_file_infers_architecture_and_round_trips(converted):
    spec = converted["spec"]
    with open(config_path(str(converted["out"]))) as file:
        config = json.load(file)["config"]
    assert config["stackwise_num_filters"] == list(spec["widths"])
    assert config["stackwise_num_blocks"] == list(spec["blocks"])
    assert config["block_type"] == ("bottleneck_block" if spec["bottleneck"] else "basic_block")
    assert (config["stem_filters"], config["num_head_classes"], config["include_head"]) == (STEM, CLASSES, True)
    loaded = load_imagenet_weights(ResNetBackbone(**config), converted["out"])
    image = np.random.default_rng(2).normal(size=(1, 40, 40, 3)).astype(np.float32)
    want = converted["backbone"](image)["logits"]
    np.testing.assert_array_equal(np.asarray(loaded(image)["logits"]), np.asarray(want))
    assert not [name for name in os.listdir(converted["out"].parent) if name.startswith(".tmp")]


@pytest.mark.large
def test_preset_sized_state_dict_fits_its_preset():
    state = torchvision_state_dict((64, 128, 256, 512), (2, 2, 2, 2), False, stem=64, classes=1000)
    backbone = convert_state_dict(state, arch="resnet18")
    assert sum(int(np.prod(w.shape)) for w in backbone.trainable_weights) == 11_689_512
    w = state["layer3.0.downsample.0.weight"]
    np.testing.assert_array_equal(backbone.find_layer("layer3_0_downsample_conv").kernel,
                                  np.transpose(w, (2, 3, 1, 0)))
    np.testing.assert_array_equal(backbone.find_layer("fc").kernel, state["fc.weight"].T)
    np.testing.assert_array_equal(backbone.find_layer("layer4_1_bn2").moving_variance,
                                  state["layer4.1.bn2.running_var"])
    with pytest.raises(UserError, match=r"resnet34: missing key 'layer1\.2\.conv1\.weight'"):
        convert_state_dict(state, arch="resnet34", source="r18.safetensors")


# --- (c) files that do not fit ---

def _tiny_state():
    spec = TINY["basic"]
    return torchvision_state_dict(spec["widths"], spec["blocks"], spec["bottleneck"])


def _convert_error(tmp_path, state, arch=None):
    in_path = tmp_path / "bad.safetensors"
    save_file(state, str(in_path))
    with pytest.raises(UserError) as info:
        convert_file(in_path, tmp_path / "out.weights.h5", arch=arch)
    assert str(in_path) in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "out.weights.h5").exists()
    return str(info.value)


def test_missing_key_is_named(tmp_path):
    state = _tiny_state()
    del state["layer2.0.bn1.running_var"]
    message = _convert_error(tmp_path, state)
    assert "missing key 'layer2.0.bn1.running_var' (expected shape (8,))" in message


def test_wrong_shape_is_named_with_both_shapes(tmp_path):
    state = _tiny_state()
    state["layer3.0.conv2.weight"] = state["layer3.0.conv2.weight"][:, :, :1, :1].copy()
    message = _convert_error(tmp_path, state)
    assert "key 'layer3.0.conv2.weight' has shape (8, 8, 1, 1), expected (8, 8, 3, 3)" in message


def test_unexpected_key_is_named(tmp_path):
    state = _tiny_state()
    state["layer1.0.se.weight"] = np.zeros(3, np.float32)
    assert "unexpected key 'layer1.0.se.weight'" in _convert_error(tmp_path, state)


def test_arch_mismatch_names_first_bad_key(tmp_path):
    message = _convert_error(tmp_path, _tiny_state(), arch="resnet34")
    assert "does not hold a resnet34: key 'conv1.weight' has shape (4, 3, 7, 7), expected (64, 3, 7, 7)" in message


def test_neither_safetensors_nor_torch_is_named(tmp_path):
    in_path = tmp_path / "model.bin"
    in_path.write_bytes(b"this is neither a safetensors file nor a torch.save file" * 10)
    with pytest.raises(UserError, match=re.escape(f"{in_path}: not a readable safetensors file (") + r".*\) nor a "
                                        r"torch\.save file; give a \.pth or \.safetensors state dict$"):
        convert_file(in_path, tmp_path / "out.weights.h5")


def test_output_name_must_be_keras_weights(tmp_path):
    with pytest.raises(UserError, match=r"out\.h5: the output name must end in \.weights\.h5"):
        convert_file(tmp_path / "x.safetensors", tmp_path / "out.h5")


# --- (d) loading into a 10-channel flow backbone ---

def test_flow_backbone_gets_channel_mean_of_conv1(converted):
    config = json.load(open(config_path(str(converted["out"]))))["config"]
    flow = ResNetBackbone(**{**config, "input_channels": 10, "include_head": False})
    load_imagenet_weights(flow, converted["out"])
    rgb_kernel = converted["state"]["conv1.weight"]  # (out, 3, 7, 7)
    expected = np.repeat(rgb_kernel.mean(axis=1, keepdims=True), 10, axis=1).transpose(2, 3, 1, 0)
    kernel = np.asarray(flow.find_layer("conv1").kernel)
    assert kernel.shape == (7, 7, 10, STEM)
    np.testing.assert_allclose(kernel, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(flow.find_layer("layer4_0_conv2").kernel,
                                  converted["state"]["layer4.0.conv2.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(flow.find_layer("layer2_0_downsample_bn").moving_mean,
                                  converted["state"]["layer2.0.downsample.1.running_mean"])
    assert flow.head is None


def test_loading_other_architecture_is_refused(converted):
    config = json.load(open(config_path(str(converted["out"]))))["config"]
    other = ResNetBackbone(**{**config, "stackwise_num_blocks": [1, 1, 1, 3]})
    with pytest.raises(UserError, match=re.escape(str(converted["out"])) + ".*stackwise_num_blocks=.*1, 1, 1, 3"):
        load_imagenet_weights(other, converted["out"])
    with pytest.raises(UserError, match="5-class head but the model needs 7"):
        load_imagenet_weights(ResNetBackbone(**{**config, "num_head_classes": 7}), converted["out"])


def test_weights_without_sidecar_are_refused(converted, tmp_path):
    lonely = tmp_path / "lonely.weights.h5"
    shutil.copy(converted["out"], lonely)
    with pytest.raises(UserError, match=re.escape(f"{lonely}.json: cannot read the architecture of {lonely}")):
        load_imagenet_weights(converted["backbone"], lonely)


# --- (f) command line ---

TF_STARTUP_LOG = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} |To enable the following)")


def _run_cli(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"}
    result = subprocess.run([sys.executable, os.path.join(REPO, "tools", "convert_weights.py"), *map(str, args)],
                            capture_output=True, text=True, env=env, timeout=300)
    # TensorFlow's C++ runtime prints start-up lines before any Python code can silence it.
    stderr = [line for line in result.stderr.splitlines() if not TF_STARTUP_LOG.match(line)]
    return result, stderr


@pytest.mark.large
def test_cli_converts_and_rejects(tmp_path):
    state = _tiny_state()
    good, out_path = tmp_path / "good.safetensors", tmp_path / "cli.weights.h5"
    save_file(state, str(good))
    result, stderr = _run_cli(good, out_path)
    assert result.returncode == 0, result.stderr
    assert out_path.is_file() and os.path.isfile(config_path(str(out_path)))
    assert f"wrote {out_path}" in result.stdout

    bad = tmp_path / "bad.safetensors"
    del state["fc.weight"]
    save_file(state, str(bad))
    result, stderr = _run_cli(bad, tmp_path / "bad.weights.h5")
    assert result.returncode == 2
    assert len(stderr) == 1, result.stderr
    assert stderr[0].startswith(f"error: {bad} does not hold a") and "missing key 'fc.weight'" in stderr[0]


def test_cli_makes_the_output_folder_and_checks_arch_first(tmp_path, monkeypatch, capsys):
    # README: python -m kerasflow.convert_weights resnet34.safetensors weights/resnet34.weights.h5 --arch resnet34,
    # in a fresh clone that has no weights/ folder.
    from kerasflow import convert_weights

    monkeypatch.chdir(tmp_path)
    save_file(_tiny_state(), "tiny.safetensors")
    assert convert_weights.main(["tiny.safetensors", "weights/tiny.weights.h5"]) == 0
    assert Path("weights/tiny.weights.h5").is_file()
    assert Path("weights/tiny.weights.h5.json").is_file()
    with pytest.raises(ValueError, match=r"^`arch` must be a backbone preset: one of resnet18, resnet34, .*\. "
                                         r"Received: arch='resnet99'$"):
        convert_file("missing.safetensors", "other/x.weights.h5", arch="resnet99")
    status, _, err = call(convert_weights, ["missing.safetensors", "other/x.weights.h5", "--arch", "resnet99"],
                          capsys)
    assert_one_error_line(status, err, "error: --arch resnet99: --arch must be a backbone preset: one of resnet18, "
                                       "resnet34, ")
    a_file = tmp_path / "a file"
    a_file.write_text("keep")
    with pytest.raises(UserError, match=re.escape(f"{a_file / 'x.weights.h5'}: cannot make folder {a_file}")):
        convert_file("tiny.safetensors", a_file / "x.weights.h5")
    assert not Path("other").exists() and a_file.read_text() == "keep"

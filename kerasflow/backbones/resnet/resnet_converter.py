"""Convert a torchvision-layout ResNet state dict (a ``.pth`` file ``torch.save`` wrote, or ``.safetensors``)
into a Keras ``.weights.h5``. ``.pth`` files are read without PyTorch and without running their pickled
code (``kerasflow.backbones.torch_file``).

The state dict keys are torchvision's (``conv1.weight``, ``bn1.running_var``, ``layer2.0.downsample.0.weight``,
``fc.bias``...; timm's ``resnet34.tv_in1k`` uses the same layout). The architecture is read from the keys and
shapes, or checked against a preset name. Next to ``OUT.weights.h5`` the converter writes
``OUT.weights.h5.json`` with the ``ResNetBackbone`` constructor arguments (see ``weights.config_path``).
"""

import json
import os
import re

import keras
import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file
from tqdm import tqdm

from kerasflow.atomic import atomic_path, write_error
from kerasflow.backbones.presets import from_preset
from kerasflow.backbones.registry import preset_names
from kerasflow.backbones.resnet.resnet_backbone import ResNetBackbone
from kerasflow.backbones.resnet.resnet_presets import TORCHVISION_STRIDES
from kerasflow.backbones.torch_file import is_torch_file, read_torch_file
from kerasflow.backbones.weights import config_path
from kerasflow.errors import UserError

IGNORED_SUFFIX = ".num_batches_tracked"
# keras value = np.transpose(torch value, axes)
CONV_AXES = (2, 3, 1, 0)  # OIHW -> HWIO
DENSE_AXES = (1, 0)  # (out, in) -> (in, out)
VECTOR_AXES = (0,)
BN_KEYS = ("weight", "bias", "running_mean", "running_var")  # gamma, beta, moving mean, moving variance
HEAD_NDIM = {"fc.weight": 2, "fc.bias": 1}


def torch_prefix(layer_name):
    """``"layer2_0_downsample_conv"`` -> ``"layer2.0.downsample.0"`` (torchvision module path)."""
    name = layer_name.replace("_downsample_conv", "_downsample_0").replace("_downsample_bn", "_downsample_1")
    return name.replace("_", ".")


def torch_layout(backbone):
    """Map every torchvision key of ``backbone`` to ``(keras variable, axes)``, in graph order."""
    layout = {}
    for layer in backbone.leaf_layers():
        prefix = torch_prefix(layer.name)
        if isinstance(layer, keras.layers.Conv2D):
            layout[f"{prefix}.weight"] = (layer.kernel, CONV_AXES)
        elif isinstance(layer, keras.layers.BatchNormalization):
            variables = [layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance]
            for key, variable in zip(BN_KEYS, variables):
                layout[f"{prefix}.{key}"] = (variable, VECTOR_AXES)
        elif isinstance(layer, keras.layers.Dense):
            layout[f"{prefix}.weight"] = (layer.kernel, DENSE_AXES)
            layout[f"{prefix}.bias"] = (layer.bias, VECTOR_AXES)
    return layout


def torch_shape(variable, axes):
    """Shape the torch tensor must have so that ``np.transpose(tensor, axes)`` fits ``variable``."""
    shape = [0] * len(axes)
    for keras_axis, torch_axis in enumerate(axes):
        shape[torch_axis] = variable.shape[keras_axis]
    return tuple(shape)


def _shape_of(state_dict, key, source, ndim):
    if key not in state_dict:
        raise UserError(f"{source}: missing key {key!r}; give a torchvision-layout ResNet state dict")
    shape = tuple(state_dict[key].shape)
    if len(shape) != ndim:
        raise UserError(f"{source}: key {key!r} has shape {shape}, expected a {ndim}-d tensor")
    return shape


def infer_config(state_dict, source="<state dict>"):
    """``ResNetBackbone`` constructor arguments that fit the keys and shapes of ``state_dict``.

    Strides cannot be read from weights; torchvision's ``(1, 2, 2, 2)`` is assumed.
    """
    conv1 = _shape_of(state_dict, "conv1.weight", source, ndim=4)
    num_blocks, num_filters = [], []
    for stage in range(1, 5):
        indices = {int(m.group(1)) for key in state_dict
                   if (m := re.match(rf"layer{stage}\.(\d+)\.", key))}
        num_blocks.append(max(indices) + 1 if indices else 1)
        num_filters.append(_shape_of(state_dict, f"layer{stage}.0.conv1.weight", source, ndim=4)[0])
    head_key = next((key for key in HEAD_NDIM if key in state_dict), None)
    num_head_classes = 1000
    if head_key is not None:
        num_head_classes = _shape_of(state_dict, head_key, source, HEAD_NDIM[head_key])[0]
    return {
        "stackwise_num_filters": num_filters,
        "stackwise_num_blocks": num_blocks,
        "stackwise_num_strides": list(TORCHVISION_STRIDES),
        "block_type": "bottleneck_block" if "layer1.0.conv3.weight" in state_dict else "basic_block",
        "stem_filters": conv1[0],
        "input_channels": conv1[1],
        "include_head": head_key is not None,
        "num_head_classes": num_head_classes,
    }


def check_layout(layout, state_dict, source, what="a ResNet"):
    """Raise ``UserError`` on the first missing, wrongly shaped or unexpected key."""
    for key, (variable, axes) in layout.items():
        expected = torch_shape(variable, axes)
        if key not in state_dict:
            raise UserError(
                f"{source} does not hold {what}: missing key {key!r} (expected shape {expected})"
            )
        found = tuple(state_dict[key].shape)
        if found != expected:
            raise UserError(
                f"{source} does not hold {what}: key {key!r} has shape {found}, expected {expected}"
            )
    unexpected = [key for key in state_dict if key not in layout]
    if unexpected:
        raise UserError(
            f"{source} does not hold {what}: unexpected key {unexpected[0]!r} "
            f"(shape {tuple(state_dict[unexpected[0]].shape)}; {len(unexpected)} unexpected in all)"
        )


def convert_state_dict(state_dict, arch=None, source="<state dict>"):
    """The ``ResNetBackbone`` described by ``state_dict`` (torchvision keys, NumPy arrays), with its weights.

    ``arch`` (a backbone preset name) checks the file against that preset instead of inferring the
    architecture; the head (present or not, number of classes) always follows the file.
    ``source`` names the state dict in error messages.
    """
    state_dict = {key: value for key, value in state_dict.items() if not key.endswith(IGNORED_SUFFIX)}
    config = infer_config(state_dict, source)
    head = {key: config[key] for key in ("include_head", "num_head_classes")}
    if arch is None:
        backbone = ResNetBackbone(**config)
        what = f"a {config['block_type']} ResNet"
    else:
        backbone = from_preset(arch, **head)
        what = f"a {arch}"
    layout = torch_layout(backbone)
    check_layout(layout, state_dict, source, what)
    for key, (variable, axes) in tqdm(layout.items(), desc="assigning weights", unit="tensor",
                                      disable=None, leave=False):
        variable.assign(np.transpose(state_dict[key], axes).astype(variable.dtype))
    return backbone


def read_state_dict(path):
    """The tensors of ``path``, a ``torch.save`` file (``.pth``) or a ``.safetensors`` file, as NumPy arrays."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file; give a .pth or .safetensors ResNet state dict")
    if is_torch_file(path):
        return read_torch_file(path)
    try:
        return load_file(path)
    except (SafetensorError, ValueError, TypeError, OSError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise UserError(
            f"{path}: not a readable safetensors file ({reason}) nor a torch.save file; give a .pth or "
            ".safetensors state dict"
        ) from None


def convert_file(in_path, out_path, arch=None):
    """Convert ``in_path`` (``.pth`` or ``.safetensors``) into ``out_path`` (``.weights.h5``) plus its config sidecar.

    Returns the converted ``ResNetBackbone``. The folder of ``out_path`` is made if missing.
    """
    if not str(out_path).endswith(".weights.h5"):
        raise UserError(f"{out_path}: the output name must end in .weights.h5")
    if arch is not None and arch not in preset_names():
        raise ValueError(f"`arch` must be a backbone preset: one of {', '.join(preset_names())}. "
                         f"Received: arch={arch!r}")
    in_path, out_path = str(in_path), str(out_path)
    backbone = convert_state_dict(read_state_dict(in_path), arch=arch, source=in_path)
    out_folder = os.path.dirname(os.path.abspath(out_path))
    try:
        os.makedirs(out_folder, exist_ok=True)  # e.g. weights/, which a fresh clone lacks
    except OSError as error:
        raise write_error(out_path, error) or UserError(f"{out_path}: cannot make folder {out_folder} "
                                                        f"({error.strerror}); choose another path") from None
    config = {key: value for key, value in backbone.get_config().items()
              if key not in ("name", "trainable", "image_size")}
    sidecar = {"class_name": "ResNetBackbone", "config": config, "source": os.path.basename(in_path)}

    def write_config(path):
        with open(path, "w") as file:
            json.dump(sidecar, file, indent=2)

    with atomic_path(out_path, ".weights.h5") as temporary:
        backbone.save_weights(temporary)
    with atomic_path(config_path(out_path)) as temporary:
        write_config(temporary)
    return backbone

"""Load converted ImageNet weights (``python -m kerasflow.convert_weights`` output) into a ``ResNetBackbone``."""

import json
import os

import numpy as np

from kerasflow.errors import UserError

ARCHITECTURE_KEYS = (
    "block_type", "stackwise_num_blocks", "stackwise_num_filters", "stackwise_num_strides", "stem_filters",
)
CONFIG_KEYS = (*ARCHITECTURE_KEYS, "input_channels", "include_head", "num_head_classes")


def config_path(weights_path):
    """Sidecar with the ``ResNetBackbone`` arguments: ``X.weights.h5`` -> ``X.weights.h5.json``."""
    return f"{weights_path}.json"


def read_weights_config(weights_path):
    """The constructor arguments stored next to ``weights_path`` by the converter."""
    weights_path = str(weights_path)
    if not os.path.isfile(weights_path):
        raise UserError(f"{weights_path}: no such file; convert the weights with python -m kerasflow.convert_weights")
    sidecar = config_path(weights_path)
    try:
        with open(sidecar) as file:
            config = json.load(file)["config"]
        return {key: config[key] for key in CONFIG_KEYS}
    except (OSError, ValueError, KeyError, TypeError) as error:
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        raise UserError(
            f"{sidecar}: cannot read the architecture of {weights_path} ({reason}); "
            "re-run python -m kerasflow.convert_weights"
        ) from None


def load_imagenet_weights(backbone, path):
    """Copy the converted weights at ``path`` into ``backbone``, layer by layer (by name).

    If ``backbone`` takes another number of input channels than the file (e.g. 10 for stacked
    optical flow), ``conv1``'s kernel is averaged over the file's input channels and repeated
    ``backbone.input_channels`` times (EgoRCNN's ``change_key_names``, no rescaling). Without
    ``backbone.include_head`` the file's ``fc`` is skipped. A 3-D backbone (``InflatedResNetBackbone``)
    gets each 2-D kernel inflated to its time extent (``inflate_kernel``). Returns ``backbone``.
    """
    from kerasflow.backbones.resnet import ResNetBackbone  # here: the rest of the module needs no Keras

    path = str(path)
    config = read_weights_config(path)
    needed = backbone.get_config()  # lists, like the JSON sidecar
    differing = [key for key in ARCHITECTURE_KEYS if config[key] != needed[key]]
    if differing:
        holds = ", ".join(f"{key}={config[key]}" for key in differing)
        needs = ", ".join(f"{key}={needed[key]}" for key in differing)
        raise UserError(
            f"{path} holds a ResNet with {holds} but the model needs {needs}; "
            "convert weights of the matching architecture"
        )
    if backbone.include_head and not config["include_head"]:
        raise UserError(f"{path} has no ImageNet head (fc); build the backbone with include_head=False")
    if backbone.include_head and config["num_head_classes"] != backbone.num_head_classes:
        raise UserError(
            f"{path} holds a {config['num_head_classes']}-class head but the model needs "
            f"{backbone.num_head_classes}; build the backbone with num_head_classes="
            f"{config['num_head_classes']} or include_head=False"
        )
    source = ResNetBackbone(**config)
    try:
        source.load_weights(path)
    except (OSError, ValueError, KeyError) as error:
        reason = " ".join(str(error).split())
        raise UserError(
            f"{path}: cannot load the weights ({reason}); re-run python -m kerasflow.convert_weights"
        ) from None
    for layer in source.leaf_layers():
        if not layer.weights or (layer is source.head and not backbone.include_head):
            continue
        values = layer.get_weights()
        if layer.name == "conv1" and source.input_channels != backbone.input_channels:
            mean = values[0].mean(axis=2, keepdims=True)
            values[0] = np.repeat(mean, backbone.input_channels, axis=2)
        target = backbone.find_layer(layer.name)
        target.set_weights([inflate_kernel(value, weight.shape) for value, weight in zip(values, target.weights)])
    return backbone


def inflate_kernel(value, shape):
    """A 2-D kernel ``(kh, kw, in, out)`` repeated over time to a 3-D ``shape`` ``(kt, kh, kw, in, out)``,
    unscaled, as the representation-flow code inflates ImageNet kernels (``load_2d_state_dict``);
    ``value`` itself when it already has ``shape``'s rank (batch norms, 2-D kernels)."""
    if len(shape) == value.ndim + 1:
        return np.repeat(value[None], shape[0], axis=0)
    return value

"""Pieces every stream shares: the backbone by name (with its ImageNet weights) and layer walking."""

import keras

from kerasflow.backbones import resnet_backbone
from kerasflow.backbones.weights import load_imagenet_weights


def make_backbone(name, weights=None, input_channels=3, include_head=True, num_head_classes=1000, image_size=None):
    """The ResNet preset ``name`` with the converted ImageNet ``weights`` file loaded (or random if None)."""
    backbone = resnet_backbone(
        name,
        input_channels=input_channels,
        include_head=include_head,
        num_head_classes=num_head_classes,
        image_size=image_size,
    )
    if weights:
        load_imagenet_weights(backbone, weights)
    return backbone


def apply_backbone_stages(backbone, x, first, last):
    """Run ``backbone.stages[first:last]`` on ``x``; returns ``(output, pre_bn)`` of the last one run."""
    pre_bn = None
    for stage in backbone.stages[first:last]:
        x, pre_bn = stage(x)
    return x, pre_bn


STREAM_NAMES = ("rgb_stream", "flow_stream")


def streams_of(model):
    """The stream bodies (``rgb_stream``, ``flow_stream``) inside ``model``, or ``model`` itself if it is one."""
    if model.name in STREAM_NAMES:
        return {model.name: model}
    return {layer.name: layer for layer in model.layers if layer.name in STREAM_NAMES}


def walk_layers(layer, prefix=""):
    """Yield ``(path, layer)`` for ``layer``'s leaves, descending into nested models (``a/b/conv1``)."""
    if not isinstance(layer, keras.Model):
        yield prefix.rstrip("/"), layer
        return
    for child in layer.layers:
        if not isinstance(child, keras.layers.InputLayer):
            yield from walk_layers(child, f"{prefix}{child.name}/")

"""The backbone presets a recipe names (``model.backbone``) and ``from_preset``, which builds one.

The table is plain data, so the recipe schema reads the names without starting TensorFlow. Each
preset names its backbone class (a module and class name, imported on first use) and the class's
constructor arguments; ``from_preset(name, weights=None, **overrides)`` builds it as keras-hub's
``Backbone.from_preset`` does, with ImageNet weights fetched and cached by name (``weights="imagenet"``,
``kerasflow.backbones.imagenet``) or read from a converted file.
"""

import importlib

from kerasflow.errors import UserError

TORCHVISION_STRIDES = (1, 2, 2, 2)
IMAGENET = "imagenet"  # the weights value that names a preset's ImageNet weights (``kerasflow.backbones.imagenet``)
_RESNET = "kerasflow.backbones.resnet:ResNetBackbone"
_TORCHVISION = {"stackwise_num_filters": (64, 128, 256, 512), "stackwise_num_strides": TORCHVISION_STRIDES,
                "stem_filters": 64}

PRESETS = {}

# Every backbone names its stage models layer1 ... layer4 and its blocks' main-path convolutions
# <stage>_<block>_conv<k>, as torchvision does. The training stages' trainable rules name these groups
# (paths relative to the backbone's place in a stream; kerasflow.models.stages).
LAYER_GROUPS = {
    # The last stage whole (the flow stream's part of the joint stage).
    "last_stage": ("layer4/*",),
    # The main-path convolutions of the last stage's blocks, not their batch norms nor the downsample
    # shortcut: what EgoRCNN's second RGB stage and its joint stage train.
    "last_stage_convs": ("layer4/layer4_*_conv?",),
}


def register_preset(name, backbone_class, description, imagenet_checkpoint=None, **config):
    """Add preset ``name``: ``backbone_class`` (``"module:Class"``) built with ``config``.

    ``imagenet_checkpoint``: the file name of its ImageNet weights under torchvision's download folder
    (``kerasflow.backbones.imagenet``), or None when it has none.
    """
    if name in PRESETS:
        raise ValueError(f"backbone preset {name!r} is registered already")
    PRESETS[name] = {"class": backbone_class, "config": config, "description": description,
                     "imagenet_checkpoint": imagenet_checkpoint}


# The checkpoints are torchvision's IMAGENET1K_V1 weights, which EgoRCNN and the representation-flow code
# start from; the 8 hex digits in each name are the start of the file's SHA-256.
register_preset("resnet18", _RESNET, "torchvision ResNet-18 (basic blocks 2-2-2-2), 11.7 M parameters",
                "resnet18-f37072fd.pth", stackwise_num_blocks=(2, 2, 2, 2), block_type="basic_block",
                **_TORCHVISION)
register_preset("resnet34", _RESNET, "torchvision ResNet-34 (basic blocks 3-4-6-3), 21.8 M parameters",
                "resnet34-b627a593.pth", stackwise_num_blocks=(3, 4, 6, 3), block_type="basic_block",
                **_TORCHVISION)
register_preset("resnet50", _RESNET, "torchvision ResNet-50 v1.5 (bottlenecks 3-4-6-3), 25.6 M parameters",
                "resnet50-0676ba61.pth", stackwise_num_blocks=(3, 4, 6, 3), block_type="bottleneck_block",
                **_TORCHVISION)
register_preset("resnet101", _RESNET, "torchvision ResNet-101 v1.5 (bottlenecks 3-4-23-3), 44.5 M parameters",
                "resnet101-63fe2227.pth", stackwise_num_blocks=(3, 4, 23, 3), block_type="bottleneck_block",
                **_TORCHVISION)
# A ResNet-10-shaped toy at 1/8 width for the demo and the tests: no ImageNet weights exist for it.
register_preset("tiny", _RESNET, "1/8-width ResNet-10 for demos and tests (no ImageNet weights)",
                stackwise_num_filters=(8, 16, 32, 64), stackwise_num_blocks=(1, 1, 1, 1),
                stackwise_num_strides=TORCHVISION_STRIDES, block_type="basic_block", stem_filters=8)


def preset_names():
    """The names ``model.backbone`` accepts, in registration order."""
    return tuple(PRESETS)


def preset_config(name):
    """Constructor arguments of preset ``name`` (a new dict); ``UserError`` for an unknown name."""
    if name not in PRESETS:
        raise UserError(f"unknown backbone preset {name!r}; use one of {', '.join(PRESETS)}")
    return dict(PRESETS[name]["config"])


def imagenet_checkpoint(name):
    """File name of preset ``name``'s ImageNet weights under torchvision's download folder, or None."""
    preset_config(name)
    return PRESETS[name]["imagenet_checkpoint"]


def flow_stream_weights(backbone, flow_backbone, weights, flow_weights):
    """The flow stream's ImageNet weights (``model.flow_weights``, else ``model.weights`` when it is
    ``imagenet``, which names each backbone's own, or when both streams share a backbone)."""
    if flow_weights is not None:
        return flow_weights
    return weights if weights == IMAGENET or flow_backbone == backbone else None


def preset_class(name):
    """The backbone class of preset ``name`` (imports its module, and with it Keras)."""
    preset_config(name)
    module, _, class_name = PRESETS[name]["class"].partition(":")
    return getattr(importlib.import_module(module), class_name)


def from_preset(name, weights=None, backbone_class=None, **overrides):
    """The backbone preset ``name`` with ``overrides`` applied and, if given, ImageNet ``weights`` loaded.

    Args:
        name: a ``preset_names()`` entry, e.g. ``"resnet34"``.
        weights: ``"imagenet"`` (torchvision's ImageNet weights of the preset, downloaded, checked and
            converted on first use, then read from ``$KERASFLOW_HOME/weights/``), the path of a converted
            ``.weights.h5`` file (``python -m kerasflow.convert_weights``), or None for random initialisation.
        backbone_class: the class that builds the preset's architecture: the preset's own (None) or a
            subclass of it, e.g. ``InflatedResNetBackbone`` for a ResNet inflated to 3-D.
        **overrides: constructor arguments that replace the preset's, e.g. ``input_channels=10,
            include_head=False`` (a first conv taking 10 planes is initialised from the averaged
            ImageNet kernel).

    Example:

    ```python
    from kerasflow.backbones import from_preset
    backbone = from_preset("tiny", include_head=False, image_size=64)
    backbone.output["pooled"].shape  # (None, 64)
    ```
    """
    from kerasflow.backbones.imagenet import checkpoint_name, imagenet_weights

    preset = preset_class(name)
    if weights == IMAGENET:
        checkpoint_name(name)  # a preset without ImageNet weights is refused before anything is built
    backbone_class = backbone_class or preset
    if not issubclass(backbone_class, preset):
        raise UserError(f"backbone preset {name!r} is a {preset.__name__}; a {backbone_class.__name__} "
                        "cannot be built from it")
    backbone = backbone_class(**{**preset_config(name), "name": name, **overrides})
    if weights:
        from kerasflow.backbones.weights import load_imagenet_weights

        load_imagenet_weights(backbone, imagenet_weights(name) if weights == IMAGENET else weights)
    return backbone

"""The backbone presets a recipe names (``model.backbone``) and ``from_preset``, which builds one.

The table is plain data, so the recipe schema reads the names without starting TensorFlow. Each
preset names its backbone class (a module and class name, imported on first use) and the class's
constructor arguments; ``from_preset(name, weights=None, **overrides)`` builds it as keras-hub's
``Backbone.from_preset`` does, with converted ImageNet weights from a local file instead of a download.
"""

import importlib

from kerasflow.errors import UserError

TORCHVISION_STRIDES = (1, 2, 2, 2)
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


def register_preset(name, backbone_class, description, **config):
    """Add preset ``name``: ``backbone_class`` (``"module:Class"``) built with ``config``."""
    if name in PRESETS:
        raise ValueError(f"backbone preset {name!r} is registered already")
    PRESETS[name] = {"class": backbone_class, "config": config, "description": description}


register_preset("resnet18", _RESNET, "torchvision ResNet-18 (basic blocks 2-2-2-2), 11.7 M parameters",
                stackwise_num_blocks=(2, 2, 2, 2), block_type="basic_block", **_TORCHVISION)
register_preset("resnet34", _RESNET, "torchvision ResNet-34 (basic blocks 3-4-6-3), 21.8 M parameters",
                stackwise_num_blocks=(3, 4, 6, 3), block_type="basic_block", **_TORCHVISION)
register_preset("resnet50", _RESNET, "torchvision ResNet-50 v1.5 (bottlenecks 3-4-6-3), 25.6 M parameters",
                stackwise_num_blocks=(3, 4, 6, 3), block_type="bottleneck_block", **_TORCHVISION)
register_preset("resnet101", _RESNET, "torchvision ResNet-101 v1.5 (bottlenecks 3-4-23-3), 44.5 M parameters",
                stackwise_num_blocks=(3, 4, 23, 3), block_type="bottleneck_block", **_TORCHVISION)
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


def preset_class(name):
    """The backbone class of preset ``name`` (imports its module, and with it Keras)."""
    preset_config(name)
    module, _, class_name = PRESETS[name]["class"].partition(":")
    return getattr(importlib.import_module(module), class_name)


def from_preset(name, weights=None, backbone_class=None, **overrides):
    """The backbone preset ``name`` with ``overrides`` applied and, if given, ImageNet ``weights`` loaded.

    Args:
        name: a ``preset_names()`` entry, e.g. ``"resnet34"``.
        weights: path of a converted ``.weights.h5`` file (``python -m kerasflow.convert_weights``), or
            None for random initialisation.
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
    preset = preset_class(name)
    backbone_class = backbone_class or preset
    if not issubclass(backbone_class, preset):
        raise UserError(f"backbone preset {name!r} is a {preset.__name__}; a {backbone_class.__name__} "
                        "cannot be built from it")
    backbone = backbone_class(**{**preset_config(name), "name": name, **overrides})
    if weights:
        from kerasflow.backbones.weights import load_imagenet_weights

        load_imagenet_weights(backbone, weights)
    return backbone

"""Image backbones: the ``Backbone`` contract (``backbone``), the families that implement it (``resnet/``:
torchvision-equivalent ResNets and their inflation to 3-D), the registry of families and presets
(``registry``) and their converted ImageNet weights (``imagenet``, ``weights``).

``from_preset(name, weights=None, **overrides)`` builds a preset (``weights="imagenet"``: the preset's
ImageNet weights, fetched, checked and cached on first use by ``imagenet_weights``); ``preset_names()``
lists them; ``register_family`` adds a family (``kerasflow.backbones.family.BackboneFamily``).
Names load on first use, so ``preset_names`` answers without starting TensorFlow.
"""

from kerasflow._lazy import lazy_attributes

__all__ = [
    "Backbone",
    "BackboneFamily",
    "InflatedResNetBackbone",
    "ResNetBackbone",
    "convert_file",
    "convert_state_dict",
    "from_preset",
    "imagenet_weights",
    "load_imagenet_weights",
    "preset_names",
    "register_family",
]

__getattr__, __dir__ = lazy_attributes(__name__, {
    "Backbone": "kerasflow.backbones.backbone",
    "BackboneFamily": "kerasflow.backbones.family",
    "InflatedResNetBackbone": "kerasflow.backbones.resnet.resnet_3d",
    "ResNetBackbone": "kerasflow.backbones.resnet.resnet_backbone",
    "convert_file": "kerasflow.backbones.resnet.resnet_converter",
    "convert_state_dict": "kerasflow.backbones.resnet.resnet_converter",
    "from_preset": "kerasflow.backbones.presets",
    "imagenet_weights": "kerasflow.backbones.imagenet",
    "load_imagenet_weights": "kerasflow.backbones.weights",
    "preset_names": "kerasflow.backbones.registry",
    "register_family": "kerasflow.backbones.registry",
})

"""Image backbones (torchvision-equivalent ResNets and their inflation to 3-D), their presets and their
converted ImageNet weights.

``from_preset(name, weights=None, **overrides)`` builds a preset (``weights="imagenet"``: torchvision's
ImageNet weights, fetched, checked and cached on first use by ``imagenet_weights``); ``preset_names()``
lists them.
Names load on first use, so ``preset_names`` answers without starting TensorFlow.
"""

from kerasflow._lazy import lazy_attributes

__all__ = [
    "InflatedResNetBackbone",
    "ResNetBackbone",
    "convert_file",
    "convert_state_dict",
    "from_preset",
    "imagenet_weights",
    "load_imagenet_weights",
    "preset_names",
]

__getattr__, __dir__ = lazy_attributes(__name__, {
    "InflatedResNetBackbone": "kerasflow.backbones.inflated",
    "ResNetBackbone": "kerasflow.backbones.resnet",
    "convert_file": "kerasflow.backbones.convert",
    "convert_state_dict": "kerasflow.backbones.convert",
    "from_preset": "kerasflow.backbones.presets",
    "imagenet_weights": "kerasflow.backbones.imagenet",
    "load_imagenet_weights": "kerasflow.backbones.weights",
    "preset_names": "kerasflow.backbones.presets",
})

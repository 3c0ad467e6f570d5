"""Image backbones (torchvision-equivalent ResNets) and their converted ImageNet weights."""

from kerasflow.backbones.convert import convert_file, convert_state_dict
from kerasflow.backbones.resnet import RESNET_PRESETS, ResNetBackbone, resnet_backbone
from kerasflow.backbones.weights import load_imagenet_weights

__all__ = [
    "RESNET_PRESETS",
    "ResNetBackbone",
    "convert_file",
    "convert_state_dict",
    "load_imagenet_weights",
    "resnet_backbone",
]

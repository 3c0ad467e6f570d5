"""The ResNet family: torchvision-equivalent ResNet-18/34/50/101 (``resnet_backbone``), their inflation
to 3-D (``resnet_3d``, time arithmetic in ``resnet_3d_frames``), their presets (``resnet_presets``) and
the converter of torchvision checkpoints (``resnet_converter``).

``RESNET`` declares the family to ``kerasflow.backbones.registry``; importing this package starts no
TensorFlow (the classes load on first use).
"""

from kerasflow._lazy import lazy_attributes
from kerasflow.backbones.family import BackboneFamily
from kerasflow.backbones.resnet.resnet_3d_frames import frames_left
from kerasflow.backbones.resnet.resnet_presets import LAYER_GROUPS, backbone_presets

__all__ = ["RESNET", "InflatedResNetBackbone", "ResNetBackbone"]

RESNET = BackboneFamily(
    name="resnet",
    backbone_class="kerasflow.backbones.resnet.resnet_backbone:ResNetBackbone",
    presets=backbone_presets,
    layer_groups=LAYER_GROUPS,
    stage_strides=lambda config: tuple(config["stackwise_num_strides"]),
    converter="kerasflow.backbones.resnet.resnet_converter:convert_file",
    backbone_3d_class="kerasflow.backbones.resnet.resnet_3d:InflatedResNetBackbone",
    frames_left_3d=frames_left,
    clip_rule_3d="the inflated_3d network's 7-frame conv1, its max pool and each strided stage shorten the clip, "
                 "and a strided stage needs 2 frames",
)

__getattr__, __dir__ = lazy_attributes(__name__, {
    "InflatedResNetBackbone": "kerasflow.backbones.resnet.resnet_3d",
    "ResNetBackbone": "kerasflow.backbones.resnet.resnet_backbone",
})

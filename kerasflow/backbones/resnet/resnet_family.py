"""``RESNET``: what the ResNet family declares to ``kerasflow.backbones.registry`` (plain Python: its
classes and converter are named, not imported, so the registry needs no Keras and no family class)."""

from kerasflow.backbones.family import BackboneFamily
from kerasflow.backbones.resnet.resnet_3d_frames import frames_left
from kerasflow.backbones.resnet.resnet_presets import LAYER_GROUPS, backbone_presets

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

"""The ResNet family: torchvision-equivalent ResNet-18/34/50/101 (``resnet_backbone``), their inflation
to 3-D (``resnet_3d``, time arithmetic in ``resnet_3d_frames``), their presets (``resnet_presets``) and
the converter of torchvision checkpoints (``resnet_converter``).

``RESNET`` (``resnet_family``) declares the family to ``kerasflow.backbones.registry``; importing this
package starts no TensorFlow (the classes load on first use).
"""

from kerasflow._lazy import lazy_attributes
from kerasflow.backbones.resnet.resnet_family import RESNET

__all__ = ["RESNET", "InflatedResNetBackbone", "ResNetBackbone"]

__getattr__, __dir__ = lazy_attributes(__name__, {
    "InflatedResNetBackbone": "kerasflow.backbones.resnet.resnet_3d",
    "ResNetBackbone": "kerasflow.backbones.resnet.resnet_backbone",
})

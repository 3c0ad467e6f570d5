"""How convolutions start when no pretrained weights are loaded, as the reference codes start them."""

import keras


def kaiming_normal_fan_out():
    """torchvision's ResNet initialisation of a convolution, which EgoRCNN's and the representation-flow
    code's networks inherit (the latter for its flow block's convolutions too): Kaiming-normal with ReLU
    gain over the fan-out, ``N(0, 2 / (receptive field * filters))``, not truncated."""
    return keras.initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="untruncated_normal")

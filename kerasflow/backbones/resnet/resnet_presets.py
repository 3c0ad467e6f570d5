"""The ResNet presets a recipe names (``model.backbone``): torchvision's ResNet-18/34/50/101 and a toy.

Plain data, read by the registry before TensorFlow starts. The ImageNet checkpoints are torchvision's
IMAGENET1K_V1 weights, which EgoRCNN and the representation-flow code start from; the 8 hex digits in
each name are the start of the file's SHA-256.
"""

TORCHVISION_STRIDES = (1, 2, 2, 2)
_TORCHVISION = {"stackwise_num_filters": (64, 128, 256, 512), "stackwise_num_strides": TORCHVISION_STRIDES,
                "stem_filters": 64}


def _preset(description, imagenet_checkpoint, **config):
    return {"description": description, "imagenet_checkpoint": imagenet_checkpoint, "config": config}


backbone_presets = {
    "resnet18": _preset("torchvision ResNet-18 (basic blocks 2-2-2-2), 11.7 M parameters", "resnet18-f37072fd.pth",
                        stackwise_num_blocks=(2, 2, 2, 2), block_type="basic_block", **_TORCHVISION),
    "resnet34": _preset("torchvision ResNet-34 (basic blocks 3-4-6-3), 21.8 M parameters", "resnet34-b627a593.pth",
                        stackwise_num_blocks=(3, 4, 6, 3), block_type="basic_block", **_TORCHVISION),
    "resnet50": _preset("torchvision ResNet-50 v1.5 (bottlenecks 3-4-6-3), 25.6 M parameters",
                        "resnet50-0676ba61.pth", stackwise_num_blocks=(3, 4, 6, 3), block_type="bottleneck_block",
                        **_TORCHVISION),
    "resnet101": _preset("torchvision ResNet-101 v1.5 (bottlenecks 3-4-23-3), 44.5 M parameters",
                         "resnet101-63fe2227.pth", stackwise_num_blocks=(3, 4, 23, 3),
                         block_type="bottleneck_block", **_TORCHVISION),
    # A ResNet-10-shaped toy at 1/8 width for the demo and the tests: no ImageNet weights exist for it.
    "tiny": _preset("1/8-width ResNet-10 for demos and tests (no ImageNet weights)", None,
                    stackwise_num_filters=(8, 16, 32, 64), stackwise_num_blocks=(1, 1, 1, 1),
                    stackwise_num_strides=TORCHVISION_STRIDES, block_type="basic_block", stem_filters=8),
}

# Every ResNet names its stage models layer1 ... layer4 and its blocks' main-path convolutions
# <stage>_<block>_conv<k>, as torchvision does.
LAYER_GROUPS = {
    # The last stage whole (the flow stream's part of the joint stage).
    "last_stage": ("layer4/*",),
    # The main-path convolutions of the last stage's blocks, not their batch norms nor the downsample
    # shortcut: what EgoRCNN's second RGB stage and its joint stage train.
    "last_stage_convs": ("layer4/layer4_*_conv?",),
}

"""ResNet-18/34/50/101 backbones, layer for layer equal to torchvision's (v1.5 bottleneck).

Layer names are torchvision's state-dict prefixes with ``_`` for ``.`` (``layer2_0_downsample_conv``
is ``layer2.0.downsample.0``), which is what the ImageNet weight converter relies on. The presets
(``resnet18`` ... ``tiny``) are in ``resnet_presets``.
"""

import dataclasses
import typing

import keras
import numpy as np

from kerasflow.backbones.backbone import Backbone
from kerasflow.backbones.weights import read_weights_config
from kerasflow.errors import UserError
from kerasflow.layers.initializers import kaiming_normal_fan_out

BLOCK_EXPANSION = {"basic_block": 1, "bottleneck_block": 4}
NUM_STAGES = 4
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # keras momentum 0.9 == torch momentum 0.1
# The constructor arguments a converted weights file's sidecar holds; those that fix the architecture.
ARCHITECTURE_KEYS = (
    "block_type", "stackwise_num_blocks", "stackwise_num_filters", "stackwise_num_strides", "stem_filters",
)
CONFIG_KEYS = (*ARCHITECTURE_KEYS, "input_channels", "include_head", "num_head_classes")

def _conv(x, filters, kernel_size, strides, name):
    """Bias-free conv padded like torch (``(k - 1) // 2`` zeros on each side)."""
    pad = (kernel_size - 1) // 2
    if strides > 1 and pad > 0:
        # TF's "same" pads asymmetrically for stride 2; torch pads both sides.
        x = keras.layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same"
    return keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=False,
        kernel_initializer=kaiming_normal_fan_out(), name=name,
    )(x)


def _batch_norm(x, name):
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)(x)


def block_convs(block_type, filters, strides):
    """``(filters, kernel_size, strides)`` of each main-path convolution of a torchvision BasicBlock or
    Bottleneck (v1.5: the stride is on the 3x3 conv)."""
    if block_type == "basic_block":
        return [(filters, 3, strides), (filters, 3, 1)]
    return [(filters, 1, 1), (filters, 3, strides), (filters * BLOCK_EXPANSION[block_type], 1, 1)]


def _stem(x, stem_filters):
    """conv 7x7/2 (pad 3), BN, ReLU, max pool 3x3/2 (pad 1)."""
    x = keras.layers.ReLU(name="relu")(_batch_norm(_conv(x, stem_filters, 7, 2, "conv1"), "bn1"))
    # Zero padding equals torch's -inf padding here because the input is >= 0 after the ReLU.
    x = keras.layers.ZeroPadding2D(1, name="maxpool_pad")(x)
    return keras.layers.MaxPooling2D(3, strides=2, padding="valid", name="maxpool")(x)


@dataclasses.dataclass(frozen=True)
class ResNetLayers:
    """The layers a ResNet is made of, so that one set of builders makes both the 2-D ResNet and its
    inflation to 3-D (``resnet_3d``).

    Attributes:
        axes: the axes between batch and channels: 2 for ``(H, W)`` images, 3 for ``(T, H, W)`` clips.
        stem: ``stem(x, stem_filters) -> x``: conv1, bn1, ReLU and the max pool.
        conv: ``conv(x, filters, kernel_size, strides, name)``: a bias-free, torch-padded convolution.
        block_convs: ``block_convs(block_type, filters, strides)``: ``(filters, kernel_size, strides)`` of
            each main-path convolution of a block.
        pool: the global average pooling layer class.
    """

    axes: int
    stem: typing.Callable
    conv: typing.Callable
    block_convs: typing.Callable
    pool: type


PLANAR_LAYERS = ResNetLayers(2, _stem, _conv, block_convs, keras.layers.GlobalAveragePooling2D)


def _residual_block(x, convs, strides, name, conv):
    """One residual block: the ``convs`` (``(filters, kernel_size, strides)`` each, made by ``conv``) with
    batch norm after each and ReLU between, plus the input or, when ``strides`` or the width change,
    its 1x1 projection (conv and batch norm).

    Returns ``(output, last_conv, shortcut)``: the block output ``relu(bn(last_conv) + shortcut)``
    and the two terms of EgoRCNN's "noBN" tensor ``last_conv + shortcut``.
    """
    out_channels = convs[-1][0]
    y = x
    for index, (conv_filters, kernel_size, conv_strides) in enumerate(convs, start=1):
        if index > 1:
            y = keras.layers.ReLU(name=f"{name}_relu{index - 1}")(y)
        last_conv = conv(y, conv_filters, kernel_size, conv_strides, f"{name}_conv{index}")
        y = _batch_norm(last_conv, f"{name}_bn{index}")
    shortcut = x
    if strides != 1 or x.shape[-1] != out_channels:
        shortcut = conv(x, out_channels, 1, strides, f"{name}_downsample_conv")
        shortcut = _batch_norm(shortcut, f"{name}_downsample_bn")
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y), last_conv, shortcut


def build_stem(input_channels, stem_filters, image_size=None, layers=PLANAR_LAYERS):
    """Stem model: ``(H, W, input_channels)`` -> ``(H/4, W/4, stem_filters)`` (``(T, H, W, ...)`` with 3-D
    ``layers``)."""
    time = (None,) * (layers.axes - 2)
    inputs = keras.Input((*time, image_size, image_size, input_channels), name="stem_input")
    return keras.Model(inputs, layers.stem(inputs, stem_filters), name="stem")


def build_stage(in_channels, filters, num_blocks, strides, block_type, name, layers=PLANAR_LAYERS):
    """Stage model ``name`` (``"layer1"``...): ``(H, W, in_channels)`` -> ``[output, pre_bn]``.

    ``output`` is ``(H/strides, W/strides, filters * expansion)``; ``pre_bn`` has the same shape and is
    the last block's last conv before its batch norm plus the block's shortcut, without ReLU.
    """
    inputs = keras.Input((*(None,) * layers.axes, in_channels), name=f"{name}_input")
    x = inputs
    for index in range(num_blocks):
        block_strides = strides if index == 0 else 1
        x, last_conv, shortcut = _residual_block(
            x, layers.block_convs(block_type, filters, block_strides), block_strides, f"{name}_{index}",
            layers.conv,
        )
    pre_bn = keras.layers.Add(name=f"{name}_pre_bn")([last_conv, shortcut])
    return keras.Model(inputs, [x, pre_bn], name=name)


def _validate(stackwise_num_filters, stackwise_num_blocks, stackwise_num_strides, block_type,
              stem_filters, input_channels, num_head_classes, image_size):
    lists = {
        "stackwise_num_filters": stackwise_num_filters,
        "stackwise_num_blocks": stackwise_num_blocks,
        "stackwise_num_strides": stackwise_num_strides,
    }
    for key, values in lists.items():
        if len(values) != NUM_STAGES or any(int(v) < 1 for v in values):
            raise UserError(
                f"ResNetBackbone: {key}={list(values)} must hold {NUM_STAGES} positive integers"
            )
    if block_type not in BLOCK_EXPANSION:
        raise UserError(
            f"ResNetBackbone: block_type={block_type!r} is unknown; use one of {sorted(BLOCK_EXPANSION)}"
        )
    for key, value in [("stem_filters", stem_filters), ("input_channels", input_channels),
                       ("num_head_classes", num_head_classes)]:
        if int(value) < 1:
            raise UserError(f"ResNetBackbone: {key}={value} must be a positive integer")
    if image_size is not None and int(image_size) < 32:
        raise UserError(f"ResNetBackbone: image_size={image_size} must be None or at least 32")


@keras.saving.register_keras_serializable(package="kerasflow")
class ResNetBackbone(Backbone):
    """torchvision-equivalent ResNet on channels-last images.

    Input: ``(batch, H, W, input_channels)`` (H = W = ``image_size`` when given, else any size).
    Outputs, a dict: ``stage1``..``stage4`` (strides 4, 8, 16, 32; channels ``filters * expansion``),
    ``stage4_pre_bn`` (EgoRCNN's "noBN" layer4 tensor, shape of ``stage4``), ``pooled``
    (``(batch, feature_channels)``, global average of ``stage4``) and, with ``include_head``,
    ``logits`` (``(batch, num_head_classes)``, the ImageNet ``fc``).

    What a stream builds on is the ``Backbone`` contract: ``stem``; ``stages``, 4 models named
    ``layer1`` ... ``layer4``, each returning ``[output, pre_bn]``; ``pool``; ``head`` (the ImageNet
    ``fc``, ``None`` without head); ``feature_channels``, the channels of the last stage.

    ``find_layer("layer4_2_conv2")`` reaches any layer by its torchvision name.

    Example:

    ```python
    from kerasflow.backbones import ResNetBackbone
    backbone = ResNetBackbone.from_preset("tiny", num_head_classes=10)
    backbone.output["logits"].shape  # (None, 10)
    ```
    """

    # What the stem, stages and pool are made of: 2-D layers here, 3-D in InflatedResNetBackbone.
    RESNET_LAYERS = PLANAR_LAYERS

    def __init__(
        self,
        stackwise_num_filters=(64, 128, 256, 512),
        stackwise_num_blocks=(3, 4, 6, 3),
        stackwise_num_strides=(1, 2, 2, 2),
        block_type="basic_block",
        stem_filters=64,
        input_channels=3,
        include_head=True,
        num_head_classes=1000,
        image_size=None,
        name=None,
        **kwargs,
    ):
        _validate(stackwise_num_filters, stackwise_num_blocks, stackwise_num_strides, block_type,
                  stem_filters, input_channels, num_head_classes, image_size)
        stackwise_num_filters = tuple(int(v) for v in stackwise_num_filters)
        stackwise_num_blocks = tuple(int(v) for v in stackwise_num_blocks)
        stackwise_num_strides = tuple(int(v) for v in stackwise_num_strides)
        image_size = None if image_size is None else int(image_size)

        # === Layers ===
        layers = self.RESNET_LAYERS
        stem = build_stem(int(input_channels), int(stem_filters), image_size, layers)
        stages = []
        in_channels = int(stem_filters)
        for index in range(NUM_STAGES):
            stages.append(build_stage(
                in_channels, stackwise_num_filters[index], stackwise_num_blocks[index],
                stackwise_num_strides[index], block_type, f"layer{index + 1}", layers,
            ))
            in_channels = stackwise_num_filters[index] * BLOCK_EXPANSION[block_type]
        pool = layers.pool(name="avgpool")
        head = keras.layers.Dense(int(num_head_classes), name="fc") if include_head else None

        # === Functional model ===
        image = keras.Input(stem.input.shape[1:], name="image")
        x = stem(image)
        outputs = {}
        for index, stage in enumerate(stages, start=1):
            x, pre_bn = stage(x)
            outputs[f"stage{index}"] = x
        outputs["stage4_pre_bn"] = pre_bn
        outputs["pooled"] = pool(x)
        if head is not None:
            outputs["logits"] = head(outputs["pooled"])
        super().__init__(inputs=image, outputs=outputs, name=name, **kwargs)

        # === Config ===
        self.stackwise_num_filters = stackwise_num_filters
        self.stackwise_num_blocks = stackwise_num_blocks
        self.stackwise_num_strides = stackwise_num_strides
        self.block_type = block_type
        self.stem_filters = int(stem_filters)
        self.image_size = image_size
        self._set_parts(stem, stages, pool, head, in_channels, input_channels, include_head, num_head_classes)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "stackwise_num_filters": list(self.stackwise_num_filters),
            "stackwise_num_blocks": list(self.stackwise_num_blocks),
            "stackwise_num_strides": list(self.stackwise_num_strides),
            "block_type": self.block_type,
            "stem_filters": self.stem_filters,
            "input_channels": self.input_channels,
            "include_head": self.include_head,
            "num_head_classes": self.num_head_classes,
            "image_size": self.image_size,
        }

    def load_converted_weights(self, path):
        """Copy the converted ImageNet weights at ``path`` into this backbone, layer by layer (by name).

        If it takes another number of input channels than the file (e.g. 10 for stacked optical flow),
        ``conv1``'s kernel is averaged over the file's input channels and repeated ``input_channels``
        times (EgoRCNN's ``change_key_names``, no rescaling). Without ``include_head`` the file's ``fc``
        is skipped. A 3-D backbone (``InflatedResNetBackbone``) gets each 2-D kernel inflated to its time
        extent (``inflate_kernel``). Returns the backbone.
        """
        config = read_weights_config(path, CONFIG_KEYS)
        needed = self.get_config()  # lists, like the JSON sidecar
        differing = [key for key in ARCHITECTURE_KEYS if config[key] != needed[key]]
        if differing:
            holds = ", ".join(f"{key}={config[key]}" for key in differing)
            needs = ", ".join(f"{key}={needed[key]}" for key in differing)
            raise UserError(f"{path} holds a ResNet with {holds} but the model needs {needs}; "
                            "convert weights of the matching architecture")
        if self.include_head and not config["include_head"]:
            raise UserError(f"{path} has no ImageNet head (fc); build the backbone with include_head=False")
        if self.include_head and config["num_head_classes"] != self.num_head_classes:
            raise UserError(
                f"{path} holds a {config['num_head_classes']}-class head but the model needs "
                f"{self.num_head_classes}; build the backbone with num_head_classes="
                f"{config['num_head_classes']} or include_head=False"
            )
        source = ResNetBackbone(**config)
        try:
            source.load_weights(path)
        except (OSError, ValueError, KeyError) as error:
            reason = " ".join(str(error).split())
            raise UserError(
                f"{path}: cannot load the weights ({reason}); re-run python -m kerasflow.convert_weights"
            ) from None
        for layer in source.leaf_layers():
            if not layer.weights or (layer is source.head and not self.include_head):
                continue
            values = layer.get_weights()
            if layer.name == "conv1" and source.input_channels != self.input_channels:
                mean = values[0].mean(axis=2, keepdims=True)
                values[0] = np.repeat(mean, self.input_channels, axis=2)
            target = self.find_layer(layer.name)
            target.set_weights([inflate_kernel(value, weight.shape) for value, weight in zip(values, target.weights)])
        return self


def inflate_kernel(value, shape):
    """A 2-D kernel ``(kh, kw, in, out)`` repeated over time to a 3-D ``shape`` ``(kt, kh, kw, in, out)``,
    unscaled, as the representation-flow code inflates ImageNet kernels (``load_2d_state_dict``);
    ``value`` itself when it already has ``shape``'s rank (batch norms, 2-D kernels)."""
    if len(shape) == value.ndim + 1:
        return np.repeat(value[None], shape[0], axis=0)
    return value

"""ResNet-18/34/50/101 inflated to 3-D as the representation-flow code's HMDB network
(``flow_2p1d_resnets.py``) inflates them, built from the same presets and ImageNet files as the 2-D ones.

The stem's conv1 is 7x7x7 (stride 1 and no padding in time, stride 2 in space), its max pool 3x3x3 with
stride 2 in time and space. A basic block's first convolution is 1x3x3 and its second 3x3x3; a
bottleneck's first is 3x1x1, its second 1x3x3. Stages with a stride halve time as well as space. The
time extents, strides and paddings are in ``resnet_3d_frames``; layer names are the 2-D
ResNet's, so ``load_converted_weights`` inflates each ImageNet kernel into its 3-D namesake.
"""

import keras

from kerasflow.backbones.resnet.resnet_3d_frames import BLOCK_TIME_KERNELS, STEM_CONV, STEM_POOL, block_window
from kerasflow.backbones.resnet.resnet_backbone import ResNetBackbone, ResNetLayers, _batch_norm, block_convs
from kerasflow.layers.initializers import kaiming_normal_fan_out
from kerasflow.layers.pooling import SeparableMaxPooling3D


def _conv(x, filters, kernel_size, strides, name, time=None):
    """Bias-free ``Conv3D`` padded like torch: ``(k - 1) // 2`` zeros on each side in space and, in time,
    ``time`` (by default the block window of ``kernel_size``'s time extent and ``strides``).

    ``kernel_size`` is ``(kt, kh, kw)`` or an int for a cube; ``strides`` applies to space, and to time
    unless ``time`` gives its own stride.
    """
    kernel = (kernel_size,) * 3 if isinstance(kernel_size, int) else tuple(kernel_size)
    time = time or block_window(kernel[0], strides)
    padding = (time.padding, (kernel[1] - 1) // 2, (kernel[2] - 1) // 2)
    if (time.stride, strides) == (1, 1) and padding == tuple((k - 1) // 2 for k in kernel):
        mode = "same"  # the same zeros as torch's when nothing strides
    else:
        x = keras.layers.ZeroPadding3D(padding, name=f"{name}_pad")(x)
        mode = "valid"
    return keras.layers.Conv3D(filters, kernel, strides=(time.stride, strides, strides), padding=mode,
                               use_bias=False, kernel_initializer=kaiming_normal_fan_out(), name=name)(x)


def _stem(x, stem_filters):
    """conv 7x7x7 (time: stride 1, no padding; space: stride 2, pad 3), BN, ReLU, max pool 3x3x3/2 (pad 1)."""
    x = keras.layers.ReLU(name="relu")(_batch_norm(_conv(x, stem_filters, 7, 2, "conv1", time=STEM_CONV), "bn1"))
    # Zeros pad as torch's -inf would, since the input is >= 0 after the ReLU.
    x = keras.layers.ZeroPadding3D(STEM_POOL.padding, name="maxpool_pad")(x)
    return SeparableMaxPooling3D(STEM_POOL.kernel, STEM_POOL.stride, name="maxpool")(x)


def _block_convs(block_type, filters, strides):
    """The 2-D block's convolutions with each kernel given its time extent: ``(filters, (kt, k, k), strides)``."""
    return [(conv_filters, (time, size, size), conv_strides) for (conv_filters, size, conv_strides), time
            in zip(block_convs(block_type, filters, strides), BLOCK_TIME_KERNELS[block_type])]


INFLATED_LAYERS = ResNetLayers(3, _stem, _conv, _block_convs, keras.layers.GlobalAveragePooling3D)


@keras.saving.register_keras_serializable(package="kerasflow")
class InflatedResNetBackbone(ResNetBackbone):
    """A ``ResNetBackbone`` inflated to 3-D: the same arguments, presets, layer names and interface, on clips.

    Input: ``(batch, T, H, W, input_channels)``, ``T >= 7`` (conv1 has no padding in time). The stem
    leaves ``(T - 7) // 2 + 1`` frames at a quarter of the size; each stage with stride 2 halves time
    and space, a strided 1-frame convolution padding one frame on each side as the reference does
    (``T`` frames become ``T // 2 + 1``). ``pooled`` is the global average over time and space, so the
    outputs are those of ``ResNetBackbone`` with a time axis after the batch axis.

    ``from_preset(name, weights)`` builds any ResNet preset inflated; converted ImageNet weights are
    inflated at load time: each 2-D kernel repeated over its time extent without rescaling (as the
    reference's ``load_2d_state_dict``), conv1 of a non-RGB input averaged over RGB first.

    Example:

    ```python
    from kerasflow.backbones import InflatedResNetBackbone
    backbone = InflatedResNetBackbone.from_preset("tiny", include_head=False, image_size=64)
    backbone.stages[1].output[0].shape  # (None, None, None, None, 16)
    ```
    """

    RESNET_LAYERS = INFLATED_LAYERS

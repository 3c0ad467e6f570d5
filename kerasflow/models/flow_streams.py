"""The motion streams: representation flow inside a backbone (seed §II-C/D: a ResNet), per frame or on
the backbone's 3-D version (``kerasflow.models.flow_networks``), and the TV-L1 baseline. Any backbone
preset fits (``kerasflow.backbones.backbone.Backbone``: stem, stages, pool)."""

import keras

from kerasflow.backbones.presets import from_preset
from kerasflow.backbones.registry import DEFAULT_PRESET
from kerasflow.data.inputs import FLOW_CLIP, TVL1_STACK
from kerasflow.layers import FoldTime, FrameNormalization, RepresentationFlowBlock, TimeAverage, UnfoldTime
from kerasflow.layers.preprocessing import FLOW_MEAN, FLOW_STD


def build_representation_flow_stream(
    frames,
    frame_size,
    backbone=DEFAULT_PRESET,
    weights=None,
    num_flow_layers=2,
    flow_iterations=20,
    flow_position=2,
    bottleneck=32,
    flow_options=None,
):
    """The representation-flow stream body: uint8 clip ``(B, T, S, S, 3)`` -> ``(B, C)`` features
    (ImageNet-normalised inside, like the RGB stream).

    Per frame: the backbone's stem and its first ``flow_position`` stages; then, over time, a
    ``RepresentationFlowBlock`` of ``num_flow_layers`` flow layers (none when 0, Table 5), which
    leaves ``T - num_flow_layers`` time steps; then the remaining stages and global average pooling
    per time step, averaged over time. The classifier that follows is linear, so classifying this
    average equals averaging the per-time-step predictions (§II-E).
    The original puts the block after the second stage (28x28 maps at 224 input). ``flow_options``
    are ``RepresentationFlow`` arguments for its flow layers (``normalize``, ``learnable``, ...).

    Returns a ``keras.Model`` named ``"flow_stream"``.
    """
    backbone_model = from_preset(backbone, weights, include_head=False)
    clip = keras.Input((frames, frame_size, frame_size, 3), name=FLOW_CLIP, dtype="uint8")
    x = backbone_model.stem(FoldTime(name="frames")(FrameNormalization(name="normalize")(clip)))
    x, _ = backbone_model.apply_stages(x, 0, _checked_position(flow_position))
    steps = frames
    if num_flow_layers:
        x = UnfoldTime(frames, name="before_flow")(x)
        x = _flow_block(num_flow_layers, flow_iterations, bottleneck, flow_options)(x)
        steps = frames - num_flow_layers
        x = FoldTime(name="after_flow")(x)
    x, _ = backbone_model.apply_stages(x, flow_position)
    x = backbone_model.pool(x)
    x = TimeAverage(name="time_average")(UnfoldTime(steps, name="steps")(x))
    return keras.Model(clip, x, name="flow_stream")


def build_inflated_flow_stream(frames, frame_size, backbone=DEFAULT_PRESET, weights=None, num_flow_layers=2,
                               flow_iterations=20, flow_position=2, bottleneck=32, flow_options=None):
    """The representation-flow code's own flow network (its ``flow_2p1d_resnets.py``): uint8 clip
    ``(B, T, S, S, 3)`` -> ``(B, C)`` features (ImageNet-normalised inside, like the per-frame stream).

    The backbone's 3-D version over the whole clip (a ResNet's: ``InflatedResNetBackbone``): its stem
    and first ``flow_position`` stages convolve over time (conv1 7x7x7 without time padding, a 3x3x3 max
    pool and every strided stage halve the clip: 16 frames leave 4 after stage 2); then the
    ``RepresentationFlowBlock`` on those frames (none when ``num_flow_layers`` is 0) without a bias on
    its convolution between flow layers, as the reference's ``flow_conv``; the remaining stages; global
    average pooling over time and space. The reference puts the block after stage 2 and trains ResNet-50
    on 16 frames of 112 px; its dropout of 0.3 before the classifier is the recipe's
    ``model.flow_dropout`` (``recipes/hmdb51-repflow.yaml``). The arguments are
    ``build_representation_flow_stream``'s.

    Returns a ``keras.Model`` named ``"flow_stream"``.
    """
    backbone_model = from_preset(backbone, weights, dims=3, include_head=False)
    clip = keras.Input((frames, frame_size, frame_size, 3), name=FLOW_CLIP, dtype="uint8")
    x = backbone_model.stem(FrameNormalization(name="normalize")(clip))
    x, _ = backbone_model.apply_stages(x, 0, _checked_position(flow_position))
    if num_flow_layers:
        x = _flow_block(num_flow_layers, flow_iterations, bottleneck, flow_options, smooth_bias=False)(x)
    x, _ = backbone_model.apply_stages(x, flow_position)
    return keras.Model(clip, backbone_model.pool(x), name="flow_stream")


def _checked_position(flow_position):
    if not 1 <= flow_position <= 3:
        raise ValueError(f"`flow_position` must be 1, 2 or 3. Received: {flow_position}")
    return flow_position


def _flow_block(num_flow_layers, flow_iterations, bottleneck, flow_options, smooth_bias=True):
    return RepresentationFlowBlock(num_flow_layers=num_flow_layers, bottleneck=bottleneck, n_iter=flow_iterations,
                                   flow_options=flow_options, smooth_bias=smooth_bias, name="flow_block")


def build_optical_flow_stream(frame_size, stack=5, backbone=DEFAULT_PRESET, weights=None):
    """EgoRCNN's TV-L1 flow stream body: uint8 ``(B, S, S, 2 * stack)`` stacked (x, y) flow planes ->
    ``(B, C)``, normalised inside as ego-rnn does (``(v / 255 - 0.449) / 0.226``).

    A backbone whose first convolution takes the ``2 * stack`` flow planes, initialised from the
    ImageNet ``conv1`` averaged over RGB and repeated (the backbone's ``load_converted_weights`` does it).
    Returns a ``keras.Model`` named ``"flow_stream"``.
    """
    backbone_model = from_preset(backbone, weights, input_channels=2 * stack, include_head=False)
    flow = keras.Input((frame_size, frame_size, 2 * stack), name=TVL1_STACK, dtype="uint8")
    x = backbone_model.stem(FrameNormalization(FLOW_MEAN, FLOW_STD, name="normalize")(flow))
    x, _ = backbone_model.apply_stages(x)
    return keras.Model(flow, backbone_model.pool(x), name="flow_stream")

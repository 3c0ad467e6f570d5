"""The motion streams: representation flow inside a ResNet (seed §II-C/D) and the TV-L1 baseline."""

import keras

from kerasflow.backbones.presets import from_preset
from kerasflow.data.inputs import FLOW_CLIP, TVL1_STACK
from kerasflow.layers import FoldTime, FrameNormalization, RepresentationFlowBlock, TimeAverage, UnfoldTime
from kerasflow.layers.preprocessing import FLOW_MEAN, FLOW_STD


def build_representation_flow_stream(
    frames,
    frame_size,
    backbone="resnet34",
    weights=None,
    num_flow_layers=2,
    flow_iterations=20,
    flow_position=2,
    bottleneck=32,
    flow_options=None,
):
    """The representation-flow stream body: uint8 clip ``(B, T, S, S, 3)`` -> ``(B, C)`` features
    (ImageNet-normalised inside, like the RGB stream).

    Per frame: the ResNet stem and its first ``flow_position`` stages; then, over time, a
    ``RepresentationFlowBlock`` of ``num_flow_layers`` flow layers (none when 0, Table 5), which
    leaves ``T - num_flow_layers`` time steps; then the remaining stages and global average pooling
    per time step, averaged over time. The classifier that follows is linear, so classifying this
    average equals averaging the per-time-step predictions (§II-E).
    The original puts the block after the second stage (28x28 maps at 224 input). ``flow_options``
    are ``RepresentationFlow`` arguments for its flow layers (``normalize``, ``learnable``, ...).

    Returns a ``keras.Model`` named ``"flow_stream"``.
    """
    if not 1 <= flow_position <= 3:
        raise ValueError(f"`flow_position` must be 1, 2 or 3. Received: {flow_position}")
    resnet = from_preset(backbone, weights, include_head=False)
    clip = keras.Input((frames, frame_size, frame_size, 3), name=FLOW_CLIP, dtype="uint8")
    x = resnet.stem(FoldTime(name="frames")(FrameNormalization(name="normalize")(clip)))
    x, _ = resnet.apply_stages(x, 0, flow_position)
    steps = frames
    if num_flow_layers:
        x = UnfoldTime(frames, name="before_flow")(x)
        x = RepresentationFlowBlock(num_flow_layers=num_flow_layers, bottleneck=bottleneck, n_iter=flow_iterations,
                                    flow_options=flow_options, name="flow_block")(x)
        steps = frames - num_flow_layers
        x = FoldTime(name="after_flow")(x)
    x, _ = resnet.apply_stages(x, flow_position)
    x = resnet.pool(x)
    x = TimeAverage(name="time_average")(UnfoldTime(steps, name="steps")(x))
    return keras.Model(clip, x, name="flow_stream")


def build_optical_flow_stream(frame_size, stack=5, backbone="resnet34", weights=None):
    """EgoRCNN's TV-L1 flow stream body: uint8 ``(B, S, S, 2 * stack)`` stacked (x, y) flow planes ->
    ``(B, C)``, normalised inside as ego-rnn does (``(v / 255 - 0.449) / 0.226``).

    A ResNet whose first convolution takes the ``2 * stack`` flow planes, initialised from the
    ImageNet ``conv1`` averaged over RGB and repeated (``load_imagenet_weights`` does it).
    Returns a ``keras.Model`` named ``"flow_stream"``.
    """
    resnet = from_preset(backbone, weights, input_channels=2 * stack, include_head=False)
    flow = keras.Input((frame_size, frame_size, 2 * stack), name=TVL1_STACK, dtype="uint8")
    x, _ = resnet.apply_stages(resnet.stem(FrameNormalization(FLOW_MEAN, FLOW_STD, name="normalize")(flow)))
    return keras.Model(flow, resnet.pool(x), name="flow_stream")

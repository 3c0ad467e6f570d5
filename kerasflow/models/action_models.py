"""Classifiers on top of the stream bodies: the single-stream models and the two-stream fusion (§II-E)."""

import keras

from kerasflow.data.inputs import RGB_CLIP, TVL1_STACK
from kerasflow.layers import UniformFrames


def _classify(features, num_classes, dropout, inputs, name):
    x = keras.layers.Dropout(dropout, name="dropout")(features)
    # float32 logits also under mixed_float16, so the softmax and the loss keep their precision.
    logits = keras.layers.Dense(num_classes, dtype="float32", name="classifier")(x)
    return keras.Model(inputs, logits, name=name)


def single_stream_model(stream, num_classes, dropout, name):
    """``stream`` (a body model) + dropout + ``Dense(num_classes)``: logits ``(B, num_classes)``.

    Models take a dict of named inputs, as the data pipeline yields them (``kerasflow.data.inputs``):
    ``{"rgb": clip}``, ``{"flow_clip": clip}`` or ``{"flow": stack}``.

    EgoRCNN's heads: dropout 0.7 for the RGB stream, 0.5 for the flow streams.
    """
    name_of_input = stream.inputs[0].name
    inputs = keras.Input(stream.inputs[0].shape[1:], name=name_of_input)
    return _classify(stream(inputs), num_classes, dropout, {name_of_input: inputs}, name)


def two_stream_model(rgb_stream, flow_stream, num_classes, dropout=0.5, name="two_stream"):
    """Decision-level fusion (EgoRCNN's joint model): ``[flow, rgb]`` features concatenated,
    dropout, a new ``Dense(num_classes)``.

    With a representation-flow stream both streams see the same RGB clip: the flow stream gets
    ``UniformFrames`` of the RGB stream's ``T`` frames. With the optical-flow stream the model has
    a second input, ``"flow"``.
    """
    rgb = keras.Input(rgb_stream.inputs[0].shape[1:], name=RGB_CLIP)
    flow_input = flow_stream.inputs[0]
    if flow_input.name == TVL1_STACK:
        flow = keras.Input(flow_input.shape[1:], name=TVL1_STACK)
        inputs, flow_features = {RGB_CLIP: rgb, TVL1_STACK: flow}, flow_stream(flow)
    else:
        clip = UniformFrames(flow_input.shape[1], name="flow_frames")(rgb)
        inputs, flow_features = {RGB_CLIP: rgb}, flow_stream(clip)
    features = keras.layers.Concatenate(name="fused_features")([flow_features, rgb_stream(rgb)])
    return _classify(features, num_classes, dropout, inputs, name)

"""Classifiers on top of the stream bodies: the single-stream models and the two-stream fusion (§II-E)."""

import keras
from keras import ops

from kerasflow.data.inputs import RGB_CLIP

FUSIONS = ("features", "scores", "logits")


def _input_like(stream):
    """A model input shaped and named as ``stream``'s (models take the pipeline's dict of inputs)."""
    return keras.Input(stream.inputs[0].shape[1:], name=stream.inputs[0].name, dtype=stream.inputs[0].dtype)


def _head(prefix, num_classes, dropout):
    """Dropout and a ``Dense(num_classes)`` named ``<prefix>_dropout`` / ``<prefix>_classifier``;
    the logits are float32 also under mixed_float16, so the softmax and the loss keep their precision."""
    return (keras.layers.Dropout(dropout, name=f"{prefix}_dropout"),
            keras.layers.Dense(num_classes, dtype="float32", name=f"{prefix}_classifier"))


def single_stream_model(stream, num_classes, dropout, name, prefix):
    """``stream`` (a body model) + dropout + ``Dense(num_classes)``: logits ``(B, num_classes)``.

    Models take a dict of named inputs, as the data pipeline yields them (``kerasflow.data.inputs``):
    ``{"rgb": clip}``, ``{"flow_clip": clip}`` or ``{"tvl1_stack": stack}``. The head's layers are named
    ``<prefix>_dropout`` and ``<prefix>_classifier`` (``rgb`` or ``flow``), so a score-fusion model
    can hold both heads. EgoRCNN's heads: dropout 0.7 for the RGB stream, 0.5 for the flow streams.
    """
    inputs = _input_like(stream)
    dropout_layer, classifier = _head(prefix, num_classes, dropout)
    return keras.Model({inputs.name: inputs}, classifier(dropout_layer(stream(inputs))), name=name)


@keras.saving.register_keras_serializable(package="kerasflow")
class MeanSoftmax(keras.layers.Layer):
    """Late fusion of logits: ``log(mean_i softmax(logits_i))`` over a list of ``(B, K)`` logits.

    The result is a log-probability, so it serves as logits (its softmax is the averaged probability).
    Has no weights.
    """

    def call(self, inputs):
        probabilities = ops.mean(ops.stack([ops.softmax(ops.cast(x, "float32")) for x in inputs]), axis=0)
        return ops.log(ops.maximum(probabilities, 1e-12))

    def compute_output_shape(self, input_shape):
        return input_shape[0]


def two_stream_model(rgb_model, flow_model, num_classes, dropout=0.5, name="two_stream", fusion="features"):
    """The joint model of two single-stream models, sharing their stream bodies (§II-E).

    Inputs: the RGB clip and the flow stream's own input (its clip, ``flow_clip``, sampled as the flow
    stage sampled it; or the TV-L1 stack, ``tvl1_stack``). ``fusion``:
    - ``"features"``: EgoRCNN's joint model: ``[flow, rgb]`` features concatenated, dropout, a new
      ``Dense(num_classes)`` named ``classifier``;
    - ``"logits"``: the mean of the two streams' logits (their own heads; no new layer): ego-rnn's
      late fusion, ``0.5 * flow + 0.5 * rgb`` in its ``eval-run-twoStream.py``;
    - ``"scores"``: the mean of the two streams' softmax (their own heads; no new layer).
    """
    if fusion not in FUSIONS:
        raise ValueError(f"`fusion` must be one of {FUSIONS}. Received: fusion={fusion!r}")
    rgb_stream, flow_stream = rgb_model.get_layer("rgb_stream"), flow_model.get_layer("flow_stream")
    rgb, flow = _input_like(rgb_stream), _input_like(flow_stream)
    inputs = {RGB_CLIP: rgb, flow.name: flow}
    rgb_features, flow_features = rgb_stream(rgb), flow_stream(flow)
    if fusion in ("scores", "logits"):
        logits = [model.get_layer(f"{prefix}_classifier")(model.get_layer(f"{prefix}_dropout")(features))
                  for model, prefix, features in ((rgb_model, "rgb", rgb_features),
                                                  (flow_model, "flow", flow_features))]
        late = MeanSoftmax(name="mean_softmax") if fusion == "scores" else keras.layers.Average(name="mean_logits")
        return keras.Model(inputs, late(logits), name=name)
    dropout_layer, classifier = _head("fusion", num_classes, dropout)
    features = keras.layers.Concatenate(name="fused_features")([flow_features, rgb_features])
    return keras.Model(inputs, classifier(dropout_layer(features)), name=name)

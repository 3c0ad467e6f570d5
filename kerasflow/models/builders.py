"""One function per model kind (``kerasflow.models.kinds``) that builds the models its stages train.

``builder(model, data, num_classes) -> {model key: keras.Model}`` where ``model`` and ``data`` are a
recipe's ``model`` and ``data`` sections. The models of one kind share their
stream bodies, so the joint model starts from what the rgb and flow stages learnt.
"""

from kerasflow.models import flow_streams
from kerasflow.models.action_models import single_stream_model, two_stream_model
from kerasflow.models.flow_networks import get_flow_network
from kerasflow.models.flow_streams import build_optical_flow_stream
from kerasflow.models.rgb_stream import build_rgb_stream


def _rgb_stream(model, data):
    return build_rgb_stream(data.rgb_frames, data.frame_size, backbone=model.backbone, weights=model.weights,
                            units=model.convlstm_units, num_head_classes=model.num_head_classes)


def _representation_flow_stream(model, data):
    """The stream body of ``model.flow_network`` (``kerasflow.models.flow_networks``)."""
    flow = model.flow
    build = getattr(flow_streams, get_flow_network(model.flow_network).builder)
    backbone, weights = model.stream_weights("flow")
    return build(
        data.flow_frames, data.frame_size, backbone=backbone, weights=weights,
        num_flow_layers=flow.num_layers, flow_iterations=flow.iterations, flow_position=flow.position,
        bottleneck=flow.bottleneck, flow_options=flow.layer_options)


def _optical_flow_stream(model, data):
    backbone, weights = model.stream_weights("flow")
    return build_optical_flow_stream(data.frame_size, stack=data.flow_stack, backbone=backbone, weights=weights)


def _rgb_model(model, data, num_classes):
    return single_stream_model(_rgb_stream(model, data), num_classes, model.rgb_dropout, "rgb", "rgb")


def _two_stream(model, rgb, flow, num_classes, name):
    return {"rgb": rgb, "flow": flow,
            "joint": two_stream_model(rgb, flow, num_classes, model.fusion_dropout, name, model.fusion)}


def build_rgb(model, data, num_classes):
    """``rgb``: EgoRCNN's RGB stream + classifier (dropout 0.7)."""
    return {"rgb": _rgb_model(model, data, num_classes)}


def build_representation_flow(model, data, num_classes):
    """``flow``: the representation-flow stream + classifier (dropout 0.5)."""
    stream = _representation_flow_stream(model, data)
    return {"flow": single_stream_model(stream, num_classes, model.flow_dropout, "representation_flow", "flow")}


def build_optical_flow(model, data, num_classes):
    """``flow``: the TV-L1 optical-flow stream + classifier (dropout 0.5)."""
    stream = _optical_flow_stream(model, data)
    return {"flow": single_stream_model(stream, num_classes, model.flow_dropout, "optical_flow", "flow")}


def build_two_stream(model, data, num_classes):
    """``rgb``, ``flow`` (representation flow) and ``joint``, sharing the two stream bodies."""
    flow = build_representation_flow(model, data, num_classes)["flow"]
    return _two_stream(model, _rgb_model(model, data, num_classes), flow, num_classes, "two_stream")


def build_two_stream_optical_flow(model, data, num_classes):
    """``rgb``, ``flow`` (TV-L1) and ``joint``, sharing the two stream bodies."""
    flow = build_optical_flow(model, data, num_classes)["flow"]
    return _two_stream(model, _rgb_model(model, data, num_classes), flow, num_classes, "two_stream_optical_flow")

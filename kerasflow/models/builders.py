"""One function per model kind (``kerasflow.models.kinds``) that builds the models its stages train.

``builder(model_cfg, data_cfg, num_classes) -> {model key: keras.Model}`` where ``model_cfg`` and
``data_cfg`` are a recipe's ``model`` and ``data`` sections. The models of one kind share their
stream bodies, so the joint model starts from what the rgb and flow stages learnt.
"""

from kerasflow.models.action_models import single_stream_model, two_stream_model
from kerasflow.models.flow_streams import build_optical_flow_stream, build_representation_flow_stream
from kerasflow.models.rgb_stream import build_rgb_stream


def _rgb_stream(model, data):
    return build_rgb_stream(data.rgb_frames, data.frame_size, backbone=model.backbone, weights=model.weights,
                            units=model.convlstm_units, num_head_classes=model.num_head_classes)


def _representation_flow_stream(model, data):
    return build_representation_flow_stream(
        data.flow_frames, data.frame_size, backbone=model.backbone, weights=model.weights,
        num_flow_layers=model.num_flow_layers, flow_iterations=model.flow_iterations,
        flow_position=model.flow_position, bottleneck=model.flow_bottleneck)


def _optical_flow_stream(model, data):
    return build_optical_flow_stream(data.frame_size, stack=data.flow_stack, backbone=model.backbone,
                                     weights=model.weights)


def _two_stream(rgb_stream, flow_stream, model_cfg, num_classes, name, flow_name):
    return {
        "rgb": single_stream_model(rgb_stream, num_classes, model_cfg.rgb_dropout, "rgb"),
        "flow": single_stream_model(flow_stream, num_classes, model_cfg.flow_dropout, flow_name),
        "joint": two_stream_model(rgb_stream, flow_stream, num_classes, model_cfg.fusion_dropout, name),
    }


def build_rgb(model_cfg, data_cfg, num_classes):
    """``rgb``: EgoRCNN's RGB stream + classifier (dropout 0.7)."""
    stream = _rgb_stream(model_cfg, data_cfg)
    return {"rgb": single_stream_model(stream, num_classes, model_cfg.rgb_dropout, "rgb")}


def build_representation_flow(model_cfg, data_cfg, num_classes):
    """``flow``: the representation-flow stream + classifier (dropout 0.5)."""
    stream = _representation_flow_stream(model_cfg, data_cfg)
    return {"flow": single_stream_model(stream, num_classes, model_cfg.flow_dropout, "representation_flow")}


def build_optical_flow(model_cfg, data_cfg, num_classes):
    """``flow``: the TV-L1 optical-flow stream + classifier (dropout 0.5)."""
    stream = _optical_flow_stream(model_cfg, data_cfg)
    return {"flow": single_stream_model(stream, num_classes, model_cfg.flow_dropout, "optical_flow")}


def build_two_stream(model_cfg, data_cfg, num_classes):
    """``rgb``, ``flow`` (representation flow) and ``joint``, sharing the two stream bodies."""
    rgb, flow = _rgb_stream(model_cfg, data_cfg), _representation_flow_stream(model_cfg, data_cfg)
    return _two_stream(rgb, flow, model_cfg, num_classes, "two_stream", "representation_flow")


def build_two_stream_optical_flow(model_cfg, data_cfg, num_classes):
    """``rgb``, ``flow`` (TV-L1) and ``joint``, sharing the two stream bodies."""
    rgb, flow = _rgb_stream(model_cfg, data_cfg), _optical_flow_stream(model_cfg, data_cfg)
    return _two_stream(rgb, flow, model_cfg, num_classes, "two_stream_optical_flow", "optical_flow")

"""What ``ModelKind.build_models`` builds (``kerasflow.models.kinds``): one function per stream type that
builds its body, and the kind's models around the bodies.

``builder(model, data) -> keras.Model`` (the body, named ``<key>_stream``) where ``model`` and
``data`` are a recipe's ``model`` and ``data`` sections. The models of one kind share their stream
bodies, so the joint model starts from what the rgb and flow stages learnt.
"""

from kerasflow.models import flow_streams
from kerasflow.models.action_models import single_stream_model, two_stream_model
from kerasflow.models.flow_networks import get_flow_network
from kerasflow.models.flow_streams import build_optical_flow_stream
from kerasflow.models.rgb_stream import build_rgb_stream


def rgb_stream(model, data):
    """EgoRCNN's RGB stream."""
    return build_rgb_stream(data.rgb_frames, data.frame_size, backbone=model.backbone, weights=model.weights,
                            units=model.convlstm_units, num_head_classes=model.num_head_classes)


def representation_flow_stream(model, data):
    """The representation-flow stream of ``model.flow_network`` (``kerasflow.models.flow_networks``)."""
    flow = model.flow
    build = getattr(flow_streams, get_flow_network(model.flow_network).builder)
    backbone, weights = model.stream_weights("flow")
    return build(
        data.flow_frames, data.frame_size, backbone=backbone, weights=weights,
        num_flow_layers=flow.num_layers, flow_iterations=flow.iterations, flow_position=flow.position,
        bottleneck=flow.bottleneck, flow_options=flow.layer_options)


def optical_flow_stream(model, data):
    """EgoRCNN's TV-L1 optical-flow stream."""
    backbone, weights = model.stream_weights("flow")
    return build_optical_flow_stream(data.frame_size, stack=data.flow_stack, backbone=backbone, weights=weights)


def stream_model(stream, model, data, num_classes):
    """The single-stream model of ``stream`` (a ``StreamType``): its body, a dropout and a classifier
    (EgoRCNN: dropout 0.7 for the RGB stream, 0.5 for the flow streams), named as the stream type."""
    build = stream.builder if callable(stream.builder) else globals()[stream.builder]
    body = build(model, data)
    return single_stream_model(body, num_classes, getattr(model, stream.dropout), stream.name, stream.key)


def joint_model(kind, model, rgb, flow, num_classes):
    """The ``joint`` model of a two-stream ``kind`` (named as the kind), which shares the ``rgb`` and
    ``flow`` models' bodies and fuses them as ``model.fusion`` says."""
    return two_stream_model(rgb, flow, num_classes, model.fusion_dropout, kind.name, model.fusion)

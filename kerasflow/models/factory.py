"""Build the models a recipe trains, one per stage, sharing their stream bodies."""

from kerasflow.models.action_models import single_stream_model, two_stream_model
from kerasflow.models.flow_streams import build_optical_flow_stream, build_representation_flow_stream
from kerasflow.models.rgb_stream import build_rgb_stream

STAGE_MODEL = {"rgb_stage1": "rgb", "rgb_stage2": "rgb", "flow": "flow", "joint": "joint"}


def _rgb_stream(model_cfg, data_cfg, frames):
    return build_rgb_stream(
        frames,
        data_cfg.frame_size,
        backbone=model_cfg.backbone,
        weights=model_cfg.weights,
        units=model_cfg.convlstm_units,
        num_head_classes=model_cfg.num_head_classes,
    )


def _flow_stream(model_cfg, data_cfg, frames):
    if model_cfg.kind in ("optical_flow", "two_stream_optical_flow"):
        return build_optical_flow_stream(
            data_cfg.frame_size, stack=data_cfg.flow_stack, backbone=model_cfg.backbone, weights=model_cfg.weights
        )
    return build_representation_flow_stream(
        frames,
        data_cfg.frame_size,
        backbone=model_cfg.backbone,
        weights=model_cfg.weights,
        num_flow_layers=model_cfg.num_flow_layers,
        flow_iterations=model_cfg.flow_iterations,
        flow_position=model_cfg.flow_position,
        bottleneck=model_cfg.flow_bottleneck,
    )


def build_stage_models(model_cfg, data_cfg, num_classes):
    """The models of ``model_cfg.kind``, keyed ``"rgb"``, ``"flow"``, ``"joint"`` (those that apply).

    ``rgb`` (EgoRCNN RGB stream + classifier) trains in ``rgb_stage1``/``rgb_stage2``, ``flow`` (the
    representation- or optical-flow stream + classifier) in ``flow``, and ``joint`` (the two-stream
    fusion) in ``joint``. The joint model reuses the same stream bodies, so what the earlier stages
    learnt is where the joint stage starts. ``model_cfg``/``data_cfg`` are the recipe's ``model`` and
    ``data`` sections.
    """
    kind = model_cfg.kind
    models = {}
    rgb_stream = flow_stream = None
    if kind in ("rgb", "two_stream", "two_stream_optical_flow"):
        rgb_stream = _rgb_stream(model_cfg, data_cfg, data_cfg.rgb_frames)
        models["rgb"] = single_stream_model(rgb_stream, num_classes, model_cfg.rgb_dropout, "rgb")
    if kind != "rgb":
        flow_stream = _flow_stream(model_cfg, data_cfg, data_cfg.flow_frames)
        name = "optical_flow" if "optical" in kind else "representation_flow"
        models["flow"] = single_stream_model(flow_stream, num_classes, model_cfg.flow_dropout, name)
    if rgb_stream is not None and flow_stream is not None:
        models["joint"] = two_stream_model(rgb_stream, flow_stream, num_classes, model_cfg.fusion_dropout, kind)
    return models

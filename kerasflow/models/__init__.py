"""The paper's models: EgoRCNN RGB stream, representation-flow and TV-L1 flow streams, two-stream fusion."""

from kerasflow.models.action_models import single_stream_model, two_stream_model
from kerasflow.models.factory import STAGE_MODEL, build_stage_models
from kerasflow.models.flow_streams import build_optical_flow_stream, build_representation_flow_stream
from kerasflow.models.rgb_stream import build_rgb_stream, cam_maps_model
from kerasflow.models.stages import STAGE_RULES, set_trainable_for_stage, trainable_layers

__all__ = [
    "STAGE_MODEL",
    "STAGE_RULES",
    "build_optical_flow_stream",
    "build_representation_flow_stream",
    "build_rgb_stream",
    "build_stage_models",
    "cam_maps_model",
    "set_trainable_for_stage",
    "single_stream_model",
    "trainable_layers",
    "two_stream_model",
]

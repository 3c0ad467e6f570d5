"""The paper's models: EgoRCNN RGB stream, representation-flow and TV-L1 flow streams, two-stream fusion.

``kinds`` is the table of model kinds, the object each asks about a kind (stages, inputs, models,
checks); ``builders`` builds the streams and models; ``stage_rules`` says which layers train in each
stage and at what rate. Names load on first use (Keras with them).
"""

from kerasflow._lazy import lazy_attributes

__all__ = [
    "STAGE_RULES",
    "ModelKind",
    "StreamType",
    "build_inflated_flow_stream",
    "build_optical_flow_stream",
    "build_representation_flow_stream",
    "build_rgb_stream",
    "build_stage_models",
    "cam_maps_model",
    "register_kind",
    "set_trainable_for_stage",
    "single_stream_model",
    "trainable_layers",
    "two_stream_model",
]

__getattr__, __dir__ = lazy_attributes(__name__, {
    "STAGE_RULES": "kerasflow.models.stage_rules",
    "ModelKind": "kerasflow.models.kinds",
    "StreamType": "kerasflow.models.kinds",
    "build_inflated_flow_stream": "kerasflow.models.flow_streams",
    "build_optical_flow_stream": "kerasflow.models.flow_streams",
    "build_representation_flow_stream": "kerasflow.models.flow_streams",
    "build_rgb_stream": "kerasflow.models.rgb_stream",
    "build_stage_models": "kerasflow.models.kinds",
    "cam_maps_model": "kerasflow.models.rgb_stream",
    "register_kind": "kerasflow.models.kinds",
    "set_trainable_for_stage": "kerasflow.models.stage_rules",
    "single_stream_model": "kerasflow.models.action_models",
    "trainable_layers": "kerasflow.models.stage_rules",
    "two_stream_model": "kerasflow.models.action_models",
})

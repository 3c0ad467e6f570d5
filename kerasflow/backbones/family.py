"""What a backbone family declares, so that the rest of kerasflow builds, trains and loads weights into it
without knowing it (as keras-hub's model folders and Model Garden's backbone factory do).

A family is a package under ``kerasflow/backbones/`` (``resnet/``) whose ``__init__`` defines one
``BackboneFamily`` and imports no Keras; ``kerasflow.backbones.registry`` imports the families and
registers their presets, never the reverse. The family's classes subclass
``kerasflow.backbones.backbone.Backbone`` (the stem / stages / pool / head contract every stream builds
on) and are named ``"module:Class"``, imported on first use, so the recipe schema reads the presets
without starting TensorFlow.
"""

import dataclasses
import importlib
import typing


def resolve(target):
    """``target`` itself, or the object a ``"module:name"`` string names (its module imported now)."""
    if not isinstance(target, str):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclasses.dataclass(frozen=True)
class BackboneFamily:
    """One family of backbones.

    Attributes:
        name: the family's name (``resnet``), for messages.
        backbone_class: its ``Backbone`` subclass on images, a class or ``"module:Class"``.
        presets: ``{preset name: {"description": str, "config": constructor arguments,
            "imagenet_checkpoint": file name or None}}`` (keras-hub's ``backbone_presets``).
        layer_groups: ``{group: glob patterns}`` over layer paths relative to the backbone's place in a
            stream; the training stages' rules name ``last_stage`` (the last stage whole) and
            ``last_stage_convs`` (its blocks' main-path convolutions; ``kerasflow.models.stage_rules``).
        stage_strides: ``stage_strides(config) -> tuple``: the spatial stride of each stage of a preset.
        converter: ``convert_file(in_path, out_path, arch=None) -> backbone``, a function or
            ``"module:function"`` that converts a checkpoint of the family's ImageNet weights into a
            ``.weights.h5`` file and its architecture sidecar; None when it has none.
        backbone_3d_class: the family inflated to 3-D (clips ``(B, T, H, W, C)``), for the
            ``inflated_3d`` flow network; None when it has none.
        frames_left_3d: ``frames_left_3d(frames, strides, flow_position, flow_layers)``: frames a clip
            keeps to the end of the 3-D backbone (0: too short); plain Python, read by the recipe schema.
        clip_rule_3d: what in the 3-D backbone shortens a clip, for the message that asks for more frames.
    """

    name: str
    backbone_class: typing.Any
    presets: dict
    layer_groups: dict
    stage_strides: typing.Callable
    converter: typing.Any = None
    backbone_3d_class: typing.Any = None
    frames_left_3d: typing.Callable | None = None
    clip_rule_3d: str = ""

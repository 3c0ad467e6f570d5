"""The model kinds a recipe can train (``model.kind``): one table, read by everything that needs it.

Each kind says which training stages it runs and in what order, which model each stage trains (the
stages share stream bodies, so a later stage starts from what the earlier ones learnt), which inputs
that model takes, and which function builds its models (``kerasflow.models.builders``). The model a
run keeps is the one its last stage trains. Adding a kind is one ``register_kind`` entry here and one
builder function there.

Stages (the trainable layers of each: ``kerasflow.models.stages``):

- ``rgb_stage1``, ``rgb_stage2``: the ``rgb`` model (EgoRCNN's RGB stream and classifier);
- ``flow``: the ``flow`` model (a motion stream and classifier);
- ``joint``: the ``joint`` model (both streams and the fusion classifier).

Inputs are named by what they hold (``kerasflow.data.inputs``): an RGB clip for the RGB stream, an
RGB clip for the representation-flow stream, or a stack of TV-L1 flow frames.

This module imports no Keras: the recipe schema reads the table before TensorFlow starts.
"""

import dataclasses
import importlib

from kerasflow.data.inputs import FLOW_CLIP, RGB_CLIP, TVL1_STACK

STAGE_ORDER = ("rgb_stage1", "rgb_stage2", "flow", "joint")
STAGE_MODEL = {"rgb_stage1": "rgb", "rgb_stage2": "rgb", "flow": "flow", "joint": "joint"}
STREAMS = ("rgb", "flow")  # the stream bodies a model can have: rgb_stream, flow_stream
BUILDERS_MODULE = "kerasflow.models.builders"


@dataclasses.dataclass(frozen=True)
class ModelKind:
    """One ``model.kind``.

    Attributes:
        name: the recipe's ``model.kind``.
        summary: one line for listings and help.
        stages: the training stages it runs, in order (a subsequence of ``STAGE_ORDER``).
        inputs: ``{model key: input roles}`` of each model its stages train, in input order.
        builder: name of the function in ``kerasflow.models.builders`` that builds those models,
            ``builder(model_cfg, data_cfg, num_classes) -> {model key: keras.Model}``.
        flow: the motion stream it has: ``"representation"``, ``"optical"`` or None.
    """

    name: str
    summary: str
    stages: tuple
    inputs: dict
    builder: str
    flow: str | None = None

    @property
    def streams(self):
        """The ``STREAMS`` its models have (its ``rgb`` and ``flow`` models are those streams + a classifier)."""
        return tuple(stream for stream in STREAMS if stream in self.inputs)

    @property
    def final_model(self):
        """Key of the model the run keeps: the one its last stage trains."""
        return STAGE_MODEL[self.stages[-1]]

    def stage_inputs(self, stage):
        """Input roles of the model ``stage`` trains."""
        return self.inputs[STAGE_MODEL[stage]]

    def build_models(self, model_cfg, data_cfg, num_classes):
        """``{model key: keras.Model}`` for the recipe's ``model`` and ``data`` sections (imports Keras)."""
        builder = getattr(importlib.import_module(BUILDERS_MODULE), self.builder)
        return builder(model_cfg, data_cfg, num_classes)


KINDS = {}


def register_kind(kind):
    """Add a ``ModelKind`` to the table (its name becomes a valid ``model.kind``)."""
    if kind.name in KINDS:
        raise ValueError(f"model kind {kind.name!r} is registered already")
    unknown = [stage for stage in kind.stages if stage not in STAGE_ORDER]
    missing = {STAGE_MODEL[stage] for stage in kind.stages} - set(kind.inputs)
    if unknown or missing or list(kind.stages) != sorted(kind.stages, key=STAGE_ORDER.index):
        raise ValueError(f"model kind {kind.name!r}: stages {kind.stages} must be in the order of {STAGE_ORDER} "
                         f"and each stage's model needs its inputs")
    KINDS[kind.name] = kind
    return kind


def kind_names():
    """The names ``model.kind`` accepts, in registration order."""
    return tuple(KINDS)


def get_kind(name):
    """The ``ModelKind`` called ``name`` (``KeyError`` for an unknown name: the schema checks names first)."""
    return KINDS[name]


register_kind(ModelKind(
    "two_stream", "the paper's model: EgoRCNN RGB stream + representation-flow stream, fused",
    STAGE_ORDER, {"rgb": (RGB_CLIP,), "flow": (FLOW_CLIP,), "joint": (RGB_CLIP, FLOW_CLIP)},
    "build_two_stream", flow="representation",
))
register_kind(ModelKind(
    "rgb", "EgoRCNN's RGB stream alone (CAM attention + ConvLSTM)",
    ("rgb_stage1", "rgb_stage2"), {"rgb": (RGB_CLIP,)}, "build_rgb",
))
register_kind(ModelKind(
    "representation_flow", "the representation-flow stream alone",
    ("flow",), {"flow": (FLOW_CLIP,)}, "build_representation_flow", flow="representation",
))
register_kind(ModelKind(
    "optical_flow", "EgoRCNN's TV-L1 optical-flow stream alone (the baseline)",
    ("flow",), {"flow": (TVL1_STACK,)}, "build_optical_flow", flow="optical",
))
register_kind(ModelKind(
    "two_stream_optical_flow", "EgoRCNN two-stream: RGB stream + TV-L1 optical-flow stream (the baseline)",
    STAGE_ORDER, {"rgb": (RGB_CLIP,), "flow": (TVL1_STACK,), "joint": (RGB_CLIP, TVL1_STACK)},
    "build_two_stream_optical_flow", flow="optical",
))


def build_stage_models(model_cfg, data_cfg, num_classes):
    """``{model key: keras.Model}`` of ``model_cfg.kind`` for a recipe's ``model`` and ``data`` sections.

    ``rgb`` trains in ``rgb_stage1``/``rgb_stage2``, ``flow`` in ``flow`` and ``joint`` in ``joint``;
    the models share their stream bodies. Imports Keras.
    """
    return get_kind(model_cfg.kind).build_models(model_cfg, data_cfg, num_classes)

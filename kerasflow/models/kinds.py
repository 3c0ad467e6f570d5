"""The model kinds a recipe can train (``model.kind``): one task object each, which everything asks.

As Model Garden's tasks (``VideoClassificationTask`` registered in its task factory), a ``ModelKind`` is
the one object that knows a kind: which training stages it runs and in what order, which model each
stage trains, how it builds them, which inputs each takes and how the pipelines sample them, which
layers train and at what rate in each stage, and what it checks in a recipe. fit, evaluate, export,
tune, init_from and the recipe schema ask it; none of them switches on a kind's name.

A kind is made of streams (``StreamType``: EgoRCNN's RGB stream, the representation-flow stream, the
TV-L1 stream), at most one of each key (``rgb``, ``flow``). The stages follow from the streams: an
``rgb`` stream trains in ``rgb_stage1`` and ``rgb_stage2``, a ``flow`` stream in ``flow``, two streams
also in ``joint``; a kind may run fewer of them (``stages=``). So a kind that reuses streams is one
``register_kind`` call. The model a run keeps is the one its last stage trains.

Stages (the trainable layers of each: ``kerasflow.models.stage_rules``):

- ``rgb_stage1``, ``rgb_stage2``: the ``rgb`` model (EgoRCNN's RGB stream and classifier);
- ``flow``: the ``flow`` model (a motion stream and classifier);
- ``joint``: the ``joint`` model (both streams and the fusion classifier).

This module imports no Keras: the recipe schema reads the table before TensorFlow starts; the methods
that build or train import the Keras side on first use.
"""

import dataclasses
import importlib
import typing

from kerasflow.backbones.registry import layer_groups
from kerasflow.data.inputs import FLOW_CLIP, RGB_CLIP, TVL1_STACK, InputSpec
from kerasflow.models.flow_networks import get_flow_network

STAGE_ORDER = ("rgb_stage1", "rgb_stage2", "flow", "joint")
STAGE_MODEL = {"rgb_stage1": "rgb", "rgb_stage2": "rgb", "flow": "flow", "joint": "joint"}
STREAMS = ("rgb", "flow")  # the stream bodies a model can have: rgb_stream, flow_stream
BUILDERS_MODULE = "kerasflow.models.builders"
RULES_MODULE = "kerasflow.models.stage_rules"


@dataclasses.dataclass(frozen=True)
class StreamType:
    """One stream a kind can have.

    Attributes:
        name: what it is (``rgb``, ``representation_flow``, ``optical_flow``); also the name of its
            single-stream model.
        key: ``rgb`` or ``flow`` (``STREAMS``): its model key, its body's name (``<key>_stream``), its
            classifier's prefix (``<key>_classifier``) and its backbone (``ModelConfig.stream_weights``).
        input: the input it takes (``kerasflow.data.inputs``).
        builder: the function that builds its body, ``builder(model_cfg, data_cfg) -> keras.Model``
            named ``<key>_stream``: a function or the name of one in ``kerasflow.models.builders``.
        dropout: the ``model`` key of its classifier's dropout.
        input_spec: ``input_spec(data, rgb_frames, flow_frames) -> InputSpec``: how the pipelines sample
            its input, with a stage's frame counts (``Recipe.frames_for``).
        check: ``check(recipe, checker)``: what it refuses in a checked recipe, or None.
        flow_layers: whether it has representation-flow layers (``model.flow`` is read).
    """

    name: str
    key: str
    input: str
    builder: typing.Any
    dropout: str
    input_spec: typing.Callable
    check: typing.Callable | None = None
    flow_layers: bool = False


def _crop(data):
    return dict(crop=data.crop, subsample=data.spatial_subsample)


def _check_tvl1_frames(recipe, checker):
    for index, stage in enumerate(recipe.stages):
        if stage.name == "flow" and stage.frames is not None:
            checker.fail(f"stages[{index}].frames is not read by the optical-flow stream; "
                         "set data.flow_stack (flow frames per stack) instead")


def _check_flow_clip_frames(recipe, checker):
    """Each flow clip long enough for the flow layers and for what the flow network's backbone keeps."""
    model = recipe.model
    network, layers = get_flow_network(model.flow_network), model.flow.num_layers
    needed = network.frames_needed(model.flow_backbone, model.flow.position, layers)
    rule = network.clip_rule(model.flow_backbone)
    rule = f"; {rule}" if rule else ""
    for where, frames in [("data.flow_frames", recipe.data.flow_frames)] + [
            (f"stages[{index}].frames", stage.frames) for index, stage in enumerate(recipe.stages)
            if stage.name == "flow" and stage.frames is not None]:
        if frames < needed:
            checker.invalid(where, frames, f"at least {needed} (each of the model.flow.num_layers = {layers} "
                                           f"representation-flow layers uses one frame pair{rule})")


RGB = StreamType("rgb", "rgb", RGB_CLIP, "rgb_stream", "rgb_dropout",
                 lambda data, rgb, flow: InputSpec(RGB_CLIP, rgb, data.frame_size, **_crop(data)))
REPRESENTATION_FLOW = StreamType(
    "representation_flow", "flow", FLOW_CLIP, "representation_flow_stream", "flow_dropout",
    lambda data, rgb, flow: InputSpec(FLOW_CLIP, flow, data.frame_size, data.flow_sampling, data.flow_stride,
                                      **_crop(data)),
    _check_flow_clip_frames, flow_layers=True)
OPTICAL_FLOW = StreamType(
    "optical_flow", "flow", TVL1_STACK, "optical_flow_stream", "flow_dropout",
    lambda data, rgb, flow: InputSpec(TVL1_STACK, data.flow_stack, data.frame_size, **_crop(data)),
    _check_tvl1_frames)


def default_stages(streams):
    """The stages that train ``streams``: each stream's own, then ``joint`` for two."""
    keys = {stream.key for stream in streams}
    return tuple(stage for stage in STAGE_ORDER
                 if STAGE_MODEL[stage] in keys or (stage == "joint" and len(streams) == 2))


@dataclasses.dataclass(frozen=True)
class ModelKind:
    """One ``model.kind``: the task object (module docstring).

    Attributes:
        name: the recipe's ``model.kind``; also the name of its joint model.
        summary: one line for listings and help.
        stream_types: its ``StreamType``s, ``rgb`` key first.
        stages: the training stages it runs, in ``STAGE_ORDER`` (None: ``default_stages``).
    """

    name: str
    summary: str
    stream_types: tuple
    stages: tuple = None

    def __post_init__(self):
        if self.stages is None:
            object.__setattr__(self, "stages", default_stages(self.stream_types))

    @property
    def streams(self):
        """The ``STREAMS`` its models have (its ``rgb`` and ``flow`` models are those streams + a classifier)."""
        return tuple(stream.key for stream in self.stream_types)

    @property
    def inputs(self):
        """``{model key: input names}`` of each model it can build, in input order."""
        inputs = {stream.key: (stream.input,) for stream in self.stream_types}
        if len(self.stream_types) == 2:
            inputs["joint"] = tuple(stream.input for stream in self.stream_types)
        return inputs

    @property
    def final_model(self):
        """Key of the model the run keeps: the one its last stage trains."""
        return STAGE_MODEL[self.stages[-1]]

    @property
    def flow_layers(self):
        """Whether its models have representation-flow layers (``model.flow`` is read)."""
        return any(stream.flow_layers for stream in self.stream_types)

    def stage_streams(self, stage):
        """The ``StreamType``s of the model ``stage`` trains."""
        model = STAGE_MODEL[stage]
        return tuple(stream for stream in self.stream_types if model in ("joint", stream.key))

    def stage_inputs(self, stage):
        """Input names of the model ``stage`` trains."""
        return tuple(stream.input for stream in self.stage_streams(stage))

    def input_specs(self, recipe, stage):
        """The inputs of the model ``stage`` trains, as the pipelines sample them for it."""
        rgb, flow = recipe.frames_for(recipe.stage(stage))
        return [stream.input_spec(recipe.data, rgb, flow) for stream in self.stage_streams(stage)]

    def check_recipe(self, recipe, checker):
        """Refuse, through ``checker``, what its streams cannot read in ``recipe`` (a ``Recipe``)."""
        for stream in self.stream_types:
            if stream.check is not None:
                stream.check(recipe, checker)

    def build_models(self, model_cfg, data_cfg, num_classes):
        """``{model key: keras.Model}`` for the recipe's ``model`` and ``data`` sections (imports Keras).

        Each stream's body with a classifier (``<key>_classifier``), and for two streams the ``joint``
        model, which shares the two bodies, so it starts from what the earlier stages learnt.
        """
        builders = importlib.import_module(BUILDERS_MODULE)
        # The flow stream first: the order in which seeded runs have always drawn their initial weights.
        models = {stream.key: builders.stream_model(stream, model_cfg, data_cfg, num_classes)
                  for stream in sorted(self.stream_types, key=lambda stream: stream.key != "flow")}
        models = {key: models[key] for key in self.streams}
        if len(models) == 2:
            models["joint"] = builders.joint_model(self, model_cfg, models["rgb"], models["flow"], num_classes)
        return models

    def layer_groups(self, model_cfg):
        """``{"<key>_stream": {group: patterns}}``: the layer groups of each stream's backbone
        (``kerasflow.backbones.registry.layer_groups``), which the stage rules name."""
        return {f"{key}_stream": layer_groups(model_cfg.stream_weights(key)[0]) for key in self.streams}

    def set_trainable(self, model, stage, model_cfg):
        """Make exactly the layers of ``model`` that train in ``stage`` trainable; returns their paths."""
        rules = importlib.import_module(RULES_MODULE)
        return rules.set_trainable_for_stage(model, stage, self.layer_groups(model_cfg))

    def optimizer_groups(self, model, stage, model_cfg):
        """``[(variables, learning-rate factor, L2)]``: the parameter groups of ``stage``'s optimizer
        (``kerasflow.models.stage_rules.optimizer_groups``)."""
        rules = importlib.import_module(RULES_MODULE)
        return rules.optimizer_groups(model, stage, model_cfg.flow)


KINDS = {}


def register_kind(kind):
    """Add a ``ModelKind`` to the table (its name becomes a valid ``model.kind``); returns it."""
    keys = [stream.key for stream in kind.stream_types]
    if kind.name in KINDS:
        raise ValueError(f"model kind {kind.name!r} is registered already")
    valid = (kind.stages and all(stage in default_stages(kind.stream_types) for stage in kind.stages)
             and list(kind.stages) == sorted(kind.stages, key=STAGE_ORDER.index))
    if not valid or keys != sorted(set(keys), key=STREAMS.index):
        raise ValueError(f"model kind {kind.name!r}: streams {keys} must be at most one of each of {STREAMS}, "
                         f"in that order, and its stages {kind.stages} those of its streams, in the order of "
                         f"{STAGE_ORDER}")
    KINDS[kind.name] = kind
    return kind


def kind_names():
    """The names ``model.kind`` accepts, in registration order."""
    return tuple(KINDS)


def get_kind(name):
    """The ``ModelKind`` called ``name`` (``KeyError`` for an unknown name: the schema checks names first)."""
    return KINDS[name]


register_kind(ModelKind("two_stream", "the paper's model: EgoRCNN RGB stream + representation-flow stream, fused",
                        (RGB, REPRESENTATION_FLOW)))
register_kind(ModelKind("rgb", "EgoRCNN's RGB stream alone (CAM attention + ConvLSTM)", (RGB,)))
register_kind(ModelKind("representation_flow", "the representation-flow stream alone", (REPRESENTATION_FLOW,)))
register_kind(ModelKind("optical_flow", "EgoRCNN's TV-L1 optical-flow stream alone (the baseline)", (OPTICAL_FLOW,)))
register_kind(ModelKind("two_stream_optical_flow",
                        "EgoRCNN two-stream: RGB stream + TV-L1 optical-flow stream (the baseline)",
                        (RGB, OPTICAL_FLOW)))


def build_stage_models(model_cfg, data_cfg, num_classes):
    """``{model key: keras.Model}`` of ``model_cfg.kind`` for a recipe's ``model`` and ``data`` sections.

    ``rgb`` trains in ``rgb_stage1``/``rgb_stage2``, ``flow`` in ``flow`` and ``joint`` in ``joint``;
    the models share their stream bodies. Imports Keras.
    """
    return get_kind(model_cfg.kind).build_models(model_cfg, data_cfg, num_classes)

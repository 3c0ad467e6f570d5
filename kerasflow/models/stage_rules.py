"""What trains in each training stage, and at what rate (seed §II-B and §III-A; EgoRCNN's scripts).

A rule is a list of glob patterns over layer paths such as ``rgb_stream/layer4/layer4_0_conv1``
(``walk_layers``); a layer trains in a stage when its path matches one of the stage's patterns.
Inside a stream's backbone a rule names a layer group (``("rgb_stream", "last_stage_convs")``), which
each backbone family declares (``kerasflow.backbones.family.BackboneFamily.layer_groups``).
``ModelKind.set_trainable`` passes the groups of the recipe's backbones; without them every registered
family's groups apply (each names only its own layers). Batch norms inside the RGB stream never train,
so they stay in inference mode, as in EgoRCNN.
"""

import fnmatch

import keras

from kerasflow.backbones.registry import FAMILIES
from kerasflow.models.common import walk_layers

STAGE_RULES = {
    # Stage 1: the ConvLSTM and the classifier only.
    "rgb_stage1": ("rgb_stream/convlstm", "rgb_classifier"),
    # Stage 2: also the last stage's convolutions and the ImageNet head the CAM comes from.
    "rgb_stage2": ("rgb_stream/convlstm", "rgb_classifier", "rgb_stream/cam_attention",
                   ("rgb_stream", "last_stage_convs")),
    # The motion stream trains whole, batch norms included.
    "flow": ("*",),
    # Joint fusion: the fusion classifier (or, fusing scores, the streams' own classifiers), the RGB
    # stage-2 set, the flow stream's last stage and its representation-flow block (the end-to-end part
    # of the paper).
    "joint": (
        "fusion_classifier",
        "rgb_classifier",
        "flow_classifier",
        "rgb_stream/convlstm",
        "rgb_stream/cam_attention",
        ("rgb_stream", "last_stage_convs"),
        ("flow_stream", "last_stage"),
        "flow_stream/flow_block",
    ),
}


def stage_patterns(stage, layer_groups=None):
    """The glob patterns of ``stage``'s rule, its layer groups resolved with ``layer_groups``
    (``{"<key>_stream": {group: patterns}}``; None: every registered family's groups)."""
    if stage not in STAGE_RULES:
        raise ValueError(f"Unknown stage {stage!r}; stages are {list(STAGE_RULES)}")
    patterns = []
    for rule in STAGE_RULES[stage]:
        if isinstance(rule, str):
            patterns.append(rule)
            continue
        stream, group = rule
        families = [layer_groups[stream]] if layer_groups else [family.layer_groups for family in FAMILIES.values()]
        patterns += [f"{stream}/{pattern}" for groups in families for pattern in groups[group]]
    return tuple(patterns)


def _trains(path, layer, patterns):
    if path.startswith("rgb_stream/") and isinstance(layer, keras.layers.BatchNormalization):
        return False
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)


def trainable_layers(model, stage, layer_groups=None):
    """Paths of the layers of ``model`` that train in ``stage`` (only layers that own weights)."""
    patterns = stage_patterns(stage, layer_groups)
    return [path for path, layer in walk_layers(model) if layer.weights and _trains(path, layer, patterns)]


def set_trainable_for_stage(model, stage, layer_groups=None):
    """Make exactly ``trainable_layers(model, stage, layer_groups)`` trainable. Compile ``model`` after this."""
    chosen = set(trainable_layers(model, stage, layer_groups))
    model.trainable = True
    for path, layer in walk_layers(model):
        layer.trainable = path in chosen
    return sorted(chosen)


def optimizer_groups(model, stage, flow):
    """``[(variables, learning-rate factor, L2)]``: the parameter groups of the optimizer of ``stage``
    (a ``StageConfig``) for ``model``, ``flow`` being the recipe's ``model.flow``.

    The representation-flow layers' own parameters (theta, tau, lambda, kernels) train at
    ``flow.learning_rate_scale`` times the rate of their stream, with ``flow.weight_decay`` (null: the
    stage's, as the representation-flow code's group inherits its optimiser's); in the joint stage,
    the flow stream trains at ``flow_learning_rate`` (EgoRCNN's 1e-4 while the rest trains at 1e-2).
    """
    stream_factor = 1.0 if stage.flow_learning_rate is None else stage.flow_learning_rate / stage.learning_rate
    flow_parameters = [variable for _, layer in walk_layers(model)
                       for variable in getattr(layer, "flow_parameters", []) if variable.trainable]
    flow_stream = [variable for path, layer in walk_layers(model) if path.startswith("flow_stream/")
                   for variable in layer.trainable_weights]
    flow_l2 = stage.weight_decay if flow.weight_decay is None else flow.weight_decay
    return [(flow_parameters, stream_factor * flow.learning_rate_scale, flow_l2),
            (flow_stream, stream_factor, stage.weight_decay)]

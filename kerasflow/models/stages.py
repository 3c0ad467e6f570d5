"""Which layers train in each training stage, by name (seed §II-B and §III-A; EgoRCNN's scripts).

A rule is a list of glob patterns over layer paths such as ``rgb_stream/layer4/layer4_0_conv1``
(``walk_layers``); a layer trains in a stage when its path matches one of the stage's patterns.
Patterns inside a backbone come from the layer groups every backbone declares
(``kerasflow.backbones.presets.LAYER_GROUPS``). Batch norms inside the RGB stream never train, so
they stay in inference mode, as in EgoRCNN.
"""

import fnmatch

import keras

from kerasflow.backbones.presets import LAYER_GROUPS
from kerasflow.models.common import walk_layers


def _group(stream, group):
    return tuple(f"{stream}/{pattern}" for pattern in LAYER_GROUPS[group])


STAGE_RULES = {
    # Stage 1: the ConvLSTM and the classifier only.
    "rgb_stage1": ("rgb_stream/convlstm", "rgb_classifier"),
    # Stage 2: also the last stage's convolutions and the ImageNet head the CAM comes from.
    "rgb_stage2": ("rgb_stream/convlstm", "rgb_classifier", "rgb_stream/cam_attention",
                   *_group("rgb_stream", "last_stage_convs")),
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
        *_group("rgb_stream", "last_stage_convs"),
        *_group("flow_stream", "last_stage"),
        "flow_stream/flow_block",
    ),
}


def _trains(path, layer, patterns):
    if path.startswith("rgb_stream/") and isinstance(layer, keras.layers.BatchNormalization):
        return False
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)


def trainable_layers(model, stage):
    """Paths of the layers of ``model`` that train in ``stage`` (only layers that own weights)."""
    if stage not in STAGE_RULES:
        raise ValueError(f"Unknown stage {stage!r}; stages are {list(STAGE_RULES)}")
    return [
        path
        for path, layer in walk_layers(model)
        if layer.weights and _trains(path, layer, STAGE_RULES[stage])
    ]


def set_trainable_for_stage(model, stage):
    """Make exactly ``trainable_layers(model, stage)`` trainable. Compile ``model`` after this."""
    chosen = set(trainable_layers(model, stage))
    model.trainable = True
    for path, layer in walk_layers(model):
        layer.trainable = path in chosen
    return sorted(chosen)

"""The backbone registry: the families (``kerasflow.backbones.family``) and the presets a recipe names
(``model.backbone``), and what the rest of kerasflow asks about a preset without building it.

The registry imports the families and registers their presets; no family imports it. Plain Python: the
recipe schema reads the names, ImageNet checkpoints, stage strides and layer groups before TensorFlow
starts. ``kerasflow.backbones.presets.from_preset`` builds a preset.
"""

from kerasflow.backbones.family import resolve
from kerasflow.backbones.resnet.resnet_family import RESNET
from kerasflow.errors import UserError

IMAGENET = "imagenet"  # the weights value that names a preset's ImageNet weights (``kerasflow.backbones.imagenet``)
DEFAULT_PRESET = "resnet34"  # the paper's backbone: ``model.backbone``'s default

FAMILIES = {}  # family name -> BackboneFamily
PRESETS = {}  # preset name -> {"family", "description", "config", "imagenet_checkpoint"}


def register_family(family):
    """Add ``family`` (a ``BackboneFamily``) and its presets; their names become valid ``model.backbone``s."""
    taken = [name for name in family.presets if name in PRESETS]
    if family.name in FAMILIES or taken:
        raise ValueError(f"backbone family {family.name!r} or its presets {taken} are registered already")
    FAMILIES[family.name] = family
    for name, preset in family.presets.items():
        PRESETS[name] = {"family": family.name, "description": preset["description"],
                         "config": dict(preset["config"]), "imagenet_checkpoint": preset.get("imagenet_checkpoint")}
    return family


register_family(RESNET)


def preset_names():
    """The names ``model.backbone`` accepts, in registration order."""
    return tuple(PRESETS)


def preset_config(name):
    """Constructor arguments of preset ``name`` (a new dict); ``UserError`` for an unknown name."""
    if name not in PRESETS:
        raise UserError(f"unknown backbone preset {name!r}; use one of {', '.join(PRESETS)}")
    return dict(PRESETS[name]["config"])


def preset_family(name):
    """The ``BackboneFamily`` of preset ``name``."""
    preset_config(name)
    return FAMILIES[PRESETS[name]["family"]]


def imagenet_checkpoint(name):
    """File name of preset ``name``'s ImageNet weights under its family's download folder, or None."""
    preset_config(name)
    return PRESETS[name]["imagenet_checkpoint"]


def stage_strides(name):
    """The spatial stride of each stage of preset ``name``."""
    return tuple(preset_family(name).stage_strides(preset_config(name)))


def layer_groups(name):
    """``{group: patterns}``: the layer paths the training stages' rules name inside preset ``name``."""
    return preset_family(name).layer_groups


def preset_class(name, dims=2):
    """The backbone class of preset ``name`` on images (``dims=2``) or clips (``dims=3``; imports Keras)."""
    family = preset_family(name)
    if dims == 2:
        return resolve(family.backbone_class)
    if family.backbone_3d_class is None:
        raise _no_3d_version(name, family)
    return resolve(family.backbone_3d_class)


def _no_3d_version(name, family):
    return UserError(f"backbone preset {name!r} ({family.name} family) has no 3-D version; use "
                     "model.flow_network: per_frame, or a backbone with one")


def frames_left_3d(name, frames, flow_position, flow_layers):
    """Frames a clip of ``frames`` keeps to the end of preset ``name`` inflated to 3-D with ``flow_layers``
    flow layers after stage ``flow_position`` (0: too short)."""
    family = preset_family(name)
    if family.frames_left_3d is None:
        raise _no_3d_version(name, family)
    return family.frames_left_3d(frames, stage_strides(name), flow_position, flow_layers)


def converter(name):
    """The function that converts preset ``name``'s ImageNet checkpoint (``convert_file(in, out, arch)``)."""
    return resolve(preset_family(name).converter)


def flow_stream_weights(backbone, flow_backbone, weights, flow_weights):
    """The flow stream's ImageNet weights (``model.flow_weights``, else ``model.weights`` when it is
    ``imagenet``, which names each backbone's own, or when both streams share a backbone)."""
    if flow_weights is not None:
        return flow_weights
    return weights if weights == IMAGENET or flow_backbone == backbone else None

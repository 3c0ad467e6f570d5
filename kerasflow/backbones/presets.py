"""``from_preset``: build a backbone preset (``kerasflow.backbones.registry``), as keras-hub's
``Backbone.from_preset`` does, with ImageNet weights fetched and cached by name (``weights="imagenet"``,
``kerasflow.backbones.imagenet``) or read from a converted file."""

from kerasflow.backbones.imagenet import checkpoint_name, imagenet_weights
from kerasflow.backbones.registry import IMAGENET, preset_class, preset_config
from kerasflow.backbones.weights import load_imagenet_weights
from kerasflow.errors import UserError


def from_preset(name, weights=None, backbone_class=None, dims=2, **overrides):
    """The backbone preset ``name`` with ``overrides`` applied and, if given, ImageNet ``weights`` loaded.

    Args:
        name: a ``preset_names()`` entry, e.g. ``"resnet34"``.
        weights: ``"imagenet"`` (the preset's ImageNet weights, downloaded, checked and converted on first
            use, then read from ``$KERASFLOW_HOME/weights/``), the path of a converted ``.weights.h5``
            file (``python -m kerasflow.convert_weights``), or None for random initialisation.
        backbone_class: the class that builds the preset's architecture: its family's (None) or a
            subclass of it.
        dims: 2 for the family's backbone on images, 3 for its version on clips (time, height, width),
            which the ``inflated_3d`` flow network uses.
        **overrides: constructor arguments that replace the preset's, e.g. ``input_channels=10,
            include_head=False`` (a first conv taking 10 planes is initialised from the averaged
            ImageNet kernel).

    Example:

    ```python
    from kerasflow.backbones import from_preset
    backbone = from_preset("tiny", include_head=False, image_size=64)
    backbone.output["pooled"].shape  # (None, 64)
    ```
    """
    family_class = preset_class(name, dims)
    if weights == IMAGENET:
        checkpoint_name(name)  # a preset without ImageNet weights is refused before anything is built
    backbone_class = backbone_class or family_class
    if not issubclass(backbone_class, family_class):
        raise UserError(f"backbone preset {name!r} is a {family_class.__name__}; a {backbone_class.__name__} "
                        "cannot be built from it")
    backbone = backbone_class(**{**preset_config(name), "name": name, **overrides})
    if weights:
        load_imagenet_weights(backbone, imagenet_weights(name) if weights == IMAGENET else weights)
    return backbone

"""Converted ImageNet weights on disk (``python -m kerasflow.convert_weights`` output): a ``.weights.h5``
file and its ``.json`` sidecar, which holds the backbone's constructor arguments."""

import json
import os

from kerasflow.errors import UserError


def config_path(weights_path):
    """Sidecar with the backbone's constructor arguments: ``X.weights.h5`` -> ``X.weights.h5.json``."""
    return f"{weights_path}.json"


def read_weights_config(weights_path, keys=()):
    """The constructor arguments stored next to ``weights_path`` by the converter (``keys`` of them, or all)."""
    weights_path = str(weights_path)
    if not os.path.isfile(weights_path):
        raise UserError(f"{weights_path}: no such file; convert the weights with python -m kerasflow.convert_weights")
    sidecar = config_path(weights_path)
    try:
        with open(sidecar) as file:
            config = json.load(file)["config"]
        return {key: config[key] for key in keys or config}
    except (OSError, ValueError, KeyError, TypeError) as error:
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        raise UserError(
            f"{sidecar}: cannot read the architecture of {weights_path} ({reason}); "
            "re-run python -m kerasflow.convert_weights"
        ) from None


def load_imagenet_weights(backbone, path):
    """Copy the converted weights at ``path`` into ``backbone`` (its family's ``load_converted_weights``:
    layer by layer, adapted to its input channels and dimensions). Returns ``backbone``."""
    return backbone.load_converted_weights(str(path))

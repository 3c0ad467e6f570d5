"""Model files as kerasflow writes them: ``X.keras`` plus ``X.keras.json`` metadata, written atomically.

The metadata says how to feed the model (kind, stage, streams, frames, crop size, flow stack) and
names its classes, so evaluate and predict need nothing else. Weights checkpoints are ``.weights.h5``.
"""

import json
import zipfile
from pathlib import Path

from kerasflow.errors import UserError
from kerasflow.files import atomic_path, write_json

MODEL_FILE = "model.keras"
METADATA_KEYS = ("kind", "streams", "rgb_frames", "flow_stack", "frame_size", "class_names")


def save_model(model, path, metadata):
    """Save ``model`` to ``path`` (``.keras``) and its metadata to ``path + ".json"``, both atomically."""
    with atomic_path(path, ".keras") as temporary:
        model.save(temporary)
    write_json(f"{path}.json", metadata)


def save_weights(model, path):
    """Save ``model``'s weights (and its optimizer's state) to ``path`` (``.weights.h5``) atomically."""
    with atomic_path(path, ".weights.h5") as temporary:
        model.save_weights(temporary)


def find_model_file(path):
    """``RUN_DIR/model.keras`` for a run folder, else ``path`` itself; ``UserError`` when missing."""
    path = Path(path)
    if path.is_dir():
        model_file = path / MODEL_FILE
        if not model_file.is_file():
            raise UserError(f"{path} has no {MODEL_FILE}; finish its training with "
                            f"python -m kerasflow.fit {path / 'recipe.yaml'}, or pass a .keras model file")
        return model_file
    if not path.exists():
        raise UserError(f"model {str(path)!r} does not exist; pass a run folder or a .keras model file")
    return path


def read_model_metadata(model_file):
    """The ``X.keras.json`` metadata ``kerasflow.fit`` writes next to a model file (see ``save_model``)."""
    metadata_file = Path(f"{model_file}.json")
    try:
        metadata = json.loads(metadata_file.read_text())
    except FileNotFoundError:
        raise UserError(f"{metadata_file} is missing: a model file needs the metadata kerasflow.fit writes "
                        "next to it (kind, streams, frames, class names)") from None
    except (ValueError, OSError):
        raise UserError(f"{metadata_file} is not readable JSON; copy it again from the run folder") from None
    missing = [key for key in METADATA_KEYS if key not in metadata]
    if missing:
        raise UserError(f"{metadata_file} lacks {', '.join(missing)}; copy it again from the run folder")
    return metadata


def load_model_file(model_file):
    """The ``keras.Model`` in a ``.keras`` file; ``UserError`` when it is not a readable Keras archive."""
    if not zipfile.is_zipfile(model_file):
        raise UserError(f"{model_file} is not a Keras model file (not a .keras zip archive); "
                        "copy it again from the run folder")
    import keras

    import kerasflow.models  # noqa: F401  (registers the custom layers the file refers to)

    try:
        return keras.saving.load_model(model_file, compile=False)
    except Exception as error:  # Keras raises many types for a damaged archive
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{model_file} cannot be loaded ({reason[:200]}); copy it again from the run folder") from None


def load_saved_model(path):
    """``(keras.Model, metadata, model_file)`` of a run folder or a ``.keras`` file (with its ``.json``)."""
    model_file = find_model_file(path)
    metadata = read_model_metadata(model_file)
    return load_model_file(model_file), metadata, model_file

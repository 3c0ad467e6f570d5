"""The datasets a recipe can name (``data.dataset``): one registry with each one's index and splits.

An entry gives the number of splits, the function that lists a split's clips (``indexes``), the
recipe section of its own options, if it has one, and an optional ``prepare`` step that makes the
data before it is indexed (the synthetic set is generated on first use). Adding a dataset is one
``register_dataset`` call with its index function.

This module imports neither Keras nor TensorFlow: the recipe schema reads the names.
"""

import dataclasses
from pathlib import Path
from typing import Callable, Optional

from kerasflow.data import indexes
from kerasflow.errors import UserError


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One ``data.dataset``.

    Attributes:
        name: the recipe's ``data.dataset``.
        summary: one line: the layout ``data.root`` must have.
        splits: number of official splits (``data.split`` runs from 1 to it).
        index: ``index(root, split, subset, flow_root) -> VideoIndex``.
        validation: what ``data.validation`` defaults to: ``"test"`` (the test subset picks the best
            checkpoint, as ego-rnn's scripts do for the paper's datasets), ``"auto"`` (``HELD_OUT`` of
            each class's training clips held out when every class has ``HOLD_OUT_MIN_CLIPS``, else the
            test subset) or a fraction of the training clips held out.
        options: the ``data`` key holding this dataset's own options (read by ``prepare``), or None.
        prepare: ``prepare(data_cfg)``, run before indexing (e.g. making the data), or None.
    """

    name: str
    summary: str
    splits: int
    index: Callable
    validation: object = "test"
    options: Optional[str] = None
    prepare: Optional[Callable] = None


DATASETS = {}
AUTO = "auto"
HELD_OUT = 0.2  # the share of each class's training clips "auto" holds out to pick checkpoints
# "auto" holds out only when every class has this many training clips (40 left to train, 10 to validate): with
# fewer, the hold-out starves training and its accuracy is too coarse to pick a checkpoint (docs/motion-learning.md).
HOLD_OUT_MIN_CLIPS = 50


def register_dataset(spec):
    """Add a ``DatasetSpec`` to the registry (its name becomes a valid ``data.dataset``)."""
    if spec.name in DATASETS:
        raise ValueError(f"dataset {spec.name!r} is registered already")
    DATASETS[spec.name] = spec
    return spec


def dataset_names():
    """The names ``data.dataset`` accepts, in registration order."""
    return tuple(DATASETS)


def option_keys():
    """The ``data`` keys that hold one dataset's own options, ``{key: dataset name}``."""
    return {spec.options: spec.name for spec in DATASETS.values() if spec.options}


def get_dataset(name):
    """The ``DatasetSpec`` called ``name``; ``UserError`` for an unknown name."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; use one of {', '.join(DATASETS)}")
    return DATASETS[name]


def build_index(dataset, root, split=1, subset="train", flow_root=None):
    """Index of the clips of ``dataset`` under ``root`` for ``split`` and ``subset`` ("train" or "test").

    ``flow_root`` (default ``root``) holds the stored TV-L1 flow (``kerasflow.data.flow_files``).
    Clips a split file lists but the disk lacks are named in warnings and dropped.
    """
    spec = get_dataset(dataset)
    if subset not in indexes.SUBSETS:
        raise UserError(f"unknown subset {subset!r}; use 'train' or 'test'")
    if not 1 <= int(split) <= spec.splits:
        raise UserError(f"{dataset} has splits 1 to {spec.splits}; got split {split}")
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"dataset root {str(root)!r} does not exist or is not a folder; check the path")
    index = spec.index(root, int(split), subset, Path(flow_root) if flow_root else root)
    indexes.report_missing_clips(index, split)
    return index


def _make_synthetic(data):
    from kerasflow.data.synthetic import make_synthetic_dataset

    try:
        make_synthetic_dataset(data.root, **dataclasses.asdict(data.synthetic))
    except ValueError as error:  # a value the schema lets through (an odd size, too many classes)
        raise UserError(f"data.synthetic: {error}") from None


register_dataset(DatasetSpec(
    "gtea61", "ego-rnn frame folders <root>/frames/S1..S4/<class>/<n>/ (+ flow_x, flow_y)", 4,
    indexes.gtea61_index,
))
register_dataset(DatasetSpec(
    "egtea", "<root>/cropped_clips/<session>/<clip>.mp4 and <root>/action_annotation/", 3, indexes.egtea_index,
))
register_dataset(DatasetSpec(
    "hmdb51", "<root>/<class>/*.avi and <root>/testTrainMulti_7030_splits/", 3, indexes.hmdb51_index,
))
register_dataset(DatasetSpec(
    "folder", "<root>/<class>/<video or frame folder>, optional train.txt / test.txt", 1, indexes.folder_index,
    validation=AUTO,
))
register_dataset(DatasetSpec(
    "synthetic", "a motion dataset made under <root> on first use (options: data.synthetic)", 1,
    indexes.folder_index, validation=AUTO, options="synthetic", prepare=_make_synthetic,
))

"""Dataset indexes: the (clip, label) list of one split and subset of GTEA61, EGTEA Gaze+, HMDB51 or a folder.

Layouts (see README "Datasets"):

- ``gtea61``: ego-rnn frame folders ``<root>/frames|flow_x|flow_y/S1..S4/<class>/<n>/``; split k tests
  on subject ``Sk`` and trains on the others; labels come from one global sorted class list.
- ``egtea``: ``<root>/cropped_clips/<session>/<clip>.mp4`` and
  ``<root>/action_annotation/{train,test}_split{1,2,3}.txt`` (1-based action ids, ``action_idx.txt``
  for the names).
- ``hmdb51``: ``<root>/<class>/*.avi`` (or ``<root>/videos/<class>/*.avi``) and
  ``<root>/testTrainMulti_7030_splits/<class>_test_split{k}.txt`` (tags 1 train, 2 test, 0 unused).
- ``folder``: ``<root>/<class>/<video file or frame folder>``, with optional ``train.txt`` /
  ``test.txt`` lists of ``<class>/<name>`` paths; without them a split by a hash of each clip's path
  (stable when clips are added or removed). The classes are the folders on disk that hold clips
  (``flow_x``/``flow_y`` excepted).

Stored TV-L1 flow is found under ``flow_root`` (default ``root``) as ``kerasflow.data.flow_files``
lays it out. The datasets are registered by name in ``kerasflow.data.datasets``.

A clip listed by a split file but absent on disk (or a list line that names no class folder, or an
absolute path) is logged, dropped and counted in ``VideoIndex.missing``.
"""

import dataclasses
import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kerasflow.data.flow_files import FLOW_FOLDERS, GTEA_FLOW_X_FOLDERS, flow_folder_of
from kerasflow.data.video import frame_folder_files, is_video_file
from kerasflow.errors import UserError

logger = logging.getLogger("kerasflow.data")

SUBSETS = ("train", "test")
FOLDER_TEST_FRACTION = 0.25
_MISSING_NAMED = 10  # missing clips named one by one in the log; the rest are counted


@dataclass
class VideoItem:
    """One clip: ``source`` (video file or frame folder), 0-based ``label``, optional ``flow_x`` folder."""

    source: str
    label: int
    flow_source: str | None = None


@dataclass
class VideoIndex:
    """The clips of one ``dataset`` split ``subset``; ``class_names[label]`` names a label."""

    items: list[VideoItem]
    class_names: list[str]
    dataset: str
    subset: str
    missing: list[str] = field(default_factory=list)

    def __len__(self):
        return len(self.items)

    def class_counts(self):
        """Number of clips per class, int64 ``(num_classes,)``."""
        return np.bincount([item.label for item in self.items], minlength=len(self.class_names))


def report_missing_clips(index, split):
    """Log how many listed clips of ``index`` are missing on disk (each was named as it was found)."""
    if index.missing:
        logger.warning(
            "%d clips listed for %s %s split %s are missing on disk and were dropped",
            len(index.missing), index.dataset, index.subset, split,
        )


def _report_missing(missing, path):
    if len(missing) < _MISSING_NAMED:
        logger.warning("listed clip %r is missing on disk; dropped", str(path))
    missing.append(str(path))


def _visible_dirs(folder):
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith("."))


def _first_dir(root, names, what):
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise UserError(f"{what} folder not found: none of {', '.join(repr(str(root / n)) for n in names)} exists")


def gtea61_index(root, split, subset, flow_root):
    """GTEA61 (ego-rnn layout): split k tests on subject Sk."""
    frames_root = _first_dir(root, ("frames", "processed_frames2"), "GTEA61 frames")
    flow_x_root = next((flow_root / n for n in GTEA_FLOW_X_FOLDERS if (flow_root / n).is_dir()), None)
    subjects = [name for name in _visible_dirs(frames_root) if re.fullmatch(r"S\d+", name)]
    test_subject = f"S{split}"
    if test_subject not in subjects:
        raise UserError(
            f"GTEA61 split {split} tests on subject {test_subject} but {str(frames_root / test_subject)!r} "
            f"does not exist (found {', '.join(subjects) or 'no S* folders'}); use split 1-{len(subjects)}"
        )
    classes_by_subject = {subject: _visible_dirs(frames_root / subject) for subject in subjects}
    class_names = sorted(set().union(*classes_by_subject.values()))
    for subject, names in classes_by_subject.items():
        absent = sorted(set(class_names) - set(names))
        if absent:
            logger.warning("GTEA61 subject %s has no folder for classes %s", subject, ", ".join(absent))
    label_of = {name: label for label, name in enumerate(class_names)}
    chosen = [test_subject] if subset == "test" else [s for s in subjects if s != test_subject]
    items = []
    for subject in chosen:
        for name in classes_by_subject[subject]:
            for instance in _visible_dirs(frames_root / subject / name):
                source = frames_root / subject / name / instance
                flow = flow_x_root / subject / name / instance if flow_x_root else None
                items.append(VideoItem(str(source), label_of[name], str(flow) if flow and flow.is_dir() else None))
    if not items:
        raise UserError(f"GTEA61 {subset} subset of split {split} is empty: no clip folders under {str(frames_root)!r}")
    return VideoIndex(items, class_names, "gtea61", subset)


def _read_id_names(path):
    """``<name with spaces> <1-based id>`` lines -> names in id order."""
    by_id = {}
    for line_number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.strip().rsplit(maxsplit=1)
        if len(fields) != 2 or not fields[1].isdigit() or int(fields[1]) < 1:
            raise UserError(f"{str(path)!r} line {line_number}: expected '<action name> <id from 1>', got {line!r}")
        by_id[int(fields[1])] = fields[0]
    return [by_id.get(number, f"action_{number}") for number in range(1, max(by_id, default=0) + 1)]


def _read_egtea_split(path):
    """``<clip> <action> <verb> <noun>`` lines -> [(clip, 0-based action)]."""
    if not path.is_file():
        raise UserError(f"EGTEA split file {str(path)!r} does not exist; check the root and split (1-3)")
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2 or not fields[1].isdigit() or int(fields[1]) < 1:
            raise UserError(f"{str(path)!r} line {number}: expected '<clip> <action id from 1> ...', got {line!r}")
        entries.append((fields[0], int(fields[1]) - 1))
    if not entries:
        raise UserError(f"EGTEA split file {str(path)!r} lists no clips")
    return entries


def egtea_index(root, split, subset, flow_root):
    """EGTEA Gaze+ trimmed clips and their split lists."""
    annotations = root / "action_annotation" if (root / "action_annotation").is_dir() else root
    clips_root = _first_dir(root, ("cropped_clips",), "EGTEA clips")
    entries = _read_egtea_split(annotations / f"{subset}_split{split}.txt")
    if (annotations / "action_idx.txt").is_file():
        class_names = _read_id_names(annotations / "action_idx.txt")
    else:
        other = "test" if subset == "train" else "train"
        other_path = annotations / f"{other}_split{split}.txt"
        labels = [label for _, label in entries + (_read_egtea_split(other_path) if other_path.is_file() else [])]
        class_names = [f"action_{number}" for number in range(1, max(labels) + 2)]
    items, missing = [], []
    for clip, label in entries:
        if label >= len(class_names):
            raise UserError(f"EGTEA clip {clip!r} has action id {label + 1} beyond the {len(class_names)} actions "
                            "of action_idx.txt")
        session = "-".join(clip.split("-")[:3])
        path = next((p for p in (clips_root / session / f"{clip}.mp4", clips_root / f"{clip}.mp4") if p.is_file()),
                    None)
        if path is None:
            _report_missing(missing, clips_root / session / f"{clip}.mp4")
            continue
        items.append(VideoItem(str(path), label, flow_folder_of(path, clips_root, flow_root)))
    if not items:
        raise UserError(f"no clip of {str(annotations / f'{subset}_split{split}.txt')!r} "
                        f"exists under {str(clips_root)!r}")
    return VideoIndex(items, class_names, "egtea", subset, missing)


def hmdb51_index(root, split, subset, flow_root):
    """HMDB51 videos and the official split files (tags 1 train, 2 test)."""
    videos_root = root / "videos" if (root / "videos").is_dir() else root
    splits_root = _first_dir(root, ("testTrainMulti_7030_splits",), "HMDB51 split")
    suffix = f"_test_split{split}.txt"
    split_files = sorted(p for p in splits_root.iterdir() if p.name.endswith(suffix))
    if not split_files:
        raise UserError(f"no '*{suffix}' file in {str(splits_root)!r}; HMDB51 has splits 1-3")
    wanted_tag = "1" if subset == "train" else "2"
    class_names = [p.name[: -len(suffix)] for p in split_files]
    items, missing = [], []
    for label, split_file in enumerate(split_files):
        for line in split_file.read_text(encoding="utf-8-sig", errors="replace").splitlines():
            fields = line.rsplit(maxsplit=1)
            if len(fields) != 2 or fields[1] != wanted_tag:
                continue
            path = videos_root / class_names[label] / fields[0].strip()
            if not path.is_file():
                _report_missing(missing, path)
                continue
            items.append(VideoItem(str(path), label, flow_folder_of(path, root, flow_root)))
    if not items and not missing:
        raise UserError(f"the files '*{suffix}' in {str(splits_root)!r} tag no video {wanted_tag} ({subset})")
    if not items:
        raise UserError(f"none of the {len(missing)} HMDB51 {subset} videos of split {split} "
                        f"exists under {str(videos_root)!r}")
    return VideoIndex(items, class_names, "hmdb51", subset, missing)


def _folder_clips(class_folder):
    return sorted(
        entry.name
        for entry in os.scandir(class_folder)
        if not entry.name.startswith(".")
        and ((entry.is_file() and is_video_file(entry.name)) or (entry.is_dir() and frame_folder_files(entry.path)))
    )


def _read_list(path):
    return [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()
            if line.strip() and not line.startswith("#")]


def split_position(relative_path, salt=""):
    """Where a clip falls in [0, 1) for a split: a hash of ``salt`` and ``<class>/<name>``, so a clip's
    subset never depends on which other clips exist."""
    digest = hashlib.sha256(f"{salt}{relative_path}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _hashed_split(clips, fraction, salt=""):
    """The clips of one class that go to the smaller side: those whose ``split_position`` is below
    ``fraction``; a class of two or more clips keeps at least one clip on each side."""
    positions = {clip: split_position(clip, salt) for clip in clips}
    chosen = {clip for clip, position in positions.items() if position < fraction}
    ranked = sorted(clips, key=positions.get)
    if len(clips) >= 2 and not chosen:
        chosen = {ranked[0]}
    if len(clips) >= 2 and len(chosen) == len(clips):
        chosen.discard(ranked[-1])
    return chosen


def relative_clip_path(item, root):
    """A clip's path below the dataset root (``<class>/<name>`` for folder datasets), POSIX style."""
    try:
        return Path(item.source).relative_to(root).as_posix()
    except ValueError:
        return Path(item.source).as_posix()


def hold_out(train, validation, root):
    """``(train, validation)``: ``validation`` is a fraction of each class's training clips (chosen by a
    hash of their paths, so the same clips every time) or a list file of ``<path below root>`` lines;
    those clips leave the training subset."""
    root = Path(root)
    by_path = {relative_clip_path(item, root): item for item in train.items}
    if isinstance(validation, float):
        chosen = set()
        for label in range(len(train.class_names)):
            clips = [path for path, item in by_path.items() if item.label == label]
            chosen |= _hashed_split(clips, validation, salt="validation:")
    else:
        chosen = set(_read_list(Path(validation)))
        unknown = sorted(chosen - set(by_path))
        if unknown:
            raise UserError(f"data.validation list {validation} names {len(unknown)} clips that are not training "
                            f"clips of {root} (e.g. {unknown[0]!r}); list '<path below data.root>' lines of "
                            "training clips")
    kept = [item for path, item in by_path.items() if path not in chosen]
    held = [item for path, item in by_path.items() if path in chosen]
    if not kept or not held:
        raise UserError(f"data.validation = {validation} leaves {'no training' if not kept else 'no validation'} "
                        f"clip of the {len(train.items)}; choose another fraction or list")
    return (dataclasses.replace(train, items=kept),
            dataclasses.replace(train, items=held, subset="validation", missing=[]))


_EMPTY_CLASSES_WARNED = set()


def _folder_classes(root):
    """``{class name: clip names}`` of a folder dataset: the folders that hold clips (``flow_x``/``flow_y``
    excepted); an empty class folder is left out with a warning, once."""
    classes = {}
    for name in _visible_dirs(root):
        if name in FLOW_FOLDERS:
            continue
        clips = _folder_clips(root / name)
        if clips:
            classes[name] = clips
        elif (str(root), name) not in _EMPTY_CLASSES_WARNED:
            _EMPTY_CLASSES_WARNED.add((str(root), name))
            logger.warning("class folder %r holds no video or frame folder; it is not a class", str(root / name))
    return classes


def folder_index(root, split, subset, flow_root, test_fraction=FOLDER_TEST_FRACTION):
    """``<root>/<class>/<clip>``, split by ``train.txt``/``test.txt`` or, without them, by a hash of each
    clip's path (``split_position``): about ``test_fraction`` of each class tests, and adding or removing
    a clip never moves another one between the subsets."""
    list_paths = {name: root / f"{name}.txt" for name in SUBSETS}
    classes = _folder_classes(root)
    class_names = list(classes)
    label_of = {name: label for label, name in enumerate(class_names)}
    if any(path.is_file() for path in list_paths.values()):
        if not list_paths[subset].is_file():
            raise UserError(f"folder dataset has {str(list_paths['train' if subset == 'test' else 'test'])!r} "
                            f"but no {str(list_paths[subset])!r}; write it or remove both")
        items, missing = [], []
        for line in _read_list(list_paths[subset]):
            parts = Path(line).parts
            path = root / line
            # Only '<class folder>/<clip>' lines: an absolute path, '..' or an unknown class is no clip.
            if (Path(line).is_absolute() or len(parts) < 2 or ".." in parts or parts[0] not in label_of
                    or not path.exists()):
                _report_missing(missing, path)
                continue
            items.append(VideoItem(str(path), label_of[parts[0]], flow_folder_of(path, root, flow_root)))
        if not items:
            raise UserError(f"list {str(list_paths[subset])!r} names no existing clip; write '<class>/<video>' lines")
        return VideoIndex(items, class_names, "folder", subset, missing)
    items = []
    for label, (name, clips) in enumerate(classes.items()):
        relative_paths = [f"{name}/{clip}" for clip in clips]
        test = _hashed_split(relative_paths, test_fraction)
        for relative in sorted(path for path in relative_paths if (path in test) == (subset == "test")):
            path = root / relative
            items.append(VideoItem(str(path), label, flow_folder_of(path, root, flow_root)))
    if not items:
        raise UserError(f"folder dataset {str(root)!r} has no {subset} clips: "
                        "expected <class>/<video file or frame folder>")
    return VideoIndex(items, class_names, "folder", subset)

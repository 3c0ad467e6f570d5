"""Dataset indexes of tiny real layouts: GTEA61, EGTEA Gaze+, HMDB51 and folder."""

import hashlib
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from kerasflow.data.datasets import build_index
from kerasflow.data.indexes import folder_index
from kerasflow.data.synthetic import write_video
from kerasflow.data.tvl1 import extract_all as extract_flow_all
from kerasflow.errors import UserError


def _frames(folder, count, prefix="image_", extension=".jpg"):
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(1, count + 1):
        cv2.imwrite(str(folder / f"{prefix}{number:05d}{extension}"), np.full((8, 8, 3), number, np.uint8))


def _video(path, count=4, extension_size=32):
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, np.zeros((count, extension_size, extension_size, 3), np.uint8))


GTEA_CLASSES = ["close_chocolate", "pour_mustard,hotdog,bread", "take_bread"]


@pytest.fixture
def gtea_root(tmp_path):
    root = tmp_path / "gtea 61"
    for subject in ("S1", "S2", "S3", "S4"):
        for name in GTEA_CLASSES:
            if subject == "S3" and name == "take_bread":
                continue
            instances = 2 if (subject, name) == ("S1", "take_bread") else 1
            for instance in range(1, instances + 1):
                _frames(root / "frames" / subject / name / str(instance), 3)
                if subject != "S4":
                    _frames(root / "flow_x" / subject / name / str(instance), 2, prefix="flow_x_")
                    _frames(root / "flow_y" / subject / name / str(instance), 2, prefix="flow_y_")
        (root / "frames" / subject / ".DS_Store").write_bytes(b"\0")
    return root


def test_gtea61_split_by_subject_with_global_labels(gtea_root, caplog):
    with caplog.at_level(logging.WARNING, logger="kerasflow.data"):
        train = build_index("gtea61", gtea_root, split=2, subset="train")
    test = build_index("gtea61", gtea_root, split=2, subset="test")
    assert train.class_names == test.class_names == GTEA_CLASSES
    assert "S3" in caplog.text and "take_bread" in caplog.text
    assert len(test) == 3 and all("/S2/" in item.source for item in test.items)
    # S1: 4 clips, S3: 2 (no take_bread), S4: 3 -> labels by name, not by folder position in S3
    assert len(train) == 9
    assert train.class_counts().tolist() == [3, 3, 3]
    for item in train.items:
        assert GTEA_CLASSES[item.label] == item.source.split("/")[-2]
    s3 = [item for item in train.items if "/S3/" in item.source]
    assert [item.label for item in s3] == [0, 1]
    assert all(item.flow_source.endswith(item.source.split("frames", 1)[1]) for item in test.items)
    assert "/flow_x/S2/" in test.items[0].flow_source
    assert all(item.flow_source is None for item in train.items if "/S4/" in item.source)


def test_gtea61_errors_name_the_path(gtea_root, tmp_path):
    with pytest.raises(UserError, match="^gtea61 has splits 1 to 4; got split 5$"):
        build_index("gtea61", gtea_root, split=5)
    shutil.rmtree(gtea_root / "frames" / "S3")
    with pytest.raises(UserError, match="split 3 tests on subject S3 but .*S3' does not exist"):
        build_index("gtea61", gtea_root, split=3)
    with pytest.raises(UserError, match="nowhere"):
        build_index("gtea61", tmp_path / "nowhere")
    with pytest.raises(UserError, match="frames"):
        build_index("gtea61", tmp_path)


EGTEA_TRAIN = [
    ("P21-R04-ContinentalBreakfast-291175-294945-F006979-F007088", 1),
    ("P14-R02-TurkeySandwich-99662-103551-F002382-F002495", 2),
    ("OP01-R01-PastaSalad-1002316-1004005-F024051-F024101", 3),
    ("P01-R01-PastaSalad-1-2-F000001-F000002", 3),  # listed, never written: missing on disk
]
EGTEA_TEST = [("P04-R06-GreekSalad-682170-683940-F016368-F016419", 1)]


@pytest.fixture
def egtea_root(tmp_path):
    root = tmp_path / "EGTEA Gaze+"
    for clip, _ in EGTEA_TRAIN[:3] + EGTEA_TEST:
        _video(root / "cropped_clips" / "-".join(clip.split("-")[:3]) / f"{clip}.mp4")
    annotations = root / "action_annotation"
    annotations.mkdir()
    (annotations / "action_idx.txt").write_text("Take bowl 1\nPut condiment,bread,eating_utensil 2\n"
                                                "Inspect/Read recipe 3\n")
    for subset, entries in (("train", EGTEA_TRAIN), ("test", EGTEA_TEST)):
        lines = "".join(f"{clip} {action} {action} {action}\n" for clip, action in entries)
        (annotations / f"{subset}_split1.txt").write_text(lines + "\n")
    return root


def test_egtea_one_based_ids_names_with_spaces_and_missing_clip(egtea_root, caplog):
    with caplog.at_level(logging.WARNING, logger="kerasflow.data"):
        train = build_index("egtea", egtea_root, split=1, subset="train")
    assert train.class_names == ["Take bowl", "Put condiment,bread,eating_utensil", "Inspect/Read recipe"]
    assert [item.label for item in train.items] == [0, 1, 2]
    assert train.items[0].source.endswith(
        "cropped_clips/P21-R04-ContinentalBreakfast/P21-R04-ContinentalBreakfast-291175-294945-F006979-F007088.mp4"
    )
    assert len(train.missing) == 1 and "P01-R01-PastaSalad-1-2" in train.missing[0]
    assert "P01-R01-PastaSalad-1-2" in caplog.text
    test = build_index("egtea", egtea_root, split=1, subset="test")
    assert [(item.label, item.flow_source) for item in test.items] == [(0, None)]
    with pytest.raises(UserError, match="test_split2.txt"):
        build_index("egtea", egtea_root, split=2, subset="test")


def test_egtea_flow_mirrors_the_clips_folder(egtea_root, tmp_path):
    """``extract_flow.py <root>/cropped_clips <flow_root>`` writes ``flow_x/<session>/<clip>/``."""
    clip = EGTEA_TEST[0][0]
    extract_flow_all(egtea_root / "cropped_clips", tmp_path / "flow", workers=1)
    flow = tmp_path / "flow" / "flow_x" / "P04-R06-GreekSalad" / clip
    assert flow.is_dir()
    test = build_index("egtea", egtea_root, split=1, subset="test", flow_root=tmp_path / "flow")
    assert test.items[0].flow_source == str(flow)
    # flow_root defaults to the root
    (egtea_root / "flow_x" / "P04-R06-GreekSalad" / clip).mkdir(parents=True)
    test = build_index("egtea", egtea_root, split=1, subset="test")
    assert test.items[0].flow_source == str(egtea_root / "flow_x" / "P04-R06-GreekSalad" / clip)


@pytest.mark.parametrize("line", ["Take bowl", "Take bowl one", "Take bowl 0", ""])
def test_egtea_bad_action_names_line_is_one_line_error(egtea_root, line):
    (egtea_root / "action_annotation" / "action_idx.txt").write_text(f"Put lid 2\n{line}\n" if line else "3\n")
    with pytest.raises(UserError, match=r"action_idx.txt' line \d: expected '<action name> <id from 1>'"):
        build_index("egtea", egtea_root, split=1, subset="train")


HMDB = {
    "brush_hair": [("April_09_brush_hair_u_nm_np1_ba_goo_0.avi", 1), ("April_09_brush_hair_u_nm_np1_ba_goo_1.avi", 2),
                   ("April_09_brush_hair_u_nm_np1_ba_goo_2.avi", 0)],
    "cartwheel": [("(Rad)Schlag_die_Bank!_cartwheel_f_cm_np1_le_med_0.avi", 1),
                  ("Hamlet_(1996)_Fencing, Scenes_cartwheel_u_cm_np1_fr_med_0.avi", 2),
                  ("Gone_cartwheel_f_cm_np1_le_med_9.avi", 2)],  # listed as test, absent on disk
}


@pytest.fixture
def hmdb_root(tmp_path):
    root = tmp_path / "hmdb51"
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for name, entries in HMDB.items():
        for video, _ in entries:
            if not video.startswith("Gone"):
                _video(root / name / video)
        lines = "".join(f"{video} {tag} \n" for video, tag in entries)
        (splits / f"{name}_test_split1.txt").write_text(lines + "\n\n")
    return root


def test_hmdb51_tags_and_punctuated_names(hmdb_root):
    train = build_index("hmdb51", hmdb_root, split=1, subset="train")
    test = build_index("hmdb51", hmdb_root, split=1, subset="test")
    assert train.class_names == test.class_names == ["brush_hair", "cartwheel"]
    assert [(item.source.rsplit("/", 1)[1], item.label) for item in train.items] == [
        ("April_09_brush_hair_u_nm_np1_ba_goo_0.avi", 0),
        ("(Rad)Schlag_die_Bank!_cartwheel_f_cm_np1_le_med_0.avi", 1),
    ]
    assert [item.source.rsplit("/", 1)[1] for item in test.items] == [
        "April_09_brush_hair_u_nm_np1_ba_goo_1.avi",
        "Hamlet_(1996)_Fencing, Scenes_cartwheel_u_cm_np1_fr_med_0.avi",
    ]
    assert len(test.missing) == 1 and test.missing[0].endswith("Gone_cartwheel_f_cm_np1_le_med_9.avi")
    with pytest.raises(UserError, match="_test_split3.txt"):
        build_index("hmdb51", hmdb_root, split=3)


def test_hmdb51_flow_in_the_root_by_default(hmdb_root):
    """``extract_flow.py <hmdb_root> <hmdb_root>`` writes ``<root>/flow_x/<class>/<video>/``: no new class."""
    flow = hmdb_root / "flow_x" / "cartwheel" / "(Rad)Schlag_die_Bank!_cartwheel_f_cm_np1_le_med_0"
    flow.mkdir(parents=True)
    (hmdb_root / "flow_y" / "cartwheel").mkdir(parents=True)
    train = build_index("hmdb51", hmdb_root, split=1, subset="train")
    assert train.class_names == ["brush_hair", "cartwheel"]
    assert [item.flow_source for item in train.items] == [None, str(flow)]


def _folder_dataset(root, per_class=4):
    for name in ("jump", "run, fast!"):
        for number in range(per_class):
            _video(root / name / f"clip ({number}) {name}.avi")
    _frames(root / "jump" / "frame folder (x)", 3, extension=".png")
    (root / "jump" / ".DS_Store").write_bytes(b"\0")
    (root / "jump" / "notes.txt").write_text("not a video")


def test_folder_lists(tmp_path):
    root = tmp_path / "my data"
    _folder_dataset(root)
    (root / "train.txt").write_text("jump/clip (0) jump.avi\nrun, fast!/clip (1) run, fast!.avi\n"
                                    "jump/frame folder (x)\n")
    (root / "test.txt").write_text("run, fast!/clip (2) run, fast!.avi\njump/missing.avi\n")
    train = build_index("folder", root, subset="train")
    test = build_index("folder", root, subset="test")
    assert train.class_names == ["jump", "run, fast!"]
    assert [item.label for item in train.items] == [0, 1, 0]
    assert [item.label for item in test.items] == [1] and len(test.missing) == 1


def test_folder_list_lines_outside_the_class_folders_are_missing(tmp_path, caplog):
    root = tmp_path / "data"
    _folder_dataset(root)
    outside = tmp_path / "elsewhere.avi"
    _video(outside)
    (root / "flow_x" / "jump").mkdir(parents=True)
    (root / "train.txt").write_text(
        f"jump/clip (0) jump.avi\njmup/clip (0) jump.avi\n{outside}\njump\nflow_x/jump\n../elsewhere.avi\n"
    )
    (root / "test.txt").write_text("run, fast!/clip (2) run, fast!.avi\n")
    with caplog.at_level(logging.WARNING, logger="kerasflow.data"):
        train = build_index("folder", root, subset="train")
    assert train.class_names == ["jump", "run, fast!"]  # from the folders on disk; flow_x is none
    assert [(item.source, item.label) for item in train.items] == [(str(root / "jump" / "clip (0) jump.avi"), 0)]
    assert len(train.missing) == 5 and "jmup" in caplog.text


def _subset_of(index):
    return {Path(item.source).relative_to(index_root(index)).as_posix(): index.subset for item in index.items}


def index_root(index):
    return Path(index.items[0].source).parents[1]


def test_folder_split_follows_a_hash_of_each_clip_path(tmp_path):
    root = tmp_path / "data"
    _folder_dataset(root)
    flow = tmp_path / "flow" / "flow_x" / "jump" / "clip (1) jump"
    flow.mkdir(parents=True)
    train = folder_index(root, 1, "train", tmp_path / "flow")
    test = folder_index(root, 1, "test", tmp_path / "flow")
    assert len(train) + len(test) == 9  # 5 jump clips (one a frame folder) + 4 run clips; txt/.DS_Store ignored
    assert not {i.source for i in train.items} & {i.source for i in test.items}
    # Known answer, computed independently: a clip tests when sha256("<class>/<name>")[:8] / 2**64 < 0.25;
    # a class whose clips all fall above keeps its lowest one in test.
    positions = {f"{Path(i.source).parent.name}/{Path(i.source).name}":
                 int.from_bytes(hashlib.sha256(f"{Path(i.source).parent.name}/{Path(i.source).name}".encode()).digest()[:8],
                                "big") / 2**64 for i in train.items + test.items}
    for name in ("jump", "run, fast!"):
        own = {clip: p for clip, p in positions.items() if clip.startswith(name + "/")}
        expected = {clip for clip, p in own.items() if p < 0.25} or {min(own, key=own.get)}
        assert {clip for clip in own if clip in _subset_of(test)} == expected
    assert test.class_counts().min() >= 1 and train.class_counts().min() >= 1
    flows = [item.flow_source for item in train.items + test.items if item.flow_source]
    assert flows == [str(flow)]


def test_removing_or_adding_clips_moves_no_other_clip(tmp_path):
    root = tmp_path / "data"
    _folder_dataset(root, per_class=12)
    before = {**_subset_of(folder_index(root, 1, "train", root)), **_subset_of(folder_index(root, 1, "test", root))}
    removed = sorted(before)[3]
    (root / removed).unlink()
    _video(root / "jump" / "a new clip.avi")
    after = {**_subset_of(folder_index(root, 1, "train", root)), **_subset_of(folder_index(root, 1, "test", root))}
    assert {clip: subset for clip, subset in after.items() if clip in before} == {
        clip: subset for clip, subset in before.items() if clip != removed}


def test_an_empty_class_folder_is_no_class(tmp_path, caplog):
    root = tmp_path / "data"
    _folder_dataset(root)
    (root / "empty class").mkdir()
    (root / "empty class" / "notes.txt").write_text("no video here")
    with caplog.at_level(logging.WARNING, logger="kerasflow.data"):
        train = build_index("folder", root, subset="train")
    assert train.class_names == ["jump", "run, fast!"]
    assert "empty class' holds no video or frame folder; it is not a class" in caplog.text


def test_list_files_with_a_byte_order_mark_keep_their_first_clip(tmp_path):
    root = tmp_path / "data"
    _folder_dataset(root)
    (root / "train.txt").write_text("\ufeffjump/clip (0) jump.avi\nrun, fast!/clip (1) run, fast!.avi\n",
                                    encoding="utf-8")
    (root / "test.txt").write_text("\ufeffrun, fast!/clip (2) run, fast!.avi\n", encoding="utf-8")
    assert (len(build_index("folder", root, subset="train")) == 2
            and len(build_index("folder", root, subset="test")) == 1)


def test_folder_split_of_a_class_ignores_the_other_classes(tmp_path):
    root = tmp_path / "data"
    _folder_dataset(root, per_class=8)
    before = folder_index(root, 1, "test", root)
    _video(root / "a new class" / "x.avi")
    _video(root / "a new class" / "y.avi")
    (root / "flow_x" / "jump" / "clip (1) jump").mkdir(parents=True)  # flow in the root: no class
    after = folder_index(root, 1, "test", root)
    assert after.class_names == ["a new class", "jump", "run, fast!"]
    assert [i.source for i in after.items if "a new class" not in i.source] == [i.source for i in before.items]
    assert after.class_counts().tolist()[0] == 1

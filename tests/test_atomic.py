"""atomic_path: the target changes only when the write completes; nothing is left behind."""

import json

import pytest

from kerasflow.atomic import atomic_path, write_json


def test_interrupted_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "state.json"
    write_json(target, {"epoch": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            with open(temporary, "w") as file:
                file.write('{"epoch": 2, "half')
            raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    write_json(target, {"epoch": 2})
    assert json.loads(target.read_text()) == {"epoch": 2}


def test_temporary_keeps_the_extension_writers_need(tmp_path):
    with atomic_path(tmp_path / "model.keras", ".keras") as temporary:
        assert temporary.endswith(".keras") and temporary != str(tmp_path / "model.keras")
        open(temporary, "w").close()
    assert (tmp_path / "model.keras").exists()


def test_stale_temporary_folders_of_killed_processes_go_and_a_replaced_folder_comes_back(tmp_path):
    import os

    from kerasflow.atomic import remove_stale_temporary_folders

    dead = 999999999
    for name in (f".tflite.{dead}.tmp", f".moved.{dead}.old", f".kept.{dead}.old", "kept",
                 f".mine.{os.getpid()}.tmp"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metadata.json").write_text(name)
    (tmp_path / f".file.{dead}.tmp").write_text("a file: remove_stale_temporaries' business")
    assert remove_stale_temporary_folders(tmp_path) == 3
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        f".file.{dead}.tmp", f".mine.{os.getpid()}.tmp", "kept", "moved"]
    assert (tmp_path / "moved" / "metadata.json").read_text() == f".moved.{dead}.old"  # put back
    assert (tmp_path / "kept" / "metadata.json").read_text() == "kept"


def test_an_unwritable_folder_to_be_made_names_the_folder_that_exists(tmp_path):
    import errno

    from kerasflow.atomic import write_error

    error = write_error(tmp_path / "ro" / "sub" / "x", PermissionError(errno.EACCES, "Permission denied"))
    assert str(error) == (f"cannot write {tmp_path / 'ro' / 'sub' / 'x'}: Permission denied; make {tmp_path} "
                          "writable or choose another folder")

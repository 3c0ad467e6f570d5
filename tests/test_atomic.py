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

"""Atomic file writes: a temporary file in the same folder, renamed onto the target when complete.

An interruption at any moment (even ``kill -9``) leaves either the old file or the new one, never half
of one; a failed write leaves no temporary file behind.
"""

import contextlib
import json
import os


@contextlib.contextmanager
def atomic_path(path, suffix=".tmp"):
    """Yield a temporary path next to ``path``; rename it onto ``path`` when the block succeeds.

    ``suffix``: how the temporary name ends, for writers that pick the format from the extension
    (``.keras``, ``.weights.h5``, ``.avi``).
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(folder, f".{name}.{os.getpid()}.tmp{'' if suffix == '.tmp' else suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically, flushed to disk first."""
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())


def write_json(path, data):
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=2))

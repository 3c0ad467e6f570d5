"""Atomic file writes: a temporary file in the same folder, renamed onto the target when complete.

An interruption at any moment (even ``kill -9``) leaves either the old file or the new one, never half
of one; a failed write leaves no temporary file behind. A write that fails because the disk is full
or the folder cannot be written is one ``UserError`` line naming the path, the space it needs and the
space left. Temporary files are named ``.<name>.<pid>.tmp...``, temporary folders ``.<name>.<pid>.tmp``;
``remove_stale_temporaries`` and ``remove_stale_temporary_folders`` clear those a killed process left.
"""

import contextlib
import errno
import json
import os
import re
import shutil

from kerasflow.errors import UserError

_TEMPORARY = re.compile(r"^\..+\.(\d+)\.tmp(\.[\w.]+)?$")
_TEMPORARY_FOLDER = re.compile(r"^\.(.+)\.(\d+)\.(tmp|old)$")
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def _megabytes(count):
    return f"{count / 1e6:.1f} MB"


def write_error(path, error, needed_bytes=None):
    """The one-line ``UserError`` for ``error`` raised while writing ``path``, or None when the error is
    not the disk's or the folder's fault (libraries such as h5py report errno only in their message)."""
    text = str(error)
    code = getattr(error, "errno", None)
    folder = existing_folder_of(path)
    if code in _DISK_FULL or "No space left" in text or "errno = 28" in text or "Disk quota" in text:
        free = shutil.disk_usage(folder).free
        needs = f"it needs about {_megabytes(needed_bytes)}, " if needed_bytes else ""
        return UserError(f"cannot write {path}: the disk is full ({needs}{_megabytes(free)} free); free some "
                         "space and run the same command again (what was written before is intact)")
    if code in _NOT_WRITABLE or "Read-only file system" in text or "Permission denied" in text:
        return UserError(f"cannot write {path}: {os.strerror(code) if code in _NOT_WRITABLE else 'not writable'}; "
                         f"make {folder} writable or choose another folder")
    return None


def existing_folder_of(path):
    """The folder ``path`` is (to be) written in, or its nearest existing parent: the one that must be
    writable, or whose disk is full."""
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    return folder


def disk_full_error(path, needed_bytes):
    """The disk-full ``UserError`` of ``write_error`` when ``path``'s disk has less than ``needed_bytes`` free,
    else None: checked before long work whose output size is known."""
    if shutil.disk_usage(existing_folder_of(path)).free >= needed_bytes:
        return None
    return write_error(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), needed_bytes)


@contextlib.contextmanager
def atomic_path(path, suffix=".tmp", needed_bytes=None):
    """Yield a temporary path next to ``path``; rename it onto ``path`` when the block succeeds.

    ``suffix``: how the temporary name ends, for writers that pick the format from the extension
    (``.keras``, ``.weights.h5``, ``.avi``). ``needed_bytes``: the expected size: a disk with less room
    is refused before anything is written (a writer such as h5py that meets a full disk half-way prints
    its own tracebacks while it unwinds), and it is named in the message when the disk fills anyway.
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(folder, f".{name}.{os.getpid()}.tmp{'' if suffix == '.tmp' else suffix}")
    full = disk_full_error(path, needed_bytes) if needed_bytes else None
    if full is not None:
        raise full
    try:
        yield temporary
        os.replace(temporary, path)
    except (OSError, RuntimeError) as error:
        user_error = write_error(path, error, needed_bytes)
        if user_error is None:
            raise
        raise user_error from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


@contextlib.contextmanager
def disk_errors_as_user_errors(folder):
    """Turn a full disk or an unwritable ``folder`` met by writers that are not atomic (logs, TensorBoard)
    into the one-line ``UserError`` of ``write_error``."""
    try:
        yield
    except (OSError, RuntimeError) as error:
        user_error = write_error(getattr(error, "filename", None) or folder, error)
        if user_error is None:
            raise
        raise user_error from None


def ensure_writable_folder(folder):
    """Create ``folder`` if needed and check that a file can be written in it, before any long work."""
    folder = os.fspath(folder)
    try:
        os.makedirs(folder, exist_ok=True)
        with atomic_path(os.path.join(folder, ".kerasflow-write-check")) as temporary, open(temporary, "w"):
            pass
        os.remove(os.path.join(folder, ".kerasflow-write-check"))
    except OSError as error:
        raise write_error(folder, error) or UserError(f"cannot write in {folder}: {error.strerror}") from None


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically, flushed to disk first."""
    data = text.encode("utf-8")
    with atomic_path(path, needed_bytes=len(data)) as temporary, open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def write_json(path, data):
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=2))


def remove_stale_temporaries(folder):
    """Delete the temporary files under ``folder`` that processes no longer running left behind
    (``kill -9`` gives no chance to clean up). Returns how many bytes were freed."""
    freed = 0
    for root, _, files in os.walk(folder):
        for name in files:
            match = _TEMPORARY.match(name)
            if match and not process_alive(int(match.group(1))):
                path = os.path.join(root, name)
                with contextlib.suppress(OSError):
                    freed += os.path.getsize(path)
                    os.remove(path)
    return freed


def remove_stale_temporary_folders(folder):
    """Delete the temporary folders directly in ``folder`` (``.<name>.<pid>.tmp``) that processes no
    longer running left behind; a killed process's ``.<name>.<pid>.old`` (a folder being replaced) is put
    back at ``<name>`` when nothing took its place, else deleted. Returns how many were cleared."""
    cleared = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            match = _TEMPORARY_FOLDER.match(entry.name)
            if not match or not entry.is_dir(follow_symlinks=False) or process_alive(int(match.group(2))):
                continue
            original = os.path.join(folder, match.group(1))
            if match.group(3) == "old" and not os.path.exists(original):
                os.replace(entry.path, original)
            else:
                shutil.rmtree(entry.path, ignore_errors=True)
            cleared += 1
    return cleared


def process_alive(pid):
    """Whether a process with id ``pid`` exists (this one included)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

"""One process at a time in a run folder or a search folder.

``folder_lock`` holds an exclusive ``flock`` on ``<folder>/.kerasflow.lock`` for as long as the
process trains there; the file records the holder's pid, which a second process names in its one
line. The kernel drops the lock when the holder ends, however it ends (``kill -9`` included), so a
folder is never left locked; the file itself stays, unlocked, and is reused.
"""

import contextlib
import fcntl
import os
from pathlib import Path

from kerasflow.atomic import write_error
from kerasflow.errors import UserError

LOCK_FILE = ".kerasflow.lock"


@contextlib.contextmanager
def folder_lock(folder, command="python -m kerasflow.fit"):
    """Hold the lock of ``folder`` (created if needed) while the block runs, or raise one ``UserError``
    line naming the pid that holds it. A folder this call created and the block left empty is removed,
    so a run that fails its first checks leaves nothing behind."""
    folder = Path(folder)
    created = not folder.exists()
    path = folder / LOCK_FILE
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise write_error(path, error) or UserError(f"cannot write in {folder} ({error.strerror}); set "
                                                    "runtime.output_dir to a writable folder") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(descriptor, 32).decode(errors="replace").strip() or "unknown"
        os.close(descriptor)
        raise UserError(f"{folder} is in use by another kerasflow process (pid {holder}); wait for it to end or "
                        f"stop it, then run {command} again") from None
    try:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        yield
    finally:
        if created and os.listdir(folder) == [LOCK_FILE]:
            with contextlib.suppress(OSError):
                path.unlink()
                folder.rmdir()
        os.close(descriptor)


def folder_contents(folder, ignored=()):
    """The names in ``folder`` that are not hidden (the lock, temporary files) nor in ``ignored``, sorted;
    empty when the folder does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(name for name in os.listdir(folder) if not name.startswith(".") and name not in ignored)


def describe_contents(names, limit=5):
    """``'a', 'b' and 3 more``."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")

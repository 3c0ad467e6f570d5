"""Output of native code (TensorFlow's C++ runtime, LiteRT) kept off stderr while it starts."""

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def native_output_kept_back(replay=True):
    """Keep what native code (TensorFlow's C++ runtime, LiteRT) writes to file descriptor 2 during the
    block off stderr; it is replayed if the block fails, unless ``replay`` is false (the exception says
    enough)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as chatter:
        os.dup2(chatter.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            if replay:
                chatter.seek(0)
                sys.stderr.write(chatter.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)

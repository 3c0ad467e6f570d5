"""User-facing errors: one line naming the file, key or value and what to do, then a non-zero exit.

``cli_entry`` turns a command's ``main`` into one that ends every user error in exactly one
``error: ...`` line on stderr (on a line of its own, after a progress bar left open) and exit status 2,
and an interrupt (Ctrl-C or SIGTERM) in one ``interrupted: ...`` line and exit status 130.
``run_command`` ends the process with that status without tearing TensorFlow down under its worker
threads (which aborts a Python exit after an error: "terminate called without an active exception").
"""

import functools
import os
import signal
import sys
import threading


class UserError(Exception):
    """An error the user can fix (bad recipe, missing file, corrupt video...).

    Its message is a single line that names the culprit and says what to do. CLIs print it as
    ``error: <message>`` and exit with status 2 instead of showing a traceback.
    """


class _LineTracker:
    """A text stream proxy that remembers whether the last thing written ended a line."""

    def __init__(self, stream):
        self._stream = stream
        self.line_open = False

    def write(self, text):
        if text:
            self.line_open = not text.endswith("\n")
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


class _InterruptHandler:
    """SIGTERM's handler: raise ``KeyboardInterrupt`` and remember that it came.

    Remembering matters because the exception can be swallowed where it lands (NumPy's array
    coercion turns an exception raised while it iterates into an object scalar), and what then fails
    is a consequence of the interrupt, not an error to report as one.
    """

    def __init__(self):
        self.received = False

    def __call__(self, signum, frame):
        self.received = True
        raise KeyboardInterrupt


def cli_entry(main=None, *, interrupted="nothing half-written was kept"):
    """Decorate a CLI ``main(argv)``: a ``UserError`` ends in one line on stderr and exit 2; Ctrl-C or
    SIGTERM in one line (``interrupted: <interrupted>``, e.g. how to resume) and exit 130.

    Use as ``@cli_entry`` or ``@cli_entry(interrupted="run the same command again to resume")``.
    """
    if main is None:
        return functools.partial(cli_entry, interrupted=interrupted)

    @functools.wraps(main)
    def wrapper(argv=None):
        streams = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _LineTracker(streams[0]), _LineTracker(streams[1])
        in_main_thread = threading.current_thread() is threading.main_thread()
        handler = _InterruptHandler()
        previous = signal.signal(signal.SIGTERM, handler) if in_main_thread else None
        try:
            try:
                return main(argv)
            finally:
                sys.stdout.flush()  # a reader of stdout that has gone shows here, not in the exit's flush
        except UserError as error:
            message, status = (f"interrupted: {interrupted}", 130) if handler.received else (f"error: {error}", 2)
        except KeyboardInterrupt:
            message, status = f"interrupted: {interrupted}", 130
        except BrokenPipeError:  # whoever read stdout (``| head``) has gone: stop quietly, as Unix tools do
            message, status = None, 141
            os.dup2(os.open(os.devnull, os.O_WRONLY), streams[0].fileno())  # no second error at exit
        except Exception:
            if not handler.received:
                raise
            message, status = f"interrupted: {interrupted}", 130
        finally:
            tracked, (sys.stdout, sys.stderr) = (sys.stdout, sys.stderr), streams
            if in_main_thread:
                signal.signal(signal.SIGTERM, previous)
        for stream in tracked:  # end a progress bar's line, so the message stands on its own line
            if isinstance(stream, _LineTracker) and stream.line_open:
                stream.write("\n")
        if message:
            print(message, file=sys.stderr, flush=True)
        raise SystemExit(status) from None

    return wrapper


def run_command(main):
    """Run a command's ``main()`` and end the process with its exit status.

    After a failure with TensorFlow loaded, the process ends at once (``os._exit``, streams flushed):
    an ordinary exit would destroy TensorFlow's runtime while tf.data threads still run, which aborts
    with a core dump. Everything kerasflow writes is atomic, so nothing is lost by skipping the teardown.
    """
    try:
        status = main()
    except SystemExit as exit:
        status = exit.code
    status = 0 if status is None else status
    if status and "tensorflow" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status if isinstance(status, int) else 1)
    raise SystemExit(status)

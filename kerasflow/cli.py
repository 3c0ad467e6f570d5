"""Pieces the command-line tools share: argument types, the ``--set`` option, a quiet TensorFlow start."""

import argparse
import contextlib
import json
import os
import re
import sys

from kerasflow.errors import UserError, cli_entry
from kerasflow.native_output import native_output_kept_back


def command_parser(command, doc):
    """The ``ArgumentParser`` of ``python -m kerasflow.<command>``, described by ``doc``'s first line."""
    return argparse.ArgumentParser(prog=f"python -m kerasflow.{command}", description=doc.splitlines()[0])


def report_command(command, doc, add_arguments, make_report, format_report, tensorflow=True):
    """``main(argv)`` of ``python -m kerasflow.<command>``, a command that prints a report.

    ``add_arguments(parser)`` declares its arguments (``--json`` is added here); ``make_report(args)``
    does the work, after TensorFlow has started quietly (unless ``tensorflow`` is false: a command that
    only reads files), and returns a JSON-ready dict; the command
    prints it as one JSON object with ``--json`` (everything else then goes to stderr), else as
    ``format_report(report)``. User errors end in one line and exit status 2 (``cli_entry``); one that
    carries a ``report`` (work done before it) is also printed with ``--json``, with an ``error`` field.
    """

    @cli_entry
    def main(argv=None):
        parser = command_parser(command, doc)
        add_arguments(parser)
        add_json_option(parser)
        args = parser.parse_args(argv)
        if tensorflow:
            start_tensorflow_quietly()
        try:
            with json_mode(args.json):
                report = make_report(args)
        except UserError as error:  # one that carries what was done so far: the JSON says what went wrong too
            if args.json and getattr(error, "report", None) is not None:
                print(json.dumps({**error.report, "error": str(error)}))
            raise
        print(json.dumps(report) if args.json else format_report(report))
        return 0

    return main


@contextlib.contextmanager
def value_errors_as_user_errors(flags=None):
    """A ``ValueError`` a library function raises for an argument the command passed on from its command
    line (``... Received: ...``, as Keras words them) ends as a one-line ``UserError``.

    ``flags`` maps the library's argument names to the options that set them (``{"window": "--window"}``):
    a message received for one of them names the option as the user typed it (``flag_message``), and
    only those become user errors (any other ``ValueError`` of the work inside is a bug, with its traceback)."""
    try:
        yield
    except ValueError as error:
        message = flag_message(str(error), flags or {})
        if flags and message == str(error):
            raise
        raise UserError(message) from None


def flag_message(message, flags):
    """``message`` (Keras' wording: ``"`window` must ... Received: window=3"``) for a command-line user:
    when its one received argument is in ``flags``, it starts with that option and value and names the
    option instead of the argument (``"--window 3: --window must ..."``; an option left out, received as
    ``None``, is named alone); else it is unchanged."""
    match = re.search(r"\s*Received: (\w+)=(.*)$", message, re.DOTALL)
    if match is None or match.group(1) not in flags:
        return message
    name, value = match.groups()
    flag = flags[name]
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":  # a repr'd string: the text typed
        value = value[1:-1]
    text = message[: match.start()].replace(f"`{name}`", flag)
    return text if value == "None" else f"{flag} {value}: {text}"


def positive_int(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def add_set_option(parser):
    """``--set KEY=VALUE`` (repeatable) recipe overrides, collected in ``args.overrides``."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe key, e.g. --set data.root=/data/egtea (repeatable)")


def add_json_option(parser):
    """``--json``: print one JSON object on stdout (see ``json_mode``)."""
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout, logs on stderr")


def json_mode(enabled):
    """With ``--json``, whatever the libraries print goes to stderr, so stdout holds only the JSON object."""
    return contextlib.redirect_stdout(sys.stderr) if enabled else contextlib.nullcontext()


def start_tensorflow_quietly(initialize_devices=True):
    """Import TensorFlow and initialise its devices with the C++ start-up chatter kept off stderr.

    TensorFlow's native runtime prints absl/CUDA/oneDNN notices straight to file descriptor 2 when it
    loads, which ``TF_CPP_MIN_LOG_LEVEL`` does not silence; a CLI's one-line error would drown in
    them. They are replayed if the import fails. Python warnings and errors are not affected.
    ``initialize_devices=False`` leaves the runtime unstarted (MultiWorkerMirroredStrategy must
    configure it first), at the price of the device notices showing later.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_output_kept_back():
        import tensorflow as tf

        if initialize_devices:
            tf.config.list_logical_devices()

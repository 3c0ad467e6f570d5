"""``python -m kerasflow.report RUN_DIR [RUN_DIR ...]``: finished runs' test accuracy, its mean and deviation.

Made for a dataset's three splits: the paper's Table 3 reports EGTEA Gaze+ and HMDB51 as their mean.

    python -m kerasflow.report runs/egtea-split1 runs/egtea-split2 runs/egtea-split3 [--markdown FILE.md] [--json]

Prints a markdown table: each run's dataset, split, model kind and test videos, and the top-1 and top-5
of its final model (``metrics.json``), then their mean and sample standard deviation (n - 1); then
each class's accuracy averaged over the runs. ``--markdown FILE`` also writes the table to FILE (it
replaces an earlier report there, another file only with ``--overwrite``, a run folder's own files never);
``--json`` prints the same numbers as one JSON object instead. Runs of different datasets or class
lists are refused unless ``--mixed`` (each class is then averaged over the runs that have it).
"""

from pathlib import Path

from kerasflow.accuracy_report import REPORT_TITLE, format_markdown, report_runs
from kerasflow.atomic import write_text
from kerasflow.cli import report_command
from kerasflow.errors import UserError, run_command
from kerasflow.training.run_folder import run_folder_of


def check_markdown_target(path, overwrite=False):
    """Refuse a ``--markdown`` path that would replace what is not a report of ours: a folder, a file of a
    run folder (never, even with ``overwrite``), or another existing file (unless ``overwrite``)."""
    if path.is_dir():
        raise UserError(f"--markdown {path} is a folder; pass a file name, e.g. {path / 'report.md'}")
    if not path.exists() or _is_report(path):
        return
    run = run_folder_of(path.resolve().parent)
    if run is not None:
        raise UserError(f"--markdown {path} is a file of the run folder {run}; a run's own files are never "
                        "replaced: pass another --markdown path")
    if not overwrite:
        raise UserError(f"--markdown {path} exists and is not a report python -m kerasflow.report wrote; it is "
                        "not replaced: pass another path, or --overwrite to replace it")


def _is_report(path):
    """Whether the file ``path`` begins as every markdown report does."""
    try:
        with open(path, "rb") as file:
            return file.read(len(REPORT_TITLE)) == REPORT_TITLE.encode()
    except OSError:
        return False


def add_arguments(parser):
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="finished run folders (runtime.output_dir)")
    parser.add_argument("--mixed", action="store_true",
                        help="average runs of different datasets or class lists too (refused otherwise)")
    parser.add_argument("--markdown", metavar="FILE.md", help="also write the markdown table to this file")
    parser.add_argument("--overwrite", action="store_true",
                        help="let --markdown replace an existing file that is not a report (never a run's own file)")


def make_report(args):
    """The report of ``python -m kerasflow.report`` for its parsed ``args``; writes ``--markdown``."""
    report = report_runs(args.runs, args.mixed)
    if args.markdown:
        path = Path(args.markdown)
        check_markdown_target(path, args.overwrite)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, format_markdown(report) + "\n")
    return report


main = report_command("report", __doc__, add_arguments, make_report, format_markdown, tensorflow=False)

if __name__ == "__main__":
    run_command(main)

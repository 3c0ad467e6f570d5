"""Extract TV-L1 optical flow as dense_flow-style JPEGs for the optical-flow baseline stream.

    python -m kerasflow.extract_flow SRC_ROOT OUT_ROOT [--workers N] [--bound PIXELS] [--size SHORTER_SIDE]
                                     [--limit K] [--strict]

(``python tools/extract_flow.py`` is the same command.)

Writes the flow of every video file or frame folder under SRC_ROOT into OUT_ROOT in the layout of
``kerasflow.data.flow_files``, skips videos finished by an earlier run, and writes per-video seconds to
``OUT_ROOT/flow_timing.json``. Videos that fail are listed and the others extracted; the command
then ends with exit status 2 (``--strict``: at the first failure). See ``kerasflow.data.tvl1``.
"""

import argparse

from kerasflow.cli import positive_int
from kerasflow.data.tvl1 import TIMING_FILE, extract_all
from kerasflow.data.video import VIDEO_EXTENSIONS
from kerasflow.errors import UserError, cli_entry, run_command


def _positive_float(text):
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m kerasflow.extract_flow",
        description="TV-L1 optical flow (OpenCV DualTVL1, default parameters) as 8-bit JPEGs, "
        "dense_flow coding, ego-rnn layout.",
    )
    parser.add_argument("src_root", help=f"folder searched for videos ({' '.join(VIDEO_EXTENSIONS)}) "
                        "and frame folders (jpg/png)")
    parser.add_argument("out_root", help="output root: gets flow_x/, flow_y/ and " + TIMING_FILE)
    parser.add_argument("--workers", type=positive_int, default=None, metavar="N",
                        help="parallel processes, one video each (default: CPU count)")
    parser.add_argument("--bound", type=_positive_float, default=20.0, metavar="PIXELS",
                        help="flow clip value in pixels for the JPEG coding (default: 20, as dense_flow)")
    parser.add_argument("--size", type=positive_int, default=None, metavar="SHORTER_SIDE",
                        help="resize frames so the shorter side has this many pixels (default: keep)")
    parser.add_argument("--limit", type=positive_int, default=None, metavar="K",
                        help="process only the first K sources in sorted order (e.g. to time a sample)")
    parser.add_argument("--strict", action="store_true",
                        help="stop with exit status 2 at the first video that cannot be decoded")
    return parser


@cli_entry
def main(argv=None):
    args = build_parser().parse_args(argv)
    summary = extract_all(args.src_root, args.out_root, workers=args.workers, bound=args.bound,
                          size=args.size, limit=args.limit, strict=args.strict)
    for reason in summary["failed"].values():
        print(f"failed: {reason}")
    done = len(summary["seconds"])
    print(f"videos: {summary['extracted']} extracted, {summary['skipped']} already done, "
          f"{len(summary['failed'])} failed")
    print(f"flow extraction: {summary['mean_seconds']:.3f} s per video (mean over {done}), "
          f"{summary['total_seconds']:.1f} s in total; this run took {summary['wall_seconds']:.1f} s "
          f"of wall-clock time")
    print(f"per-video seconds: {args.out_root}/{TIMING_FILE}")
    if summary["failed"]:
        failed = sorted(summary["failed"])
        shown = ", ".join(failed[:10]) + (f" and {len(failed) - 10} more" if len(failed) > 10 else "")
        total = summary["extracted"] + summary["skipped"] + len(failed)
        raise UserError(f"{len(failed)} of {total} videos failed ({shown}); the others are done. "
                        "Repair or remove those (the reasons are above), then run the same command again")
    return 0


if __name__ == "__main__":
    run_command(main)

"""``python -m kerasflow.predict VIDEO --model MODEL``: the top-k actions of one video, or of a live stream.

Decodes the clip as the test set is decoded (uniform frames, centre crop), runs the model and prints
the ``--top-k`` classes with their softmax probabilities and the seconds it took. ``--cam OUT.png``
also draws the sampled frames with the RGB stream's CAM attention overlaid (EgoRCNN's picture).
Optical-flow models read a TV-L1 flow folder (``--flow-dir``) instead of decoding flow. ``MODEL`` is a
run folder, a ``.keras`` file, an export folder or a ``.tflite`` file (``python -m kerasflow.export``).

``--stream SOURCE`` (a camera index, a stream URL or a video file) predicts a sliding window of
``--window`` frames every ``--hop`` frames as the frames arrive, printing each window's time, top-k and
milliseconds (``kerasflow.streaming``); ``--json`` prints the timeline, ``--out`` writes the video with
the current top-1 drawn on it. This module parses and prints; ``kerasflow.prediction`` predicts.
"""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerasflow.cli import positive_int, report_command, value_errors_as_user_errors  # noqa: E402
from kerasflow.errors import UserError, run_command  # noqa: E402
from kerasflow.prediction import check_request, predict_video  # noqa: E402


def format_report(report):
    width = max(len(prediction["class"]) for prediction in report["predictions"])
    seconds = report["seconds"]
    lines = [f"{report['video']}:"]
    lines += [f"  {p['class']:<{width}}  {p['probability']:.4f}" for p in report["predictions"]]
    lines.append(f"seconds: decode {seconds['decode']:.3f}, model {seconds['model']:.3f}"
                 + (f", CAM picture {seconds['cam']:.3f}" if "cam" in seconds else ""))
    if "cam" in report:
        lines.append(f"CAM attention picture: {report['cam']}")
    if "note" in report:
        lines.append(report["note"])
    return "\n".join(lines)


def format_stream_report(report):
    lines = [f"{report['source']}: {report['frames']} frames at {report['fps']:.1f} fps, "
             f"{len(report['windows'])} windows of {report['window']} frames every {report['hop']}"]
    if report["dropped"]:
        milliseconds = sorted(window["milliseconds"] for window in report["windows"])
        lines.append(f"dropped {report['dropped']} windows: the model ({milliseconds[len(milliseconds) // 2]:.0f} ms "
                     f"a window) is slower than the hop ({1000 * report['hop'] / report['fps']:.0f} ms); "
                     "pass a larger --hop or export a faster model")
    if "out" in report:
        lines.append(f"annotated video: {report['out']}")
    return "\n".join(lines)


def format_window(window):
    best = "  ".join(f"{p['class']} {p['probability']:.3f}" for p in window.predictions)
    return f"{window.time:8.2f} s  frames {window.start}-{window.end}  {best}  ({window.milliseconds:.0f} ms)"


def format_any_report(report):
    return format_stream_report(report) if "windows" in report else format_report(report)


def add_arguments(parser):
    parser.add_argument("video", nargs="?", help="video file or frame folder")
    parser.add_argument("--model", required=True, help="run folder (its model.keras), a .keras model file, an "
                        "export folder or a .tflite file")
    parser.add_argument("--top-k", type=positive_int, default=5, help="how many classes to list (default 5)")
    parser.add_argument("--cam", metavar="OUT.png", help="also write the frames with CAM attention overlaid")
    parser.add_argument("--flow-dir", help="optical-flow models: the video's flow_x folder (TV-L1 JPEGs)")
    parser.add_argument("--clips", type=positive_int, default=1, help="clips per video: evenly spaced flow "
                        "windows or TV-L1 stacks (default 1)")
    parser.add_argument("--average", choices=("logits", "softmax"), default="logits", help="how --clips are "
                        "averaged: their logits (default, as ego-rnn) or their softmax")
    live = parser.add_argument_group("live prediction")
    live.add_argument("--stream", metavar="SOURCE", help="predict a camera index, a stream URL or a video file "
                      "window by window as its frames arrive (instead of VIDEO)")
    live.add_argument("--window", type=positive_int, help="frames in a window (default: the frames the model's "
                      "longest input spans)")
    live.add_argument("--hop", type=positive_int, help="frames between two windows (default half a window)")
    live.add_argument("--realtime", action="store_true", help="replay a video file at its frame rate, dropping "
                      "the windows the model cannot keep up with, as a camera would")
    live.add_argument("--out", metavar="ANNOTATED.mp4", help="write the stream with the current top-1 drawn on it")


def check_stream_request(args):
    """The one-line refusals of ``--stream`` that need no model."""
    if args.video is not None:
        raise UserError("give either a VIDEO or --stream SOURCE, not both")
    for option, value in (("--cam", args.cam), ("--flow-dir", args.flow_dir)):
        if value is not None:
            raise UserError(f"{option} does not apply to --stream; leave it out")
    if args.clips != 1:
        raise UserError("--clips does not apply to --stream (each window is one clip); leave it out")
    if args.out is not None:
        folder = os.path.dirname(os.path.abspath(args.out))
        if not args.out.lower().endswith(".mp4") or not os.path.isdir(folder):
            raise UserError(f"--out {args.out}: give a path ending in .mp4 in an existing folder")
        if os.path.realpath(args.out) == os.path.realpath(args.stream) or _same_file(args.out, args.stream):
            raise UserError(f"--out {args.out} is the --stream source {args.stream}; it is not overwritten: give "
                            "another path for the annotated video")
        if os.path.exists(args.out) and not is_mp4(args.out):
            raise UserError(f"--out {args.out} exists and is not an MP4 video; it is not overwritten: give "
                            "another path")


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def is_mp4(path):
    """Whether ``path`` starts as an MP4 (ISO base media) file does: a box whose type is ``ftyp``."""
    try:
        with open(path, "rb") as file:
            return file.read(8)[4:8] == b"ftyp"
    except OSError:
        return False


def predict_stream(args):
    """The report of ``python -m kerasflow.predict --stream``, printing each window as it is predicted."""
    from kerasflow.export.predictors import load_predictor
    from kerasflow.streaming import stream

    check_stream_request(args)
    predictor = load_predictor(args.model)
    with value_errors_as_user_errors({"window": "--window"}):  # stream's check_window, before any frame is read
        report = stream(predictor, args.stream, window=args.window, hop=args.hop, top=args.top_k,
                        realtime=args.realtime, out=args.out,
                        on_window=lambda window: print(format_window(window), flush=True))
    if args.out:
        report["out"] = args.out
    return report


def predict_file(args):
    """The report of ``python -m kerasflow.predict`` for its parsed ``args``."""
    from kerasflow.export.predictors import load_predictor, read_info

    if args.stream is not None:
        return predict_stream(args)
    if args.video is None:
        raise UserError("give a VIDEO to predict, or --stream SOURCE for a camera, stream or video file")
    for option in ("window", "hop", "out"):
        if getattr(args, option) is not None:
            raise UserError(f"--{option} applies to --stream only; leave it out or pass --stream")
    if args.realtime:
        raise UserError("--realtime applies to --stream only; leave it out or pass --stream")
    with value_errors_as_user_errors({"flow_dir": "--flow-dir"}):
        check_request(args.video, args.model, read_info(args.model), args.flow_dir, args.cam)
    predictor = load_predictor(args.model)
    return predict_video(predictor, Path(args.video), args.top_k, args.flow_dir, args.cam, args.clips, args.average)


main = report_command("predict", __doc__, add_arguments, predict_file, format_any_report)

if __name__ == "__main__":
    run_command(main)

"""``python -m kerasflow.predict VIDEO --model MODEL``: the top-k actions of one video, or of a live stream.

Decodes the clip as the test set is decoded (uniform frames, centre crop), runs the model and prints
the ``--top-k`` classes with their softmax probabilities and the seconds it took. ``--cam OUT.png``
also draws the sampled frames with the RGB stream's CAM attention overlaid (EgoRCNN's picture).
Optical-flow models read a TV-L1 flow folder (``--flow-dir``) instead of decoding flow. ``MODEL`` is a
run folder, a ``.keras`` file, an export folder or a ``.tflite`` file (``python -m kerasflow.export``).

``--stream SOURCE`` (a camera index, a stream URL or a video file) predicts a sliding window of
``--window`` frames every ``--hop`` frames as the frames arrive, printing each window's time, top-k and
milliseconds (``kerasflow.streaming``); ``--json`` prints the timeline, ``--out`` writes the video with
the current top-1 drawn on it.
"""

import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerasflow.cli import positive_int, report_command  # noqa: E402
from kerasflow.data.inputs import RGB_CLIP, TVL1_STACK  # noqa: E402
from kerasflow.errors import UserError, run_command  # noqa: E402
from kerasflow.visualize import is_png  # noqa: E402


def softmax(logits):
    """Probabilities ``(K,)`` float64 of logits ``(K,)`` (shifted by the max for stability)."""
    import numpy as np

    shifted = np.asarray(logits, np.float64) - np.max(logits)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum()


def top_k(probabilities, class_names, k):
    """``[{"class", "probability"}]`` of the ``k`` most probable classes, most probable first."""
    import numpy as np

    order = np.argsort(-probabilities, kind="stable")[:k]
    return [{"class": class_names[i], "probability": float(probabilities[i])} for i in order]


def check_request(video, model_path, info, flow_dir, cam=None):
    """The one-line refusals that need no model: a missing video, a missing or needless flow folder,
    a ``--cam`` picture that cannot be written."""
    if not os.path.exists(video):
        raise UserError(f"video {video!r} does not exist; check the path")
    if cam is not None:
        folder = os.path.dirname(os.path.abspath(cam))
        if not os.path.isdir(folder) or os.path.isdir(cam):
            raise UserError(f"cannot write the --cam picture {cam!r}: give a file path in an existing folder")
        if not cam.lower().endswith(".png"):
            raise UserError(f"--cam {cam}: the picture is a PNG; give a path ending in .png")
        if os.path.exists(cam) and not is_png(cam):
            raise UserError(f"--cam {cam} exists and is not a PNG picture; it is not overwritten: give another path")
    takes_flow = TVL1_STACK in info.input_names
    if takes_flow and flow_dir is None:
        raise UserError(f"{model_path} is an optical-flow model: it needs the video's TV-L1 flow folder; "
                        "pass --flow-dir <flow_x folder of this video> (python -m kerasflow.extract_flow makes it)")
    if not takes_flow and flow_dir is not None:
        raise UserError(f"--flow-dir is only read by optical-flow models; {model_path} takes RGB clips only")
    if takes_flow and not os.path.isdir(flow_dir):
        raise UserError(f"flow folder {flow_dir!r} does not exist; pass the video's flow_x folder")


def predict_video(predictor, video, top=5, flow_dir=None, cam=None, clips=1, average="logits"):
    """Predict one video with ``predictor`` (``kerasflow.export.runtime``: a Keras model or an export);
    with ``cam`` also write the attention picture there. Returns the report dict.

    ``clips`` > 1 averages that many evenly spaced flow windows (or TV-L1 stacks): their logits, or with
    ``average="softmax"`` their probabilities (``kerasflow.metrics.average_clip_scores``)."""
    import numpy as np

    from kerasflow.backend import run_model
    from kerasflow.data.feeds import test_clips, video_inputs
    from kerasflow.metrics import average_clip_scores
    from kerasflow.data.video import BadVideo
    from kerasflow.models import cam_maps_model
    from kerasflow.models.common import streams_of
    from kerasflow.visualize import cam_grid, write_png

    info, model = predictor.info, predictor.keras_model
    if cam is not None and (model is None or "rgb_stream" not in streams_of(model)):
        raise UserError(f"--cam needs a Keras model with an RGB stream (the CAM comes from EgoRCNN's RGB stream); "
                        f"this {info.kind} {predictor.format} model of stage {info.stage} has none")
    requested = clips = test_clips(info.inputs, clips)
    if clips > 1:
        clips = min(clips, distinct_clips(video, info.inputs, flow_dir) or clips)
    start = time.perf_counter()
    try:
        inputs, display = video_inputs(video, info.inputs, flow_dir, clips)
    except BadVideo as error:
        raise UserError(f"bad video {error.path!r}: {error.reason}; check or re-encode it") from None
    decode_seconds = time.perf_counter() - start
    start = time.perf_counter()
    if clips > 1:
        inputs = {name: value[0] for name, value in inputs.items()}  # the clips as a batch
    logits = np.asarray(predictor(inputs), np.float64)
    logits = average_clip_scores(logits[None], average)[0] if clips > 1 else logits[0]
    model_seconds = time.perf_counter() - start
    probabilities = softmax(logits)
    predictions = top_k(probabilities, list(info.class_names), top)
    report = {
        "video": str(video),
        "predictions": predictions,
        "clips": clips,
        "average": average,
        "seconds": {"decode": decode_seconds, "model": model_seconds},
    }
    if requested != clips:
        report["note"] = (f"--clips {requested}: {video} has {clips} distinct clips for this model; averaged "
                          f"those {clips}")
    if cam is not None:
        start = time.perf_counter()
        maps = run_model(cam_maps_model(model), inputs[RGB_CLIP])[0]
        best = predictions[0]
        write_png(cam, cam_grid(display, maps, f"{best['class']} ({best['probability']:.2f})"))
        report["seconds"]["cam"] = time.perf_counter() - start
        report["cam"] = str(cam)
    return report


def distinct_clips(video, inputs, flow_dir):
    """How many different test clips ``video`` offers a model's ``inputs``: the starts of the longest
    contiguous window or TV-L1 stack (segment-sampled clips are all one); 0 when the count is unknown."""
    import cv2

    from kerasflow.data.flow_files import list_flow_x_files
    from kerasflow.data.video import frame_folder_files

    def frame_count():
        if os.path.isdir(video):
            return len(frame_folder_files(str(video)))
        capture = cv2.VideoCapture(str(video))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
        capture.release()
        return count

    starts = []
    for spec in inputs:
        if spec.is_clip and spec.sampling != "segments":
            count, span = frame_count(), (spec.frames - 1) * spec.stride + 1
        elif not spec.is_clip and flow_dir is not None:
            count, span = len(list_flow_x_files(flow_dir)), spec.frames
        else:
            continue
        if count <= 0:
            return 0
        starts.append(max(count - span + 1, 1))
    return max(starts, default=1)


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
    from kerasflow.export.runtime import load_predictor
    from kerasflow.streaming import stream

    check_stream_request(args)
    predictor = load_predictor(args.model)
    report = stream(predictor, args.stream, window=args.window, hop=args.hop, top=args.top_k,
                    realtime=args.realtime, out=args.out,
                    on_window=lambda window: print(format_window(window), flush=True))
    if args.out:
        report["out"] = args.out
    return report


def predict_file(args):
    """The report of ``python -m kerasflow.predict`` for its parsed ``args``."""
    from kerasflow.export.runtime import load_predictor, read_info

    if args.stream is not None:
        return predict_stream(args)
    if args.video is None:
        raise UserError("give a VIDEO to predict, or --stream SOURCE for a camera, stream or video file")
    for option in ("window", "hop", "out"):
        if getattr(args, option) is not None:
            raise UserError(f"--{option} applies to --stream only; leave it out or pass --stream")
    if args.realtime:
        raise UserError("--realtime applies to --stream only; leave it out or pass --stream")
    check_request(args.video, args.model, read_info(args.model), args.flow_dir, args.cam)
    predictor = load_predictor(args.model)
    return predict_video(predictor, Path(args.video), args.top_k, args.flow_dir, args.cam, args.clips, args.average)


main = report_command("predict", __doc__, add_arguments, predict_file, format_any_report)

if __name__ == "__main__":
    run_command(main)

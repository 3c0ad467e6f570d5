"""``python -m kerasflow.predict VIDEO --model RUN_DIR_OR_FILE``: the top-k actions of one video.

Decodes the clip as the test set is decoded (uniform frames, centre crop), runs the model and prints
the ``--top-k`` classes with their softmax probabilities and the seconds it took. ``--cam OUT.png``
also draws the sampled frames with the RGB stream's CAM attention overlaid (EgoRCNN's picture).
Optical-flow models read a TV-L1 flow folder (``--flow-dir``) instead of decoding flow.
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


def predict_video(model, info, video, top=5, flow_dir=None, cam=None, clips=1):
    """Predict one video; with ``cam`` also write the attention picture there. Returns the report dict.

    ``clips`` > 1 averages the softmax of that many evenly spaced flow windows (or TV-L1 stacks)."""
    import numpy as np

    from kerasflow.data.feeds import test_clips, video_inputs
    from kerasflow.metrics import average_clip_scores
    from kerasflow.data.video import BadVideo
    from kerasflow.models import cam_maps_model
    from kerasflow.models.common import streams_of
    from kerasflow.visualize import cam_grid, write_png

    if cam is not None and "rgb_stream" not in streams_of(model):
        raise UserError(f"--cam needs a model with an RGB stream (the CAM comes from EgoRCNN's RGB stream); "
                        f"this {info.kind} model of stage {info.stage} has none")
    clips = test_clips(info.inputs, clips)
    start = time.perf_counter()
    try:
        inputs, display = video_inputs(video, info.inputs, flow_dir, clips)
    except BadVideo as error:
        raise UserError(f"bad video {error.path!r}: {error.reason}; check or re-encode it") from None
    decode_seconds = time.perf_counter() - start
    start = time.perf_counter()
    if clips > 1:
        inputs = {name: value[0] for name, value in inputs.items()}  # the clips as a batch
    logits = np.asarray(model(inputs, training=False), np.float64)
    logits = average_clip_scores(logits[None])[0] if clips > 1 else logits[0]
    model_seconds = time.perf_counter() - start
    probabilities = softmax(logits)
    predictions = top_k(probabilities, list(info.class_names), top)
    report = {
        "video": str(video),
        "predictions": predictions,
        "clips": clips,
        "seconds": {"decode": decode_seconds, "model": model_seconds},
    }
    if cam is not None:
        start = time.perf_counter()
        maps = np.asarray(cam_maps_model(model)(inputs[RGB_CLIP], training=False))[0]
        best = predictions[0]
        write_png(cam, cam_grid(display, maps, f"{best['class']} ({best['probability']:.2f})"))
        report["seconds"]["cam"] = time.perf_counter() - start
        report["cam"] = str(cam)
    return report


def format_report(report):
    width = max(len(prediction["class"]) for prediction in report["predictions"])
    seconds = report["seconds"]
    lines = [f"{report['video']}:"]
    lines += [f"  {p['class']:<{width}}  {p['probability']:.4f}" for p in report["predictions"]]
    lines.append(f"seconds: decode {seconds['decode']:.3f}, model {seconds['model']:.3f}"
                 + (f", CAM picture {seconds['cam']:.3f}" if "cam" in seconds else ""))
    if "cam" in report:
        lines.append(f"CAM attention picture: {report['cam']}")
    return "\n".join(lines)


def add_arguments(parser):
    parser.add_argument("video", help="video file or frame folder")
    parser.add_argument("--model", required=True, help="run folder (its model.keras) or a .keras model file")
    parser.add_argument("--top-k", type=positive_int, default=5, help="how many classes to list (default 5)")
    parser.add_argument("--cam", metavar="OUT.png", help="also write the frames with CAM attention overlaid")
    parser.add_argument("--flow-dir", help="optical-flow models: the video's flow_x folder (TV-L1 JPEGs)")
    parser.add_argument("--clips", type=positive_int, default=1, help="clips whose softmax is averaged: evenly "
                        "spaced flow windows or TV-L1 stacks (default 1)")


def predict_file(args):
    """The report of ``python -m kerasflow.predict`` for its parsed ``args``."""
    from kerasflow.model_io import find_model_file, load_model_file, read_model_info

    model_file = find_model_file(args.model)
    info = read_model_info(model_file)
    check_request(args.video, model_file, info, args.flow_dir, args.cam)
    model = load_model_file(model_file)
    return predict_video(model, info, Path(args.video), args.top_k, args.flow_dir, args.cam, args.clips)


main = report_command("predict", __doc__, add_arguments, predict_file, format_report)

if __name__ == "__main__":
    run_command(main)

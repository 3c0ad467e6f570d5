"""Prediction of one video: its top-k classes with their softmax probabilities, and the CAM picture.

``predict_video`` decodes the clip as the test set is decoded (uniform frames, centre crop) and runs a
predictor (``kerasflow.export.predictors``: a Keras model or an export) on it; ``softmax`` and ``top_k``
turn logits into the listed classes, for files and for live streams (``kerasflow.streaming``) alike.
"""

import os
import time

from kerasflow.data.inputs import RGB_CLIP, TVL1_STACK
from kerasflow.errors import UserError
from kerasflow.visualize import is_png


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
    """The refusals that need no model: a missing video or flow folder, or a CAM picture ``cam`` that
    cannot be written (``UserError``); a ``flow_dir`` missing for an optical-flow model, or given to
    another (``ValueError``)."""
    if not os.path.exists(video):
        raise UserError(f"video {video!r} does not exist; check the path")
    if cam is not None:
        folder = os.path.dirname(os.path.abspath(cam))
        if not os.path.isdir(folder) or os.path.isdir(cam):
            raise UserError(f"cannot write the CAM picture {cam!r}: give a file path in an existing folder")
        if not cam.lower().endswith(".png"):
            raise UserError(f"the CAM picture {cam!r} is a PNG: give a path ending in .png")
        if os.path.exists(cam) and not is_png(cam):
            raise UserError(f"{cam} exists and is not a PNG picture; it is not overwritten with the CAM picture: "
                            "give another path")
    takes_flow = TVL1_STACK in info.input_names
    if takes_flow and flow_dir is None:
        raise ValueError(f"`flow_dir` must be the video's TV-L1 flow_x folder: {model_path} is an optical-flow model "
                         "(python -m kerasflow.extract_flow makes the folder). Received: flow_dir=None")
    if not takes_flow and flow_dir is not None:
        raise ValueError(f"`flow_dir` is only read by optical-flow models; {model_path} takes RGB clips only. "
                         f"Received: flow_dir={flow_dir!r}")
    if takes_flow and not os.path.isdir(flow_dir):
        raise UserError(f"flow folder {flow_dir!r} does not exist; pass the video's flow_x folder")


def predict_video(predictor, video, top=5, flow_dir=None, cam=None, clips=1, average="logits"):
    """Predict one video with ``predictor`` (``kerasflow.export.predictors``: a Keras model or an export);
    with ``cam`` also write the attention picture there. Returns the report dict.

    ``clips`` > 1 averages that many evenly spaced flow windows (or TV-L1 stacks): their logits, or with
    ``average="softmax"`` their probabilities (``kerasflow.metrics.average_clip_scores``)."""
    import numpy as np

    from kerasflow.backend import run_model
    from kerasflow.data.feeds import test_clips, video_inputs
    from kerasflow.data.video import BadVideo
    from kerasflow.metrics import average_clip_scores
    from kerasflow.models import cam_maps_model
    from kerasflow.models.common import streams_of
    from kerasflow.visualize import cam_grid, write_png

    info, model = predictor.info, predictor.keras_model
    if cam is not None and (model is None or "rgb_stream" not in streams_of(model)):
        raise UserError("a CAM picture needs a Keras model with an RGB stream (the CAM comes from EgoRCNN's RGB "
                        f"stream); this {info.kind} {predictor.format} model of stage {info.stage} has none")
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
        report["note"] = (f"{video} has {clips} distinct clips for this model: averaged those {clips}, not the "
                          f"{requested} asked for")
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

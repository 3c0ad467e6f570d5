"""Time the paper's models (forward pass, random weights) and, optionally, TV-L1 flow extraction.

    python -m kerasflow.benchmark [--models rgb,representation_flow,two_stream,optical_flow,two_stream_optical_flow]
                                  [--backbone resnet34] [--frame-size 224] [--rgb-frames 25] [--flow-frames 16]
                                  [--flow-stack 5] [--classes 61] [--batch 1] [--repeats 5] [--warmup 2]
                                  [--mixed-precision] [--tvl1-video PATH | --tvl1-synthetic] [--tvl1-size S]
                                  [--json OUT.json]

(``python tools/benchmark.py`` is the same command.)

Each model is built as a recipe of that ``model.kind`` builds it (``build_stage_models``; the model
of the last stage, e.g. the joint model of ``two_stream``) with random weights, fed a random batch of
its input shape, and called through ``tf.function`` (fixed shape, inference mode) on the first GPU if
there is one, else on the CPU. The first call (tracing and graph building included) is timed on its
own; after ``--warmup`` more calls, ``--repeats`` calls are timed and their median, divided by the
batch, is the steady-state seconds per video. Decoding the video is not included.

``--tvl1-video`` / ``--tvl1-synthetic`` also time ``kerasflow.data.tvl1.extract_video`` (decode,
OpenCV TV-L1 on the CPU, JPEG writing, as ``python -m kerasflow.extract_flow`` does per video) on one video, so
the table shows what the paper's Tables 1/3/4 compare: a two-stream model with TV-L1 flow costs the
extraction plus the model; the representation-flow model costs the model alone.
"""

import argparse
import dataclasses
import functools
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from kerasflow.cli import positive_int, start_tensorflow_quietly  # noqa: E402
from kerasflow.errors import UserError, cli_entry, run_command  # noqa: E402
from kerasflow.atomic import write_json  # noqa: E402
from kerasflow.backbones.presets import preset_names  # noqa: E402
from kerasflow.config.schema import DataConfig, ModelConfig  # noqa: E402
from kerasflow.config.validation import Checker, build  # noqa: E402
from kerasflow.models.kinds import get_kind, kind_names  # noqa: E402

DEFAULT_MODELS = kind_names()
SYNTHETIC_CLIP = {"frames": 64, "width": 320, "height": 240}


def _data_default(name):
    return {field.name: field.default for field in dataclasses.fields(DataConfig)}[name]


def _model_list(text):
    kinds = [kind.strip() for kind in text.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in kind_names()]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"{text!r}: use a comma-separated list of {', '.join(kind_names())}")
    return list(dict.fromkeys(kinds))


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m kerasflow.benchmark",
        description="Seconds per video of the paper's models (forward pass, random weights) and of "
        "TV-L1 flow extraction.",
    )
    parser.add_argument("--models", type=_model_list, default=list(DEFAULT_MODELS), metavar="KIND,...",
                        help=f"model kinds to time, comma-separated (default: {','.join(DEFAULT_MODELS)})")
    parser.add_argument("--backbone", choices=preset_names(), default="resnet34")
    parser.add_argument("--frame-size", type=positive_int, default=_data_default("frame_size"), metavar="S",
                        help="frames are S x S pixels (default: %(default)s)")
    parser.add_argument("--rgb-frames", type=positive_int, default=_data_default("rgb_frames"), metavar="T",
                        help="frames per clip of the RGB stream (default: %(default)s)")
    parser.add_argument("--flow-frames", type=positive_int, default=_data_default("flow_frames"), metavar="T",
                        help="frames per clip of the representation-flow stream (default: %(default)s)")
    parser.add_argument("--flow-stack", type=positive_int, default=_data_default("flow_stack"), metavar="K",
                        help="TV-L1 flow frames stacked for the optical-flow stream (default: %(default)s)")
    parser.add_argument("--classes", type=positive_int, default=61,
                        help="classifier outputs (default: %(default)s, GTEA 61)")
    parser.add_argument("--batch", type=positive_int, default=1, help="videos per call (default: %(default)s)")
    parser.add_argument("--repeats", type=positive_int, default=5,
                        help="timed calls per model; the median is reported (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed calls after the first call (default: %(default)s)")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="build the models under the mixed_float16 policy (for GPUs)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and inputs (default: %(default)s)")
    tvl1 = parser.add_mutually_exclusive_group()
    tvl1.add_argument("--tvl1-video", metavar="PATH",
                      help="also time TV-L1 extraction of this video file or frame folder")
    tvl1.add_argument("--tvl1-synthetic", action="store_true",
                      help="also time TV-L1 extraction of a synthetic {frames}-frame {width}x{height} "
                      "clip".format(**SYNTHETIC_CLIP))
    parser.add_argument("--tvl1-size", type=positive_int, default=None, metavar="SHORTER_SIDE",
                        help="resize frames before TV-L1 so the shorter side has this many pixels "
                        "(default: keep, as extract_flow.py)")
    parser.add_argument("--json", metavar="OUT.json", help="also write the results as JSON")
    return parser


def check_arguments(args):
    """Raise ``UserError`` for settings the models cannot be built with."""
    if args.frame_size < 32:
        raise UserError(f"--frame-size {args.frame_size} is too small; use 32 or more")
    if args.warmup < 0:
        raise UserError(f"--warmup {args.warmup} is negative; use 0 or more")
    flow_layers = ModelConfig(kind="representation_flow").flow.num_layers
    if any(get_kind(kind).flow == "representation" for kind in args.models):
        if args.flow_frames <= flow_layers:
            raise UserError(f"--flow-frames {args.flow_frames} leaves no time step after {flow_layers} "
                            f"representation-flow layers; use {flow_layers + 1} or more")
    if args.tvl1_video and not Path(args.tvl1_video).exists():
        raise UserError(f"--tvl1-video {args.tvl1_video} does not exist; pass a video file or frame folder")


def build_benchmark_model(kind, backbone, frame_size, rgb_frames, flow_frames, flow_stack, classes):
    """The model a recipe of ``kind`` ends with (random weights, the recipe's other model defaults)."""
    model_cfg = build(ModelConfig, {"kind": kind, "backbone": backbone}, "model", Checker("benchmark"))
    data_cfg = argparse.Namespace(frame_size=frame_size, rgb_frames=rgb_frames, flow_frames=flow_frames,
                                  flow_stack=flow_stack)
    return get_kind(kind).build_models(model_cfg, data_cfg, classes)[get_kind(kind).final_model]


def compute_device():
    """Name of the device the models run on: the first logical GPU, else the first CPU."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return (gpus or tf.config.list_logical_devices("CPU"))[0].name


def random_inputs(model, batch, seed):
    """One random batch of raw uint8 frames per model input, ``{input name: array (batch, *shape)}``."""
    rng = np.random.default_rng(seed)
    return {tensor.name: rng.integers(0, 256, (batch, *tensor.shape[1:]), dtype=np.uint8) for tensor in model.inputs}


def time_model(model, inputs, batch, repeats, warmup, device, progress_label=None):
    """Time ``model`` on ``inputs`` (a dict by input name) with a ``tf.function`` call on ``device``.

    Returns ``first_call_s`` (seconds of the first call, tracing included), ``seconds_per_video``
    (each timed call / batch), ``median_s_per_video`` and ``min_s_per_video`` (the fastest call: the
    better estimate when other processes share the cores). Every call waits for its result on the
    host, so GPU work is finished when the clock stops.
    """
    import tensorflow as tf
    from tqdm import tqdm

    with tf.device(device):
        placed = {name: tf.identity(tf.constant(value)) for name, value in inputs.items()}
        # A partial, not a closure: tf.function counts traces per closure code, so a new closure per
        # model would warn about retracing after a few models.
        forward = tf.function(functools.partial(model, training=False))

        def call():
            start = time.perf_counter()
            np.asarray(forward(placed))
            return time.perf_counter() - start

        with tqdm(total=1 + warmup + repeats, desc=progress_label, unit="call", leave=False) as progress:
            first = call()
            progress.update()
            for _ in range(warmup):
                call()
                progress.update()
            seconds = []
            for _ in range(repeats):
                seconds.append(call() / batch)
                progress.update()
    return {"first_call_s": first, "seconds_per_video": seconds, "median_s_per_video": statistics.median(seconds),
            "min_s_per_video": min(seconds)}


def write_synthetic_clip(folder, seed=0, frames=SYNTHETIC_CLIP["frames"], width=SYNTHETIC_CLIP["width"],
                         height=SYNTHETIC_CLIP["height"]):
    """Write a ``width`` x ``height`` MJPG clip of a textured patch moving right; return its path."""
    from kerasflow.data.synthetic import DIRECTIONS, render_video, write_video

    video = render_video(np.random.default_rng(seed), DIRECTIONS[0][1], frames, max(width, height))
    path = Path(folder) / "synthetic_clip.avi"
    write_video(path, np.ascontiguousarray(video[:, :height, :width]))
    return path


def time_tvl1(source, size=None):
    """Seconds of ``extract_video`` (decode + TV-L1 + JPEG writing) on one source, into a temporary folder.

    OpenCV runs on one thread, as in each of ``kerasflow.extract_flow``'s worker processes, so the
    number is the per-video cost of an extraction run (which gains its speed from processes).
    """
    import cv2

    from kerasflow.data.tvl1 import extract_video
    from kerasflow.data.video import BadVideo

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    used_threads = cv2.getNumThreads()
    try:
        with tempfile.TemporaryDirectory(prefix="tvl1-benchmark-") as out_root:
            result = extract_video(source, out_root, "video", size=size)
    except BadVideo as error:
        raise UserError(f"{error.path}: {error.reason}; pass another video to --tvl1-video") from None
    finally:
        cv2.setNumThreads(threads)
    return {
        "source": str(source),
        "frame_width": int(result["width"]),
        "frame_height": int(result["height"]),
        "pairs": result["pairs"],
        "seconds": result["timing"],
        "seconds_per_pair": result["timing"] / result["pairs"],
        "opencv": cv2.__version__,
        "opencv_threads": used_threads,
    }


def cpu_model():
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment(device):
    """Where the numbers come from: devices, the one used, CPU, core count, versions and the 1-minute
    load average at the start (other processes on the same cores slow the CPU numbers down)."""
    import keras
    import tensorflow as tf

    described = device
    if "GPU" in device:
        gpu = tf.config.list_physical_devices("GPU")[0]
        described = f"{device} ({tf.config.experimental.get_device_details(gpu).get('device_name', 'GPU')})"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "device": described,
        "logical_devices": [logical.name for logical in tf.config.list_logical_devices()],
        "cpu": cpu_model(),
        "cpu_cores": cores,
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
    }


def totals_with_tvl1(models, tvl1):
    """``two-stream (optical flow) = TV-L1 seconds + model seconds`` for each optical-flow model timed."""
    if tvl1 is None:
        return []
    return [
        {"model": f"{entry['model']} + TV-L1", "seconds_per_video": tvl1["seconds"] + entry["median_s_per_video"]}
        for entry in models
        if get_kind(entry["model"]).flow == "optical"
    ]


def format_table(report):
    """The report as a plain-text table with the device and CPU above it."""
    env, config = report["environment"], report["config"]
    lines = [
        f"device: {env['device']}  (logical devices: {', '.join(env['logical_devices'])})",
        f"cpu: {env['cpu']}, {env['cpu_cores']} cores, load average {env['load_average_1min']} at start; "
        f"TensorFlow {env['tensorflow']}, Keras {env['keras']}",
        f"backbone {config['backbone']}, {config['frame_size']} px, {config['rgb_frames']} RGB / "
        f"{config['flow_frames']} flow frames, flow stack {config['flow_stack']}, batch {config['batch']}, "
        f"{config['repeats']} timed calls after {config['warmup']} warm-up, "
        f"{'mixed_float16' if config['mixed_precision'] else 'float32'}",
        "",
        f"{'model':<34} {'params':>12} {'first call s':>13} {'median s/video':>15} {'min s/video':>12}",
    ]
    for entry in report["models"]:
        lines.append(f"{entry['model']:<34} {entry['params']:>12,} {entry['first_call_s']:>13.3f} "
                     f"{entry['median_s_per_video']:>15.4f} {entry['min_s_per_video']:>12.4f}")
    tvl1 = report["tvl1"]
    if tvl1 is not None:
        lines.append(f"{'TV-L1 extraction (CPU, OpenCV)':<34} {'-':>12} {'-':>13} {tvl1['seconds']:>15.4f}")
        for total in report["totals"]:
            lines.append(f"{total['model']:<34} {'-':>12} {'-':>13} {total['seconds_per_video']:>15.4f}")
        lines.append(f"TV-L1: {tvl1['pairs']} frame pairs of {tvl1['frame_width']}x{tvl1['frame_height']} "
                     f"({tvl1['seconds_per_pair']:.3f} s per pair), {tvl1['source']}")
    return "\n".join(lines)


def run_models(args, device):
    """Build and time each model of ``args.models`` in turn; a list of result dicts."""
    import keras

    results = []
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16" if args.mixed_precision else "float32")
    try:
        for kind in args.models:
            keras.utils.set_random_seed(args.seed)
            start = time.perf_counter()
            model = build_benchmark_model(kind, args.backbone, args.frame_size, args.rgb_frames,
                                          args.flow_frames, args.flow_stack, args.classes)
            build_s = time.perf_counter() - start
            inputs = random_inputs(model, args.batch, args.seed)
            timing = time_model(model, inputs, args.batch, args.repeats, args.warmup, device, progress_label=kind)
            results.append({
                "model": kind,
                "params": int(model.count_params()),
                "inputs": {name: list(value.shape) for name, value in inputs.items()},
                "build_s": build_s,
                **timing,
            })
            del model
            keras.backend.clear_session()
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    return results


def run_tvl1(args):
    """TV-L1 timing of ``--tvl1-video`` or of the synthetic clip, or None when neither was asked for."""
    if not (args.tvl1_video or args.tvl1_synthetic):
        return None
    print("timing TV-L1 extraction ...", file=sys.stderr, flush=True)
    if args.tvl1_video:
        return time_tvl1(Path(args.tvl1_video), args.tvl1_size)
    with tempfile.TemporaryDirectory(prefix="tvl1-clip-") as folder:
        result = time_tvl1(write_synthetic_clip(folder, args.seed), args.tvl1_size)
    return {**result, "source": "synthetic {frames}-frame {width}x{height} clip".format(**SYNTHETIC_CLIP)}


@cli_entry
def main(argv=None):
    args = build_parser().parse_args(argv)
    check_arguments(args)
    start_tensorflow_quietly()
    device = compute_device()
    report = {
        "config": {key: getattr(args, key) for key in (
            "models", "backbone", "frame_size", "rgb_frames", "flow_frames", "flow_stack", "classes", "batch",
            "repeats", "warmup", "mixed_precision", "seed")},
        "environment": environment(device),
    }
    # TV-L1 first, so a video that does not decode stops the run before the long model timings.
    report["tvl1"] = run_tvl1(args)
    report["models"] = run_models(args, device)
    report["totals"] = totals_with_tvl1(report["models"], report["tvl1"])
    print(format_table(report))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_json(args.json, report)
        print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    run_command(main)

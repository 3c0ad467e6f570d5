"""How fast the paper's models run on this machine, measured side by side in one process.

    python -m kerasflow.benchmark [--videos DIR [--max-videos N]] [--json OUT.json] [--quick] [--threads N]
                                  [--repeats R] [--tvl1-videos N] [--flow-batches 1,8] [--force]

(``python tools/benchmark.py`` is the same command.) Sections, each a markdown table:

1. end to end, per video (the paper's Tables 1/3/4): OpenCV DualTVL1 over every frame pair plus the
   optical-flow two-stream model, against the representation-flow two-stream model from the video
   file (decode, preprocess, both streams), at the paper's settings (25 RGB / 16 flow frames, 224
   crops, ResNet-34, 2 flow layers of 20 iterations), on ``--videos`` or on 90-frame 320x240 clips of
   1/f texture with camera and object motion that the benchmark writes (``kerasflow.benchmarks.clips``);
   TV-L1 over every frame pair, and over only the pairs 1 and 10 test stacks read (``read_pairs``);
2. the RepresentationFlow layer alone against OpenCV's TV-L1 at identical settings (one scale, one
   warp, 20 iterations; ``kerasflow.benchmarks.opencv_flow``) on 15 pairs of 224x224 and 112x112 grey
   frames and of 28x28 x 32-channel maps, after checking that both give the same flow; and (16 frames,
   32 channels, 28x28 and 14x14, batch 1 and 8), forward and forward+backward, against an independent
   PyTorch eager implementation (``kerasflow.benchmarks.torch_flow``), for information;
3. FLOPs of the two-stream inference (from its convolutions and matmuls) per second against a dense
   matmul's, and where the time goes (backbone, CAM, ConvLSTM, flow layers, decode);
4. clips per second of a training step of each stage, and of the training data pipeline against the
   model's, at the paper's and the demo's sizes;
5. SavedModel against TFLite latency of an exported two-stream model (demo sizes);
6. peak resident memory after inference and after the training steps;
7. ``runtime.jit_compile`` false and true (XLA) on the flow layer and the demo-size two-stream model,
   and what ``auto`` chooses here (``kerasflow.benchmarks.xla``).

It refuses to start (one line, exit 2) when the 1-minute load average is above 1 per core, as other
processes would be timed too; ``--force`` runs anyway, and the report says the load it ran under.

Everything runs on ``--threads`` threads (TensorFlow, OpenCV and PyTorch alike); times are medians of
``--repeats`` calls after one warm-up call. PyTorch is optional (``pip install -e ".[bench]"``); without
it the PyTorch columns are left out and a line says so. ``--quick`` runs every section at tiny sizes
(a check that it works, not a measurement).
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerasflow.atomic import write_json  # noqa: E402
from kerasflow.cli import positive_int, start_tensorflow_quietly  # noqa: E402
from kerasflow.errors import UserError, cli_entry, run_command  # noqa: E402

# What a run measures at: the paper's model sizes (a ``Sizes`` of ``kerasflow.benchmarks.sections``), the
# flow layer's shapes (batch, side) and (frames, channels, iterations), the videos it writes (frames,
# width, height) and how many, the training batches, the pipeline's timed batches and the matmul's side.
# OpenCV's shapes (pairs, side, channels) and iterations; the XLA section's flow-layer input and iterations.
FULL = {"sizes": "PAPER", "flow_shapes": [(1, 28), (1, 14), (8, 14), (8, 28)], "flow_layer": (16, 32, 20),
        "video": (90, 320, 240), "clips": 2, "train_batch": 1, "demo_batch": 8, "pipeline_batches": 8,
        "matmul": 2048, "opencv_shapes": [(15, 224, 1), (15, 112, 1), (15, 28, 32)], "opencv_iterations": 20,
        "xla_flow": ((1, 16, 14, 14, 32), 20)}
QUICK = {"sizes": "TINY", "flow_shapes": [(1, 8)], "flow_layer": (4, 4, 3), "video": (12, 64, 48), "clips": 2,
         "train_batch": 2, "demo_batch": 2, "pipeline_batches": 2, "matmul": 256,
         "opencv_shapes": [(2, 32, 1), (2, 8, 4)], "opencv_iterations": 3, "xla_flow": ((1, 4, 8, 8, 4), 3)}
READ_STACKS = (1, 10)  # test stacks whose frame pairs the read-pairs TV-L1 rows compute
DEMO_VIDEO = (16, 64, 64)  # frames, width, height of recipes/demo.yaml's synthetic videos
TARGETS = (  # (key, what, at least); the PyTorch rows of section 2 are information, not targets
    ("end_to_end_speedup", "two-stream end to end vs TV-L1 (all pairs) + optical-flow two-stream", 100.0),
    ("opencv_equal_settings_speedup", "flow layer vs OpenCV TV-L1 at identical settings (worst shape)", 4.0),
    ("fraction_of_matmul", "two-stream inference FLOP/s / dense matmul FLOP/s", 0.8),
    ("pipeline_vs_model_paper", "data pipeline / joint training step clips/s, paper sizes", 1.0),
    ("pipeline_vs_model_demo", "data pipeline / joint training step clips/s, demo sizes", 1.0),
    ("savedmodel_vs_tflite", "SavedModel latency / TFLite latency", 1.0),
)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m kerasflow.benchmark",
                                     description="Speed of the paper's models on this machine (see the module doc).")
    parser.add_argument("--videos", metavar="DIR", help="time the first --max-videos videos of DIR (default: write "
                        "natural-texture clips)")
    parser.add_argument("--max-videos", type=positive_int, default=2, metavar="N",
                        help="videos of --videos timed end to end (default: %(default)s)")
    parser.add_argument("--json", metavar="OUT.json", help="also write the results as JSON")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check that every section runs")
    parser.add_argument("--threads", type=positive_int, default=len(os.sched_getaffinity(0)), metavar="N",
                        help="threads of TensorFlow, OpenCV and PyTorch (default: the cores, %(default)s)")
    parser.add_argument("--repeats", type=positive_int, default=3, metavar="R",
                        help="timed calls per measurement, median reported (default: %(default)s)")
    parser.add_argument("--flow-batches", type=_batches, default=(1, 8), metavar="B,...",
                        help="batch sizes of the flow-layer comparison; batch 8 at 28x28 needs about 11 GB "
                        "(default: 1,8)")
    parser.add_argument("--tvl1-videos", type=positive_int, default=1, metavar="N",
                        help="videos TV-L1 runs on, about 70 s each at 320x240 (default: %(default)s)")
    parser.add_argument("--force", action="store_true",
                        help="run even when the load average is above 1 per core (the report says the load)")
    return parser


def check_idle(force):
    """Refuse (``UserError``) to measure while the 1-minute load average is above 1 per core, unless ``force``."""
    load, cores = os.getloadavg()[0], len(os.sched_getaffinity(0))
    if load > cores and not force:
        raise UserError(f"the load average is {load:.2f} on {cores} cores (above 1 per core): other processes would "
                        "be timed too; run on an idle machine, or pass --force to measure anyway")


def _batches(text):
    try:
        batches = tuple(int(part) for part in text.split(","))
    except ValueError:
        batches = ()
    if not batches or min(batches) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: use comma-separated positive batch sizes, e.g. 1,8")
    return batches


def find_videos(folder):
    """The video files of ``folder`` (sorted); ``UserError`` when it has none."""
    from kerasflow.data.video import is_video_file

    path = Path(folder)
    videos = sorted(p for p in path.iterdir() if is_video_file(p)) if path.is_dir() else []
    if not videos:
        raise UserError(f"--videos {folder} holds no video files; pass a folder of .avi/.mp4 videos")
    return videos


def environment(threads):
    """Where the numbers come from: CPU, threads, GPUs, the load at the start and the versions."""
    import cv2
    import keras
    import tensorflow as tf

    from kerasflow.benchmarks.sections import torch_or_none

    torch = torch_or_none()
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
               platform.processor())
    cores = len(os.sched_getaffinity(0))
    return {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "host": platform.node(), "cpu": cpu, "cores": cores,
            "threads": threads, "load_per_core": round(os.getloadavg()[0] / cores, 2),
            "tensorflow_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "gpus": [gpu.name for gpu in tf.config.list_logical_devices("GPU")],
            "load_average_1min": round(os.getloadavg()[0], 2), "tensorflow": tf.__version__,
            "keras": keras.__version__, "opencv": cv2.__version__, "torch": torch and torch.__version__,
            "python": platform.python_version()}


def targets(report):
    """``[{"target", "at_least", "measured", "met"}]`` of ``TARGETS`` (measured None when not measured)."""
    training = report["training"]
    measured = {
        "end_to_end_speedup": report["end_to_end"]["speedup"],
        "opencv_equal_settings_speedup": min(row["speedup"] for row in report["opencv_flow"]["rows"]),
        "fraction_of_matmul": report["flops"]["fraction_of_matmul"],
        "pipeline_vs_model_paper": report["pipeline"]["paper"]["clips_per_s"] / training["paper"]["joint"]["clips_per_s"],
        "pipeline_vs_model_demo": report["pipeline"]["demo"]["clips_per_s"] / training["demo"]["joint"]["clips_per_s"],
        "savedmodel_vs_tflite": report["export"]["saved_model"]["ms_per_clip"] / report["export"]["tflite"]["ms_per_clip"],
    }
    return [{"target": key, "what": what, "at_least": bound, "measured": measured[key],
             "met": None if measured[key] is None else measured[key] >= bound} for key, what, bound in TARGETS]


def run(args, videos, folder):
    """Every section, in order, on ``videos`` (None: clips written into ``folder``); the report dict."""
    from kerasflow.benchmarks import clips, sections
    from kerasflow.benchmarks.opencv_flow import opencv_flow
    from kerasflow.benchmarks.xla import xla
    from kerasflow.benchmarks.measure import peak_rss_mb, release_memory

    started = time.perf_counter()
    plan = QUICK if args.quick else FULL
    sizes = getattr(sections, plan["sizes"])
    demo = sections.TINY if args.quick else sections.DEMO
    if videos is None:
        frames, width, height = plan["video"]
        videos = clips.write_clips(folder, plan["clips"], frames, width, height)
    report = {"quick": args.quick, "sizes": {"paper": vars_of(sizes), "demo": vars_of(demo)}}
    step("end to end", started)
    report["end_to_end"], model, specs = sections.end_to_end(videos, sizes, args.repeats, args.tvl1_videos,
                                                             READ_STACKS)
    step("FLOPs and where the time goes", started)
    report["flops"] = sections.flops(model, specs, args.repeats, plan["matmul"], report["end_to_end"]["decode_s"])
    report["memory"] = {"inference_peak_rss_mib": peak_rss_mb()}
    del model
    step("training steps", started)
    paper_steps = sections.training_steps(sizes, plan["train_batch"], args.repeats)
    report["training"] = {"paper": paper_steps, "demo": {"joint": paper_steps["joint"]} if args.quick else
                          sections.training_steps(demo, plan["demo_batch"], args.repeats, stages=("joint",))}
    report["memory"]["training_peak_rss_mib"] = peak_rss_mb()
    release_memory()
    step("data pipeline", started)
    demo_videos = clips.write_clips(Path(folder) / "demo", 2, *DEMO_VIDEO)  # the demo dataset's video size
    report["pipeline"] = {"paper": sections.pipeline(videos, sizes, plan["train_batch"], plan["pipeline_batches"]),
                          "demo": sections.pipeline(demo_videos, demo, plan["demo_batch"], plan["pipeline_batches"])}
    step("flow layer vs OpenCV", started)
    report["opencv_flow"] = opencv_flow(plan["opencv_shapes"], plan["opencv_iterations"], args.repeats)
    step("flow layer vs PyTorch", started)
    shapes = [(batch, side) for batch, side in plan["flow_shapes"] if args.quick or batch in args.flow_batches]
    report["flow_layer"] = sections.flow_layer(shapes, *plan["flow_layer"], args.repeats)
    step("export", started)
    report["export"] = sections.export_latency(demo, folder)
    step("XLA", started)
    report["xla"] = xla(demo, plan["demo_batch"], *plan["xla_flow"], args.repeats)
    report["targets"] = targets(report)
    step("done", started)
    return report


def vars_of(sizes):
    """A ``Sizes`` as a JSON-ready dict (without its extra model keys)."""
    import dataclasses

    return {key: value for key, value in dataclasses.asdict(sizes).items() if key != "model"}


def step(name, started):
    """Log the section ``name`` starting now, with the seconds since ``started`` (``time.perf_counter``)."""
    print(f"benchmark: {time.perf_counter() - started:6.0f} s  {name}", file=sys.stderr, flush=True)


@cli_entry
def main(argv=None):
    args = build_parser().parse_args(argv)
    videos = find_videos(args.videos)[: args.max_videos] if args.videos else None  # a wrong folder first
    check_idle(args.force)
    start_tensorflow_quietly(initialize_devices=False)
    from kerasflow.benchmarks.measure import set_threads
    from kerasflow.benchmarks.report import markdown

    set_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="kerasflow-benchmark-") as folder:
        report = {"environment": environment(args.threads), **run(args, videos, folder)}
    print(markdown(report))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_json(args.json, report)
        print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    run_command(main)

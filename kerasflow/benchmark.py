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
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerasflow.atomic import write_json  # noqa: E402
from kerasflow.benchmarks.suite import busy_load, default_flow_batches, environment, run  # noqa: E402
from kerasflow.cli import positive_int, start_tensorflow_quietly  # noqa: E402
from kerasflow.errors import UserError, cli_entry, run_command  # noqa: E402


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
    parser.add_argument("--flow-batches", type=_batches, metavar="B,...",
                        help="batch sizes of the flow-layer comparison (default: 1,8, or 1 where less than "
                        "25.3 GB of memory is available: a run with batch 8 peaked at 23 GB)")
    parser.add_argument("--tvl1-videos", type=positive_int, default=1, metavar="N",
                        help="videos TV-L1 runs on, about 70 s each at 320x240 (default: %(default)s)")
    parser.add_argument("--force", action="store_true",
                        help="run even when the load average is above 1 per core (the report says the load)")
    return parser


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


@cli_entry
def main(argv=None):
    args = build_parser().parse_args(argv)
    videos = find_videos(args.videos)[: args.max_videos] if args.videos else None  # a wrong folder first
    busy = busy_load()
    if busy and not args.force:
        raise UserError(f"{busy}; run on an idle machine, or pass --force to measure anyway")
    start_tensorflow_quietly(initialize_devices=False)
    from kerasflow.benchmarks.measure import set_threads
    from kerasflow.benchmarks.report import markdown

    set_threads(args.threads)
    chosen = args.flow_batches is not None or args.quick  # --quick has one flow shape of its own
    flow_batches, left_out = (args.flow_batches or (1, 8), None) if chosen else default_flow_batches()
    if left_out:
        print(f"benchmark: {left_out}; pass --flow-batches 1,8 to time it anyway", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="kerasflow-benchmark-") as folder:
        measured = run(videos, folder, quick=args.quick, repeats=args.repeats, tvl1_videos=args.tvl1_videos,
                       flow_batches=flow_batches)
        report = {"environment": environment(args.threads), **measured}
    print(markdown(report))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_json(args.json, report)
        print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    run_command(main)

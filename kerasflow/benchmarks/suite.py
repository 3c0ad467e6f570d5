"""The benchmark's sections run in order on one machine, its plans (full and quick) and its targets.

``run`` measures every section of ``python -m kerasflow.benchmark`` (described there) and returns the
report dict; ``environment`` says where the numbers come from; ``busy_load`` says why a machine is too
busy to time.
"""

import os
import platform
import sys
import time
from pathlib import Path

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
# Peak RSS of a full run with the flow layer's batch 8 (2026-11-26; 6.9 GB without it), and the memory
# available that runs it: that peak and 10 % to spare.
FLOW_BATCH_8_PEAK = 23e9
FLOW_BATCH_8_MEMORY = 1.1 * FLOW_BATCH_8_PEAK
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


def busy_load():
    """Why this machine is too busy to time (its 1-minute load average is above 1 per core), or None."""
    load, cores = os.getloadavg()[0], len(os.sched_getaffinity(0))
    if load > cores:
        return f"the load average is {load:.2f} on {cores} cores (above 1 per core): other processes would be timed too"
    return None


def available_memory_bytes():
    """The memory the system can give a new process now (Linux' MemAvailable; elsewhere the free pages)."""
    try:
        with open("/proc/meminfo") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def default_flow_batches(available=None):
    """``(batches, why batch 8 was left out or None)``: the flow-layer comparison's batch sizes, 1 and 8
    where ``available`` bytes (now available, by default) hold the full run's peak, else 1 only."""
    available = available_memory_bytes() if available is None else available
    if available >= FLOW_BATCH_8_MEMORY:
        return (1, 8), None
    return (1,), (f"the flow layer's batch 8 is left out: a run with it peaked at {FLOW_BATCH_8_PEAK / 1e9:.0f} GB, "
                  f"it needs {FLOW_BATCH_8_MEMORY / 1e9:.1f} GB available and {available / 1e9:.1f} GB is")


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
        "pipeline_vs_model_paper": (report["pipeline"]["paper"]["clips_per_s"]
                                    / training["paper"]["joint"]["clips_per_s"]),
        "pipeline_vs_model_demo": report["pipeline"]["demo"]["clips_per_s"] / training["demo"]["joint"]["clips_per_s"],
        "savedmodel_vs_tflite": (report["export"]["saved_model"]["ms_per_clip"]
                                 / report["export"]["tflite"]["ms_per_clip"]),
    }
    return [{"target": key, "what": what, "at_least": bound, "measured": measured[key],
             "met": None if measured[key] is None else measured[key] >= bound} for key, what, bound in TARGETS]


def run(videos, folder, *, quick=False, repeats=3, tvl1_videos=1, flow_batches=(1, 8)):
    """Every section, in order, on ``videos`` (None: clips written into ``folder``); the report dict.

    ``quick``: the tiny plan (``QUICK``) instead of the paper's sizes (``FULL``); ``repeats``: timed calls
    per measurement (the median is reported); ``tvl1_videos``: videos TV-L1 runs on; ``flow_batches``:
    the batch sizes of the full plan's flow-layer comparison."""
    from kerasflow.benchmarks import clips, sections
    from kerasflow.benchmarks.measure import peak_rss_mb, release_memory
    from kerasflow.benchmarks.opencv_flow import opencv_flow
    from kerasflow.benchmarks.xla import xla

    started = time.perf_counter()
    plan = QUICK if quick else FULL
    sizes = getattr(sections, plan["sizes"])
    demo = sections.TINY if quick else sections.DEMO
    if videos is None:
        frames, width, height = plan["video"]
        videos = clips.write_clips(folder, plan["clips"], frames, width, height)
    report = {"quick": quick, "sizes": {"paper": vars_of(sizes), "demo": vars_of(demo)}}
    step("end to end", started)
    report["end_to_end"], model, specs = sections.end_to_end(videos, sizes, repeats, tvl1_videos,
                                                             READ_STACKS)
    step("FLOPs and where the time goes", started)
    report["flops"] = sections.flops(model, specs, repeats, plan["matmul"], report["end_to_end"]["decode_s"])
    report["memory"] = {"inference_peak_rss_mib": peak_rss_mb()}
    del model
    step("training steps", started)
    paper_steps = sections.training_steps(sizes, plan["train_batch"], repeats)
    report["training"] = {"paper": paper_steps, "demo": {"joint": paper_steps["joint"]} if quick else
                          sections.training_steps(demo, plan["demo_batch"], repeats, stages=("joint",))}
    report["memory"]["training_peak_rss_mib"] = peak_rss_mb()
    release_memory()
    step("data pipeline", started)
    demo_videos = clips.write_clips(Path(folder) / "demo", 2, *DEMO_VIDEO)  # the demo dataset's video size
    report["pipeline"] = {"paper": sections.pipeline(videos, sizes, plan["train_batch"], plan["pipeline_batches"]),
                          "demo": sections.pipeline(demo_videos, demo, plan["demo_batch"], plan["pipeline_batches"])}
    step("flow layer vs OpenCV", started)
    report["opencv_flow"] = opencv_flow(plan["opencv_shapes"], plan["opencv_iterations"], repeats)
    step("flow layer vs PyTorch", started)
    shapes = [(batch, side) for batch, side in plan["flow_shapes"] if quick or batch in flow_batches]
    report["flow_layer"] = sections.flow_layer(shapes, *plan["flow_layer"], repeats)
    step("export", started)
    report["export"] = sections.export_latency(demo, folder)
    step("XLA", started)
    report["xla"] = xla(demo, plan["demo_batch"], *plan["xla_flow"], repeats)
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

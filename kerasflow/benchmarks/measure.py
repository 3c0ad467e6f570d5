"""Measuring helpers: median timing, thread settings, peak memory, dense matmul FLOP/s, FLOPs of a
traced model and a profile of where its time goes."""

import collections
import ctypes
import glob
import resource
import statistics
import tempfile
import time

import numpy as np

# Ops whose trace events enclose the events of the ops they run (counted through those).
ENCLOSING_OPS = ("While", "StatelessWhile", "PartitionedCall", "StatefulPartitionedCall", "If", "StatelessIf")
FLOP_OPS = ("Conv2D", "Conv3D", "DepthwiseConv2dNative", "MatMul", "BatchMatMulV2", "BatchMatMulV3")


def timed(function, repeats, warmup=1):
    """Call ``function()`` ``warmup`` times, then time ``repeats`` calls: ``{"median_s", "min_s", "runs_s"}``."""
    for _ in range(warmup):
        function()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        runs.append(time.perf_counter() - start)
    return {"median_s": statistics.median(runs), "min_s": min(runs), "runs_s": runs}


def set_threads(threads):
    """Run TensorFlow (intra- and inter-op), OpenCV and PyTorch (when installed) on ``threads`` threads.

    TensorFlow takes its thread counts only before its runtime starts; once started (e.g. in a test
    process) it keeps its own, which the report's environment shows."""
    import cv2
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass
    cv2.setNumThreads(threads)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


def release_memory():
    """Hand the C heap's free pages back to the OS (glibc's ``malloc_trim``; a no-op elsewhere), so that
    memory TensorFlow freed is not kept on top of what PyTorch or the next section allocates."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_rss_mb():
    """The process's peak resident memory so far, in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def matmul_flops_per_s(size, repeats):
    """Measured float32 FLOP/s of a dense ``size x size`` matmul in a ``tf.function`` (2 size^3 per call)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a, b = (tf.constant(rng.random((size, size), np.float32)) for _ in range(2))
    product = tf.function(lambda: tf.matmul(a, b))
    timing = timed(lambda: product().numpy(), repeats, warmup=2)
    return 2.0 * size**3 / timing["median_s"]


def _op_flops(op):
    """Multiply-adds x 2 of one convolution or matmul op of a traced graph (0 for any other op)."""
    if op.type not in FLOP_OPS:
        return 0
    out = op.outputs[0].shape
    if not out.is_fully_defined():
        return 0
    size = int(np.prod(out.as_list()))
    if op.type in ("Conv2D", "Conv3D"):
        kernel = op.inputs[1].shape.as_list()
        return 2 * size * int(np.prod(kernel[:-1]))
    if op.type == "DepthwiseConv2dNative":
        kh, kw = op.inputs[1].shape.as_list()[:2]
        return 2 * size * kh * kw
    transposed = op.get_attr("transpose_a" if op.type == "MatMul" else "adj_x")
    return 2 * size * op.inputs[0].shape.as_list()[-2 if transposed else -1]


def graph_flops(concrete_function, groups):
    """FLOPs of one call of ``concrete_function``, ``{group: flops}``, from its convolutions and matmuls.

    ``groups`` maps a group name to the name fragments of its ops (the first match wins; the rest is
    ``"other"``). Only the function's own graph is read: a loop's body would be missed, and kerasflow's
    models have none (their ConvLSTM is unrolled).
    """
    totals = collections.Counter()
    for op in concrete_function.graph.get_operations():
        flops = _op_flops(op)
        if flops:
            totals[scope_group(op.name, groups)] += flops
    return dict(totals)


def scope_group(name, groups):
    """The first group of ``groups`` (``{group: name fragments}``) whose fragment is in ``name``, else "other"."""
    return next((group for group, parts in groups.items() if any(part in name for part in parts)), "other")


def profile_groups(function, groups, runs=2):
    """Seconds per call of the ops of ``function()`` by group (``scope_group`` of the op's node name),
    from the TensorFlow profiler's trace of the executor threads (ops that run in parallel add up)."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    function()
    with tempfile.TemporaryDirectory(prefix="kerasflow-profile-") as folder:
        tf.profiler.experimental.start(folder)
        for _ in range(runs):
            function()
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        with open(glob.glob(f"{folder}/**/*.xplane.pb", recursive=True)[0], "rb") as trace:
            space.ParseFromString(trace.read())
    totals = collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):  # the executor's threads, not the caller's
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                node, _, op_type = name.rpartition(":")
                if node and "::" not in name and op_type not in ENCLOSING_OPS:  # "A::B": the executor's own
                    totals[scope_group(node, groups)] += event.duration_ps * 1e-12 / runs
    return dict(totals)

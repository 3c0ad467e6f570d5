"""The sections of ``python -m kerasflow.benchmark``; each returns a JSON-ready dict.

``Sizes`` says what a section runs at; ``PAPER``/``DEMO``/``TINY`` are the paper's settings, the demo
recipe's and the tiny ones ``--quick`` uses.
"""

import dataclasses
import functools

import numpy as np

from kerasflow.benchmarks.measure import graph_flops, matmul_flops_per_s, profile_groups, release_memory, timed
from kerasflow.data.inputs import FLOW_CLIP, RGB_CLIP, TVL1_STACK, InputSpec

# Model parts by the name scopes of their ops (first match wins); what is left is "other".
PARTS = {"flow layers": ("flow_block",), "CAM": ("cam_attention",), "ConvLSTM": ("convlstm",),
         "backbone": ("stem", "layer1", "layer2", "layer3", "layer4", "frames")}
TORCH_MISSING = 'PyTorch comparisons skipped: PyTorch is not installed (pip install -e ".[bench]")'


@dataclasses.dataclass(frozen=True)
class Sizes:
    """One set of model and data sizes (``model`` holds extra ``model:`` recipe keys)."""

    backbone: str
    frame_size: int
    rgb_frames: int
    flow_frames: int
    flow_stack: int = 5
    classes: int = 51
    flow_stride: int = 2
    model: tuple = ()

    def inputs(self, names):
        specs = {RGB_CLIP: InputSpec(RGB_CLIP, self.rgb_frames, self.frame_size),
                 FLOW_CLIP: InputSpec(FLOW_CLIP, self.flow_frames, self.frame_size, "contiguous", self.flow_stride),
                 TVL1_STACK: InputSpec(TVL1_STACK, self.flow_stack, self.frame_size)}
        return [specs[name] for name in names]


PAPER = Sizes("resnet34", 224, 25, 16)
DEMO = Sizes("tiny", 64, 8, 8, classes=4, model=(("flow", {"num_layers": 2, "iterations": 10, "position": 1,
                                                            "bottleneck": 8}), ("convlstm_units", 32)))
# 64 px: the tiny ResNet (stride 32) leaves a 2 x 2 CAM map; at 32 px the attention is over one position
TINY = Sizes("tiny", 64, 4, 4, flow_stack=2, classes=3, flow_stride=1,
             model=(("flow", {"num_layers": 2, "iterations": 3}), ("convlstm_units", 8), ("num_head_classes", 8)))


def build_models(kind, sizes):
    """``{model key: keras.Model}`` of ``kind`` at ``sizes`` (random weights, the recipe defaults otherwise)."""
    import argparse

    from kerasflow.config.schema import ModelConfig
    from kerasflow.config.validation import Checker, build
    from kerasflow.models.kinds import get_kind

    values = {"kind": kind, "backbone": sizes.backbone, "weights": None, **dict(sizes.model)}
    model_cfg = build(ModelConfig, values, "model", Checker("benchmark"))
    data_cfg = argparse.Namespace(frame_size=sizes.frame_size, rgb_frames=sizes.rgb_frames,
                                  flow_frames=sizes.flow_frames, flow_stack=sizes.flow_stack)
    return get_kind(kind).build_models(model_cfg, data_cfg, sizes.classes)


def random_batch(specs, batch, seed=0):
    """``{input name: random uint8 (batch, *shape)}`` for ``InputSpec``s ``specs``."""
    rng = np.random.default_rng(seed)
    return {spec.name: rng.integers(0, 256, (batch, *spec.shape), dtype=np.uint8) for spec in specs}


def inference_function(model):
    """``inputs -> logits`` (NumPy) of ``model`` in inference mode, through one ``tf.function``."""
    import tensorflow as tf

    forward = tf.function(functools.partial(model, training=False))
    return lambda inputs: np.asarray(forward(inputs))


def tvl1_seconds(video, only=None):
    """Seconds to decode ``video`` and run OpenCV's DualTVL1 on every pair of consecutive frames (or on the
    pair indices ``only``), and the number of pairs it ran on."""
    import time

    from kerasflow.data.tvl1 import iter_grey_frames, iter_tvl1_flow

    start = time.perf_counter()
    pairs = sum(1 for _ in iter_tvl1_flow(iter_grey_frames(str(video)), only))
    return time.perf_counter() - start, pairs


def read_pairs(pairs, stack, stacks):
    """The frame pairs an optical-flow model reads from a video of ``pairs`` TV-L1 pairs: the ``stack``
    pairs of each of its ``stacks`` test stacks (``flow_files.stack_starts``, as evaluate reads them)."""
    from kerasflow.data.flow_files import stack_starts

    return {start + offset for start in stack_starts(pairs, stack, stacks) for offset in range(stack)}


def end_to_end(videos, sizes, repeats, tvl1_videos, read_stacks=(1, 10)):
    """Tables 1, 3 and 4: TV-L1 + the optical-flow two-stream model against the representation-flow
    two-stream model from the video file (decode, preprocess, both streams), per video.

    Returns ``(result, model, specs)``: the representation-flow two-stream model and its inputs are
    reused by ``flops``. TV-L1 runs on the first ``tvl1_videos`` videos only (about a minute each),
    over every frame pair (the paper's framing: flow extracted for the whole dataset) and, for each
    count of ``read_stacks``, over only the pairs that many test stacks read (``read_pairs``).
    """
    from kerasflow.data.feeds import video_inputs

    flow_model = build_models("two_stream", sizes)["joint"]
    flow_specs = sizes.inputs((RGB_CLIP, FLOW_CLIP))
    flow_forward = inference_function(flow_model)
    decode = [timed(lambda v=v: video_inputs(v, flow_specs), repeats)["median_s"] for v in videos]
    whole = [timed(lambda v=v: flow_forward(video_inputs(v, flow_specs)[0]), repeats)["median_s"] for v in videos]
    optical = build_models("two_stream_optical_flow", sizes)["joint"]
    optical_specs = sizes.inputs((RGB_CLIP, TVL1_STACK))
    optical_forward = inference_function(optical)
    optical_model = timed(lambda: optical_forward(random_batch(optical_specs, 1)), repeats)["median_s"]
    tvl1 = [tvl1_seconds(video) for video in videos[:tvl1_videos]]
    tvl1_s = float(np.median([seconds for seconds, _ in tvl1]))
    result = {
        "videos": [str(video) for video in videos],
        "tvl1_videos": len(tvl1),
        "tvl1_pairs_per_video": tvl1[0][1],
        "tvl1_s_per_video": tvl1_s,
        "optical_flow_model_s": optical_model,
        "tvl1_two_stream_s": tvl1_s + optical_model,
        "decode_s": float(np.median(decode)),
        "representation_flow_two_stream_s": float(np.median(whole)),
    }
    result["speedup"] = result["tvl1_two_stream_s"] / result["representation_flow_two_stream_s"]
    result.update(_bfloat16_end_to_end(flow_model, flow_forward, sizes, videos, flow_specs, repeats))
    result["speedup_bfloat16"] = result["tvl1_two_stream_s"] / result["representation_flow_two_stream_bfloat16_s"]
    models = {"optical": (optical_forward, optical_specs), "representation": (flow_forward, flow_specs)}
    result["read_pairs"] = [_read_pairs_row(videos, tvl1, sizes, stacks, models, repeats, result)
                            for stacks in read_stacks]
    return result, flow_model, flow_specs


def _read_pairs_row(videos, tvl1, sizes, stacks, models, repeats, result):
    """TV-L1 over only the pairs ``stacks`` test stacks read, plus the optical-flow model on those stacks,
    against the representation-flow model on as many test clips (one clip: ``result``'s rows)."""
    from kerasflow.data.feeds import video_inputs

    optical_forward, optical_specs = models["optical"]
    flow_forward, flow_specs = models["representation"]
    runs = [tvl1_seconds(video, read_pairs(pairs, sizes.flow_stack, stacks))
            for video, (_, pairs) in zip(videos, tvl1)]
    if stacks == 1:
        optical_s, representation_s = result["optical_flow_model_s"], result["representation_flow_two_stream_s"]
    else:
        optical_s = timed(lambda: optical_forward(random_batch(optical_specs, stacks)), repeats)["median_s"]

        def clips_of(video):
            inputs = video_inputs(video, flow_specs, clips=stacks)[0]
            return {name: value.reshape(-1, *value.shape[2:]) for name, value in inputs.items()}

        representation_s = float(np.median([timed(lambda v=v: flow_forward(clips_of(v)), repeats)["median_s"]
                                            for v in videos]))
    row = {"stacks": stacks, "pairs": runs[0][1], "tvl1_read_pairs_s_per_video": float(np.median([s for s, _ in runs])),
           "optical_flow_model_s": optical_s, "representation_flow_two_stream_s": representation_s}
    row["tvl1_read_pairs_two_stream_s"] = row["tvl1_read_pairs_s_per_video"] + optical_s
    row["speedup_read_pairs"] = row["tvl1_read_pairs_two_stream_s"] / representation_s
    return row


def _bfloat16_end_to_end(model, forward, sizes, videos, specs, repeats):
    """The same two-stream model (same weights) under ``mixed_bfloat16`` (``runtime.mixed_precision:
    bfloat16``): seconds per video end to end, and its largest softmax difference from float32's."""
    import keras

    from kerasflow.data.feeds import video_inputs

    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        twin = build_models("two_stream", sizes)["joint"]
    finally:
        keras.mixed_precision.set_global_policy(policy)
    twin.set_weights(model.get_weights())
    twin_forward = inference_function(twin)
    seconds = [timed(lambda v=v: twin_forward(video_inputs(v, specs)[0]), repeats)["median_s"] for v in videos]
    inputs = video_inputs(videos[0], specs)[0]
    probs = [keras.ops.convert_to_numpy(keras.ops.softmax(f(inputs).astype("float32")))
             for f in (forward, twin_forward)]
    return {"representation_flow_two_stream_bfloat16_s": float(np.median(seconds)),
            "bfloat16_max_prob_difference": float(np.abs(probs[0] - probs[1]).max())}


def flops(model, specs, repeats, matmul_size, decode_s):
    """Achieved FLOP/s of the model's inference against dense matmul FLOP/s, and where its time goes."""
    import tensorflow as tf

    batch = random_batch(specs, 1)
    forward = tf.function(functools.partial(model, training=False))
    concrete = forward.get_concrete_function({name: tf.TensorSpec(value.shape, tf.uint8)
                                              for name, value in batch.items()})
    counted = graph_flops(concrete, PARTS)
    seconds = timed(lambda: np.asarray(forward(batch)), repeats)["median_s"]
    op_seconds = profile_groups(lambda: np.asarray(forward(batch)), PARTS)
    matmul = matmul_flops_per_s(matmul_size, repeats)
    total = sum(counted.values())
    parts = {part: {"flops": counted.get(part, 0), "op_s": op_seconds.get(part, 0.0)}
             for part in (*PARTS, "other")}
    parts["decode"] = {"flops": 0, "op_s": decode_s}
    return {"flops_per_video": total, "model_s": seconds, "achieved_flops_per_s": total / seconds,
            "matmul_flops_per_s": matmul, "matmul_size": matmul_size,
            "fraction_of_matmul": total / seconds / matmul, "parts": parts}


def torch_or_none():
    """The ``torch`` module, or None when PyTorch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def flow_layer(shapes, frames, channels, iterations, repeats):
    """The RepresentationFlow layer forward and forward+backward against the PyTorch eager implementation
    (``kerasflow.benchmarks.torch_flow``), same input, parity checked first. ``shapes``: ``(batch, side)``.

    Forward+backward keeps every iteration's maps for the gradient: about 1 GB per clip at 28x28 in
    either framework (8 GB for TensorFlow, 11 GB for PyTorch at batch 8), freed between measurements."""
    import tensorflow as tf

    from kerasflow.layers import RepresentationFlow

    torch = torch_or_none()
    rows = []
    for batch, side in shapes:
        rng = np.random.default_rng(0)
        x = rng.random((batch, frames, side, side, channels), np.float32)
        target = rng.random((batch, frames - 1, side, side, 2 * channels), np.float32)
        layer = RepresentationFlow(n_iter=iterations)
        layer.build(x.shape)
        x_tf, target_tf = tf.constant(x), tf.constant(target)
        forward = tf.function(layer, autograph=False)

        forward_backward = tf.function(functools.partial(_flow_gradients, layer), autograph=False)
        row = {"batch": batch, "side": side, "frames": frames, "channels": channels, "iterations": iterations,
               "tf_forward_s": timed(lambda: forward(x_tf).numpy(), repeats)["median_s"],
               "tf_forward_backward_s": timed(lambda: [g.numpy() for g in forward_backward(x_tf, target_tf)],
                                              repeats)["median_s"]}
        output = forward(x_tf).numpy()
        layer = forward = forward_backward = None  # free the graphs and their tensors before PyTorch runs
        release_memory()
        if torch is not None:
            row = _torch_flow_row(torch, row, x, target, repeats, output)
            release_memory()
        rows.append(row)
    return {"rows": rows, "torch": None if torch is None else torch.__version__}


def _flow_gradients(layer, x, target):
    """Gradients of ``sum(layer(x) * target)`` with respect to ``x`` and the layer's trainable weights."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x) * target)
    return tape.gradient(loss, [x, *layer.trainable_weights])


def _torch_flow_row(torch, row, x, target, repeats, tf_output):
    """``row`` with the PyTorch timings and the speedups (PyTorch seconds / TensorFlow seconds)."""
    from kerasflow.benchmarks.torch_flow import TorchFlow

    module = TorchFlow(x.shape[-1], n_iter=row["iterations"])
    x_pt = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1)))
    target_pt = torch.from_numpy(np.ascontiguousarray(np.moveaxis(target, -1, 1)))
    with torch.no_grad():
        reference = np.moveaxis(module(x_pt).numpy(), 1, -1)
    difference = float(np.abs(tf_output - reference).max() / np.abs(reference).max())
    if not difference <= 1e-4:
        raise AssertionError(f"the PyTorch flow layer differs from RepresentationFlow by {difference:.1e}")

    def forward():
        with torch.no_grad():
            module(x_pt)

    def forward_backward():
        module.zero_grad()
        inputs = x_pt.clone().requires_grad_(True)
        (module(inputs) * target_pt).sum().backward()

    row = {**row, "parity_relative_difference": difference,
           "torch_forward_s": timed(forward, repeats)["median_s"],
           "torch_forward_backward_s": timed(forward_backward, repeats)["median_s"]}
    row["forward_speedup"] = row["torch_forward_s"] / row["tf_forward_s"]
    row["forward_backward_speedup"] = row["torch_forward_backward_s"] / row["tf_forward_backward_s"]
    return row


def training_steps(sizes, batch, repeats, stages=("rgb_stage1", "rgb_stage2", "flow", "joint")):
    """Clips per second of one training step of each stage of the two-stream model (SGD, random clips)."""
    import keras

    from kerasflow.models.kinds import STAGE_MODEL, get_kind
    from kerasflow.models.stage_rules import set_trainable_for_stage

    models = build_models("two_stream", sizes)
    kind = get_kind("two_stream")
    result = {}
    for stage in stages:
        model = models[STAGE_MODEL[stage]]
        set_trainable_for_stage(model, stage)
        model.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        inputs = random_batch(sizes.inputs(kind.stage_inputs(stage)), batch)
        labels = np.zeros((batch,), np.int32)
        seconds = timed(lambda: model.train_on_batch(inputs, labels), repeats)["median_s"]
        result[stage] = {"batch": batch, "step_s": seconds, "clips_per_s": batch / seconds}
    return result


def pipeline(videos, sizes, batch, batches):
    """Clips per second of the training pipeline (``make_dataset``: decode, sample, crop, flip) feeding
    the joint model's inputs from the benchmark's videos."""
    import time

    from kerasflow.data.indexes import VideoIndex, VideoItem
    from kerasflow.data.pipeline import make_dataset

    items = [VideoItem(str(videos[i % len(videos)]), i % 2) for i in range(batch * (batches + 1))]
    index = VideoIndex(items, ["a", "b"], "benchmark", "train")
    dataset = iter(make_dataset(index, sizes.inputs((RGB_CLIP, FLOW_CLIP)), batch_size=batch, training=True,
                                on_bad_video="fail"))
    next(dataset)
    start = time.perf_counter()
    for _ in range(batches):
        next(dataset)
    seconds = time.perf_counter() - start
    return {"batch": batch, "batches": batches, "clips_per_s": batch * batches / seconds}


def export_latency(sizes, folder, clips=4):
    """Median latency of the SavedModel and the TFLite export of a two-stream model at ``sizes`` (ms/clip)."""
    from kerasflow.export.writer import export
    from kerasflow.model_io import ModelInfo

    model = build_models("two_stream", sizes)["joint"]
    specs = sizes.inputs((RGB_CLIP, FLOW_CLIP))
    info = ModelInfo("two_stream", "joint", "joint", tuple(specs), tuple(f"class_{i}" for i in range(sizes.classes)))
    batch = random_batch(specs, clips)
    result = {}
    for export_format in ("saved_model", "tflite"):
        report = export(model, info, export_format, f"{folder}/{export_format}", clips=batch, source="benchmark",
                        frame_size=sizes.frame_size)
        result[export_format] = {"ms_per_clip": report.milliseconds_per_clip,
                                 "keras_ms_per_clip": report.keras_milliseconds_per_clip, "bytes": report.bytes}
    return result

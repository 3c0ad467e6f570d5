"""``runtime.jit_compile`` on this machine: each setting timed on the same small models.

``auto`` is whatever ``kerasflow.training.runtime_setup.use_xla`` chooses here (on TensorFlow: XLA
only with a GPU or TPU); true and false are timed side by side: the flow layer alone, the two-stream
model's inference and a joint training step, each after a warm-up call that includes XLA's
compilation.
"""

import functools

import numpy as np

from kerasflow.benchmarks.measure import timed


def _flow_layer_row(shape, iterations, repeats):
    import tensorflow as tf

    from kerasflow.layers import RepresentationFlow

    x = tf.constant(np.random.default_rng(0).random(shape, np.float32))
    layer = RepresentationFlow(n_iter=iterations)
    layer.build(x.shape)
    return {jit: timed(lambda f=tf.function(layer, jit_compile=jit): f(x).numpy(), repeats)["median_s"]
            for jit in (False, True)}


def _model_rows(sizes, batch, repeats):
    import keras
    import tensorflow as tf

    from kerasflow.benchmarks.sections import build_models, random_batch
    from kerasflow.data.inputs import FLOW_CLIP, RGB_CLIP

    model = build_models("two_stream", sizes)["joint"]
    inputs = random_batch(sizes.inputs((RGB_CLIP, FLOW_CLIP)), batch)
    labels = np.zeros((batch,), np.int32)
    inference, training = {}, {}
    for jit in (False, True):
        forward = tf.function(functools.partial(model, training=False), jit_compile=jit)
        inference[jit] = timed(lambda f=forward: np.asarray(f(inputs)), repeats)["median_s"]
        model.compile(optimizer=keras.optimizers.SGD(1e-3), jit_compile=jit,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        training[jit] = timed(lambda: model.train_on_batch(inputs, labels), repeats)["median_s"]
    return inference, training


def xla(sizes, batch, flow_shape, iterations, repeats):
    """``{"auto_uses_xla", "devices", "rows"}``: seconds with ``jit_compile`` false and true of the flow
    layer on ``flow_shape`` ``(B, T, H, W, C)`` at ``iterations``, and of the two-stream model at
    ``sizes`` (inference and a training step, batch ``batch``); ``xla_vs_plain`` > 1: XLA is slower."""
    import tensorflow as tf

    from kerasflow.training.runtime_setup import use_xla

    inference, training = _model_rows(sizes, batch, repeats)
    measured = [(f"RepresentationFlow forward, {flow_shape}, {iterations} iterations",
                 _flow_layer_row(flow_shape, iterations, repeats)),
                (f"two-stream inference ({sizes.backbone}, {sizes.frame_size} px, batch {batch})", inference),
                (f"two-stream joint training step ({sizes.backbone}, {sizes.frame_size} px, batch {batch})", training)]
    rows = [{"what": what, "false_s": seconds[False], "true_s": seconds[True],
             "xla_vs_plain": seconds[True] / seconds[False]} for what, seconds in measured]
    return {"auto_uses_xla": use_xla("auto"),
            "devices": [device.device_type for device in tf.config.list_logical_devices()], "rows": rows}

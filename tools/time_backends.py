"""Times on this process' Keras backend (``KERAS_BACKEND=jax python tools/time_backends.py``), as JSON:

- ``demo_flow`` / ``demo_joint``: the demo recipe's flow-stream and two-stream models as the recipe
  builds them (now 64 px, 8 frames, one flow layer of 10 iterations, batch 8): the first
  ``train_on_batch`` (on JAX the compile of the jitted step, on TensorFlow the trace) and the median
  of the next steps.
- ``flow_layer``: RepresentationFlow at the paper's shape (batch 1, 16 frames = 15 pairs, 28x28, 32
  channels, 20 iterations): forward (``predict_on_batch``) and forward+backward (``train_on_batch`` of
  a model that is the layer alone; its 9 parameters' update costs nothing beside), first call and median.

Each in wall-clock and CPU seconds of this process (``timed_calls``).

``--only demo_flow`` (repeatable) picks sections; ``--steps`` the steps timed after the first.
"""

import argparse
import json
import time

import keras
import numpy as np


def timed_calls(call, steps):
    """The first call of ``call()`` and the median of ``steps`` more, in wall-clock and in this process'
    CPU seconds (``first_s``, ``median_s``, ``first_cpu_s``, ``median_cpu_s``; on a busy machine the CPU
    seconds are the steadier measure)."""
    walls, cpus = [], []
    for _ in range(steps + 1):
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"first_s": round(walls[0], 3), "median_s": round(float(np.median(walls[1:])), 4),
            "first_cpu_s": round(cpus[0], 3), "median_cpu_s": round(float(np.median(cpus[1:])), 4)}


def demo_model(key, steps):
    from kerasflow.config import load_recipe
    from kerasflow.models.kinds import build_stage_models

    recipe = load_recipe("demo")
    model = build_stage_models(recipe.model, recipe.data, 4)[key]
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    batch = recipe.data.batch_size
    inputs = {t.name: rng.integers(0, 256, (batch, *t.shape[1:]), dtype=np.uint8) for t in model.inputs}
    labels = rng.integers(0, 4, batch)
    return {"train_step": timed_calls(lambda: model.train_on_batch(inputs, labels), steps),
            "predict": timed_calls(lambda: model.predict_on_batch(inputs), steps)}


def flow_layer(steps):
    from kerasflow.layers import RepresentationFlow

    rng = np.random.default_rng(0)
    x = rng.random((1, 16, 28, 28, 32), np.float32)
    target = rng.random((1, 15, 28, 28, 64), np.float32)
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, RepresentationFlow(n_iter=20)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    return {"forward": timed_calls(lambda: model.predict_on_batch(x), steps),
            "forward_backward": timed_calls(lambda: model.train_on_batch(x, target), steps)}


SECTIONS = {"demo_flow": lambda steps: demo_model("flow", steps),
            "demo_joint": lambda steps: demo_model("joint", steps),
            "flow_layer": flow_layer}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(SECTIONS))
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    result = {"backend": keras.backend.backend()}
    for name in args.only or SECTIONS:
        result[name] = SECTIONS[name](args.steps)
        print(json.dumps({name: result[name]}), flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

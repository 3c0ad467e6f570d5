"""``python tests/backend_gradients.py MODEL.keras INPUTS.npz OUT.npz``: on this process' Keras backend,
load the model and write its logits (inference mode) and the gradients of ``sum(logits * target)`` with
respect to each trainable variable (in ``model.trainable_variables`` order) for the inputs and target in
INPUTS.npz. tests/test_backends.py compares them across backends."""

import sys

import keras
import numpy as np


def logits_and_gradients(model, inputs, target):
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        def loss(trainable):
            logits, _ = model.stateless_call(trainable, [v.value for v in model.non_trainable_variables], inputs,
                                             training=False)
            return (logits * target).sum(), logits

        (_, logits), grads = jax.value_and_grad(loss, has_aux=True)([v.value for v in model.trainable_variables])
        return logits, grads
    if backend == "torch":
        logits = model(inputs, training=False)
        (logits * keras.ops.convert_to_tensor(target)).sum().backward()
        return logits.detach(), [variable.value.grad for variable in model.trainable_variables]
    import tensorflow as tf

    with tf.GradientTape() as tape:
        logits = model(inputs, training=False)
        loss = tf.reduce_sum(logits * target)
    return logits, tape.gradient(loss, model.trainable_variables)


def main(model_file, inputs_file, out_file):
    from kerasflow.model_io import load_model_file

    model = load_model_file(model_file)
    arrays = dict(np.load(inputs_file))
    target = arrays.pop("target")
    logits, grads = logits_and_gradients(model, arrays, target)
    np.savez(out_file, logits=keras.ops.convert_to_numpy(logits),
             **{f"grad_{i}": keras.ops.convert_to_numpy(g) for i, g in enumerate(grads)})


if __name__ == "__main__":
    main(*sys.argv[1:])

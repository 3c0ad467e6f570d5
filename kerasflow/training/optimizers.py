"""SGD and Adam with PyTorch's weight decay and a second learning rate for a group of variables.

EgoRCNN trains with ``torch.optim.SGD``/``Adam``, whose ``weight_decay`` adds ``wd * w`` to the gradient
(L2), not Keras' decoupled ``w -= lr * wd * w``; with momentum 0.9 the two differ about tenfold. Its
joint stage also trains the flow stream at 1e-4 while the rest uses 1e-2 (two parameter groups).
These optimizers reproduce both: before the usual update, each gradient becomes
``(g + l2 * w) * factor``, with ``factor = slow_factor`` for ``slow_variables`` and 1 otherwise. For
SGD with momentum the update is linear in that gradient, so the slow group's update is exactly that of
a group with learning rate ``slow_factor * learning_rate``; for Adam the factor cancels out, so a second
rate is refused. ``slow_variables`` are objects, not config: a reloaded optimizer has none.
"""

import keras


def _torch_gradients(grads, variables, l2, slow_ids, slow_factor):
    adjusted = []
    for grad, variable in zip(grads, variables):
        if grad is not None:
            if l2:
                grad = grad + l2 * keras.ops.cast(variable, grad.dtype)
            if id(variable) in slow_ids:
                grad = grad * slow_factor
        adjusted.append(grad)
    return adjusted


@keras.saving.register_keras_serializable(package="kerasflow")
class TorchSGD(keras.optimizers.SGD):
    """``keras.optimizers.SGD`` with PyTorch's L2 ``weight_decay`` and an optional slow variable group.

    Args:
        l2: float. PyTorch's ``weight_decay``: ``wd * w`` is added to each gradient. Defaults to 0.
        slow_variables: variables that learn at ``slow_factor`` times the learning rate.
        slow_factor: float. Defaults to 1.
        **kwargs: ``keras.optimizers.SGD`` arguments (``learning_rate``, ``momentum``...); leave its
            decoupled ``weight_decay`` unset.
    """

    def __init__(self, l2=0.0, slow_variables=(), slow_factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.l2 = float(l2)
        self.slow_factor = float(slow_factor)
        self._slow_ids = {id(variable) for variable in slow_variables}

    def apply(self, grads, trainable_variables=None):
        variables = self._trainable_variables if trainable_variables is None else trainable_variables
        grads = _torch_gradients(grads, variables, self.l2, self._slow_ids, self.slow_factor)
        return super().apply(grads, trainable_variables)

    def get_config(self):
        config = super().get_config()
        config.update({"l2": self.l2, "slow_factor": self.slow_factor})
        return config


@keras.saving.register_keras_serializable(package="kerasflow")
class TorchAdam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with PyTorch's L2 ``weight_decay`` (``wd * w`` added to each gradient).

    Keras puts ``epsilon`` outside the bias correction of the second moment (the Adam paper's
    "epsilon hat"), PyTorch inside; with EgoRCNN's eps = 1e-4 the two differ only in the first steps.
    """

    def __init__(self, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.l2 = float(l2)

    def apply(self, grads, trainable_variables=None):
        variables = self._trainable_variables if trainable_variables is None else trainable_variables
        grads = _torch_gradients(grads, variables, self.l2, set(), 1.0)
        return super().apply(grads, trainable_variables)

    def get_config(self):
        config = super().get_config()
        config.update({"l2": self.l2})
        return config

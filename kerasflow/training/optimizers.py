"""SGD and Adam computing PyTorch's updates, with its weight decay and parameter groups.

EgoRCNN and the representation-flow code train with ``torch.optim.SGD``/``Adam``. These optimizers take
the same steps, also across learning-rate changes:

- SGD (momentum ``m``, dampening 0, no Nesterov): ``b = m * b + g``, ``w -= lr * b``. Keras' SGD keeps
  ``v = m * v - lr * g`` instead, which is the same only while the rate is constant: after a rate drop
  the old velocity keeps the old rate, and the trajectories do not meet again.
- Adam: ``denom = sqrt(v / (1 - b2^t)) + eps``, ``w -= lr / (1 - b1^t) * m / denom``; Keras adds
  ``eps`` outside the second moment's bias correction, which matters with EgoRCNN's eps = 1e-4.

On ``tests/test_optimizers.py``'s 60 steps (x0.1 at steps 20 and 40, two groups) Keras' own forms end
49 % (SGD) and 5e-4 (Adam) away from torch.optim's recorded weights; these stay within 1e-6.
- ``weight_decay`` is L2 added to the gradient (``g + wd * w``), not Keras' decoupled decay.
- Parameter groups: both codes train some variables at another rate (EgoRCNN's joint stage trains the
  flow stream at 1e-4 while the rest uses 1e-2; the representation-flow code trains the flow layers' own
  parameters at 0.01x the base rate). A group is a list of variables with a learning-rate factor and its
  own L2; a variable of a group steps with ``factor * learning_rate``, exactly a torch parameter group.
  Groups hold variables, not config: a reloaded optimizer has none.

The buffers are Keras' own optimizer variables (``momentum``; ``momentum`` and ``velocity``), so they
are saved in checkpoints and resume with the run.
"""

import keras
from keras import ops


class _TorchStyle:
    """PyTorch's L2 and parameter groups on top of a Keras optimizer (the next class in the MRO).

    Args:
        l2: float. PyTorch's ``weight_decay``: ``wd * w`` is added to each gradient. Defaults to 0.
        groups: ``(variables, learning_rate_factor, l2)`` triples; a variable's first group wins.
        **kwargs: the Keras optimizer's arguments (``learning_rate``, ``momentum``...); leave its
            decoupled ``weight_decay`` unset.
    """

    def __init__(self, l2=0.0, groups=(), **kwargs):
        super().__init__(**kwargs)
        self.l2 = float(l2)
        self._group_of = {}
        for variables, factor, group_l2 in groups:
            for variable in variables:
                self._group_of.setdefault(id(variable), (float(factor), float(group_l2)))

    def _group(self, variable):
        """``(learning-rate factor, l2)`` of ``variable``."""
        return self._group_of.get(id(variable), (1.0, self.l2))

    def apply(self, grads, trainable_variables=None):
        variables = self._trainable_variables if trainable_variables is None else trainable_variables
        adjusted = []
        for grad, variable in zip(grads, variables):
            l2 = self._group(variable)[1]
            if grad is not None and l2:
                grad = grad + l2 * ops.cast(variable, grad.dtype)
            adjusted.append(grad)
        return super().apply(adjusted, trainable_variables)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # One update per group, at its own rate (the Keras variables are still whole here, also under
        # a tf.distribute strategy, which updates replica copies further down).
        by_factor = {}
        for grad, variable in zip(grads, trainable_variables):
            pairs = by_factor.setdefault(self._group(variable)[0], ([], []))
            pairs[0].append(grad)
            pairs[1].append(variable)
        for factor, (group_grads, group_variables) in by_factor.items():
            rate = learning_rate if factor == 1.0 else learning_rate * factor
            super()._backend_update_step(group_grads, group_variables, rate)

    def get_config(self):
        config = super().get_config()
        config.update({"l2": self.l2})
        return config


@keras.saving.register_keras_serializable(package="kerasflow")
class TorchSGD(_TorchStyle, keras.optimizers.SGD):
    """``torch.optim.SGD`` (dampening 0, no Nesterov) as a Keras optimizer: ``b = m * b + g``,
    ``w -= lr * b``, with PyTorch's L2 ``weight_decay`` and parameter groups (``_TorchStyle``)."""

    def __init__(self, l2=0.0, groups=(), **kwargs):
        if kwargs.get("nesterov"):
            raise ValueError("TorchSGD computes torch.optim.SGD without Nesterov momentum. Received: nesterov=True")
        super().__init__(l2, groups, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.momentum == 0:
            self.assign_sub(variable, ops.multiply(gradient, learning_rate))
            return
        buffer = self.momentums[self._get_variable_index(variable)]
        self.assign(buffer, ops.add(ops.multiply(buffer, ops.cast(self.momentum, variable.dtype)), gradient))
        self.assign_sub(variable, ops.multiply(buffer, learning_rate))


@keras.saving.register_keras_serializable(package="kerasflow")
class TorchAdam(_TorchStyle, keras.optimizers.Adam):
    """``torch.optim.Adam`` (no AMSGrad) as a Keras optimizer: ``epsilon`` added after the second
    moment's bias correction, as PyTorch does, with its L2 ``weight_decay`` and parameter groups."""

    def __init__(self, l2=0.0, groups=(), **kwargs):
        if kwargs.get("amsgrad"):
            raise ValueError("TorchAdam computes torch.optim.Adam without AMSGrad. Received: amsgrad=True")
        super().__init__(l2, groups, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        learning_rate = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        bias_correction1 = 1 - ops.power(ops.cast(self.beta_1, dtype), step)
        bias_correction2 = 1 - ops.power(ops.cast(self.beta_2, dtype), step)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        denominator = ops.add(ops.divide(ops.sqrt(v), ops.sqrt(bias_correction2)), ops.cast(self.epsilon, dtype))
        self.assign_sub(variable, ops.divide(ops.multiply(m, learning_rate / bias_correction1), denominator))

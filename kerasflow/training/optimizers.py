"""SGD and Adam with PyTorch's weight decay and parameter groups (their own learning rate and decay).

EgoRCNN and the representation-flow code train with ``torch.optim.SGD``/``Adam``, whose
``weight_decay`` adds ``wd * w`` to the gradient (L2), not Keras' decoupled ``w -= lr * wd * w``;
with momentum 0.9 the two differ about tenfold. Both codes also train some variables at another rate:
EgoRCNN's joint stage trains the flow stream at 1e-4 while the rest uses 1e-2, and the
representation-flow code trains the flow layers' own parameters (theta, tau, lambda and their
kernels) at 0.01x the base rate without weight decay. These optimizers reproduce both: a group is a
list of variables with a learning-rate factor and its own L2; for a variable of a group, the gradient
becomes ``g + l2_group * w`` and the step is taken with ``factor * learning_rate``, which is exactly a
torch parameter group with learning rate ``factor * lr`` (for SGD with momentum and for Adam alike).
Groups hold variables, not config: a reloaded optimizer has none.
"""

import keras


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
                grad = grad + l2 * keras.ops.cast(variable, grad.dtype)
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
    """``keras.optimizers.SGD`` with PyTorch's L2 ``weight_decay`` and parameter groups (``_TorchStyle``)."""


@keras.saving.register_keras_serializable(package="kerasflow")
class TorchAdam(_TorchStyle, keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with PyTorch's L2 ``weight_decay`` and parameter groups (``_TorchStyle``).

    Keras puts ``epsilon`` outside the bias correction of the second moment (the Adam paper's
    "epsilon hat"), PyTorch inside; with EgoRCNN's eps = 1e-4 the two differ only in the first steps.
    """

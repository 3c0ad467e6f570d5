"""An SGD with a second learning rate for a group of variables (EgoRCNN's joint stage)."""

import keras


@keras.saving.register_keras_serializable(package="kerasflow")
class TwoRateSGD(keras.optimizers.SGD):
    """SGD whose ``slow_variables`` learn at ``slow_factor`` times the learning rate.

    EgoRCNN's joint stage trains the flow stream's last block at 1e-4 and everything else at 1e-2.
    Scaling those variables' gradients by ``slow_factor`` scales their SGD-with-momentum updates by
    exactly that factor (the update is linear in the gradient); decoupled weight decay still uses the
    base learning rate. ``slow_variables`` are objects, not config: a reloaded optimizer has none.
    """

    def __init__(self, slow_variables=(), slow_factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.slow_factor = float(slow_factor)
        self._slow_ids = {id(variable) for variable in slow_variables}

    def apply(self, grads, trainable_variables=None):
        variables = self._trainable_variables if trainable_variables is None else trainable_variables
        grads = [
            grad * self.slow_factor if grad is not None and id(variable) in self._slow_ids else grad
            for grad, variable in zip(grads, variables)
        ]
        return super().apply(grads, trainable_variables)

    def get_config(self):
        config = super().get_config()
        config.update({"slow_factor": self.slow_factor})
        return config

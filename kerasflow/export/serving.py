"""The model an export serves: raw uint8 frames of fixed shape in, ``logits`` and ``probs`` out.

``serving_model`` rebuilds a trained model from its config with its weights, with the changes a
static graph of builtin ops needs: a ``ConvLSTM2D`` (in models saved before ``ConvLSTM`` replaced it)
unrolled over its fixed number of frames (a loop over a TensorList has no builtin TFLite op), float32
throughout (a model trained under mixed_float16 keeps float32 weights), and a batch of one.
"""

import keras

from kerasflow.errors import UserError

FLOAT32_POLICY = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                  "registered_name": None}


def _prepared(config, batch_size):
    """``config`` with every ``ConvLSTM2D`` unrolled, every mixed-precision policy made float32 and every
    input of batch ``batch_size``."""
    if isinstance(config, list):
        return [_prepared(child, batch_size) for child in config]
    if not isinstance(config, dict):
        return config
    config = {key: _prepared(child, batch_size) for key, child in config.items()}
    if config.get("class_name") == "InputLayer":
        config["config"] = {**config["config"], "batch_shape": [batch_size, *config["config"]["batch_shape"][1:]]}
    if config.get("class_name") == "ConvLSTM2D":
        config["config"] = {**config["config"], "unroll": True}
    if config.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and "mixed" in str(config.get("config")):
        config = dict(FLOAT32_POLICY)
    return config


def serving_model(model, info, batch_size=1):
    """A functional model of ``model``'s layers and weights taking ``{input name: uint8 (batch, *shape)}``
    (shapes from ``info``, a ``ModelInfo``, which they must match) and returning ``{"logits", "probs"}``
    (float32)."""
    import kerasflow.models.builders  # noqa: F401  (registers the custom layers the config names)

    try:
        rebuilt = keras.Model.from_config(_prepared(model.get_config(), batch_size))
    except (TypeError, ValueError) as error:
        raise UserError(f"the model cannot be rebuilt for export ({type(error).__name__}: "
                        f"{str(error).splitlines()[0][:150]}); export a model kerasflow.fit wrote") from None
    rebuilt.set_weights(model.get_weights())
    shapes = {tensor.name: (tuple(tensor.shape), tensor.dtype) for tensor in rebuilt.inputs}
    expected = {spec.name: ((batch_size, *spec.shape), "uint8") for spec in info.inputs}
    if shapes != expected:
        raise UserError(f"the model's inputs {shapes} are not the uint8 clips its metadata describes {expected}; "
                        "export a model this kerasflow version trained")
    logits = keras.layers.Activation("linear", dtype="float32", name="serving_logits")(rebuilt.output)
    probs = keras.layers.Softmax(dtype="float32", name="serving_probs")(logits)
    return keras.Model(rebuilt.input, {"logits": logits, "probs": probs}, name=f"{model.name}_serving")

"""Finding things inside the models: the stream bodies of a model, and every layer by its path."""

import keras

STREAM_NAMES = ("rgb_stream", "flow_stream")


def streams_of(model):
    """The stream bodies (``rgb_stream``, ``flow_stream``) inside ``model``, or ``model`` itself if it is one."""
    if model.name in STREAM_NAMES:
        return {model.name: model}
    return {layer.name: layer for layer in model.layers if layer.name in STREAM_NAMES}


def walk_layers(layer, prefix=""):
    """Yield ``(path, layer)`` for ``layer``'s leaves, descending into nested models (``a/b/conv1``)."""
    if not isinstance(layer, keras.Model):
        yield prefix.rstrip("/"), layer
        return
    for child in layer.layers:
        if not isinstance(child, keras.layers.InputLayer):
            yield from walk_layers(child, f"{prefix}{child.name}/")

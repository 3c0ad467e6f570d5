"""Starting a run from other runs' models (``model.init_from``): their streams' weights, layer by layer.

Each stream of the new run's model kind (``rgb_stream``, ``flow_stream``) that ``model.init_streams``
asks for (null: every one) is copied from the first model of ``model.init_from`` that holds it, so
an RGB run can start the RGB stream of a two-stream run, and a two-stream run can start from an RGB
run and a flow run. Every layer with weights is copied from the layer at the same path inside the
stream (``rgb_stream/layer4/layer4_0_conv1``, batch-norm statistics included); a layer missing or
shaped otherwise in the source stops the run in one line that names it. A classifier is copied when
the streams under it came from one source that has it and that was trained on the same class list;
otherwise it starts new, and one line says why.
"""

from kerasflow.config.validation import show_value
from kerasflow.errors import UserError
from kerasflow.model_io import find_model_file, load_model_file, read_model_info
from kerasflow.models.common import streams_of, walk_layers

# The classifiers a model may have (``kerasflow.models.action_models``) and the streams each one reads.
CLASSIFIER_STREAMS = {"rgb_classifier": ("rgb",), "flow_classifier": ("flow",), "fusion_classifier": ("rgb", "flow")}


def initialize_from(recipe, models, class_names, log=print):
    """Copy the weights ``recipe.model.init_from`` names into ``models`` (a kind's freshly built models,
    sharing their streams), a run on ``class_names``; log what was loaded and what was not, in one line
    (and, when a source's classes differ, one line saying its classifier starts new).

    Raises ``UserError`` for a source that is missing, holds none of the asked streams, or whose
    layers do not fit the recipe's model.
    """
    sources = [_read_source(path) for path in recipe.model.init_from]
    loaded, not_loaded = [], []
    origin = _load_streams(recipe, models, sources, loaded, not_loaded)
    other_classes = _load_classifiers(models, origin, class_names, loaded, not_loaded)
    if other_classes:
        files = {str(source["file"]): len(source["info"].class_names) for _, source in other_classes}
        log(f"model.init_from: this run's {len(class_names)} classes differ from the "
            f"{' and '.join(f'{count} of {file}' for file, count in files.items())}, so these start new: "
            f"{', '.join(name for name, _ in other_classes)}")
    described = ", ".join(f"{name} from {source['file']}" for name, source in loaded)
    log(f"model.init_from: loaded {described}; not loaded: {', '.join(not_loaded) or 'nothing'}")


def _load_streams(recipe, models, sources, loaded, not_loaded):
    """Copy each asked stream from the first source that holds it; ``{stream: source}`` of those copied."""
    targets = {name: stream for model in models.values() for name, stream in streams_of(model).items()}
    origin = {}
    for stream in recipe.kind.streams:
        name = f"{stream}_stream"
        if recipe.model.init_streams and stream not in recipe.model.init_streams:
            not_loaded.append(f"{name} (not in model.init_streams)")
            continue
        source = next((source for source in sources if name in streams_of(source["model"])), None)
        if source is None and recipe.model.init_streams:
            raise UserError(f"model.init_streams asks for the {stream} stream but none is in {_names(sources)}; "
                            f"add a model that has one to model.init_from, or drop {stream} from model.init_streams")
        if source is None:
            not_loaded.append(f"{name} (no source has one)")
            continue
        _copy_layers(streams_of(source["model"])[name], targets[name], name, source["file"])
        origin[stream] = source
        loaded.append((name, source))
    if not origin:
        raise UserError(f"model.init_from: no stream of model.kind {recipe.model.kind} "
                        f"({', '.join(f'{stream}_stream' for stream in recipe.kind.streams)}) is in {_names(sources)}; "
                        "pass a run that has one")
    return origin


def _load_classifiers(models, origin, class_names, loaded, not_loaded):
    """Copy each classifier whose streams all came from one source that has it, trained on ``class_names``;
    ``[(classifier, source)]`` of those left new because the source's classes differ."""
    classifiers = {layer.name: layer for model in models.values() for layer in model.layers
                   if layer.name in CLASSIFIER_STREAMS}
    other_classes = []
    for name, classifier in classifiers.items():
        givers = [origin.get(stream) for stream in CLASSIFIER_STREAMS[name]]
        source = givers[0] if all(giver is givers[0] for giver in givers) else None
        held = {layer.name: layer for layer in source["model"].layers} if source else {}
        if name not in held:
            not_loaded.append(f"{name} (new)")
        elif list(source["info"].class_names) != list(class_names):
            not_loaded.append(f"{name} (new: other classes)")
            other_classes.append((name, source))
        else:
            _copy_layers(held[name], classifier, name, source["file"])
            loaded.append((name, source))
    return other_classes


def _read_source(path):
    """``{"file", "info", "model"}`` of one ``model.init_from`` entry (a run folder or a ``.keras`` file)."""
    try:
        model_file = find_model_file(path)
        return {"file": model_file, "info": read_model_info(model_file), "model": load_model_file(model_file)}
    except UserError as error:
        raise UserError(f"model.init_from: {error}") from None


def _names(sources):
    return " and ".join(str(source["file"]) for source in sources)


def _weighted_layers(layer):
    """``{path inside layer: leaf layer}`` of the leaves that hold weights (``{"": layer}`` for a leaf)."""
    return {path: leaf for path, leaf in walk_layers(layer) if leaf.weights}


def _shapes(layer):
    """The shapes of ``layer``'s weights, as a message shows them (cut to 60 characters)."""
    return (show_value([tuple(weight.shape) for weight in layer.weights]) if layer is not None
            else "none (no such layer)")


def _copy_layers(source, target, name, source_file):
    """Set every weighted layer of ``target`` to the layer at the same path in ``source`` (both called
    ``name``); ``UserError`` naming the first layer whose presence or shapes differ."""
    held, needed = _weighted_layers(source), _weighted_layers(target)
    for path in dict.fromkeys([*needed, *held]):
        there, here = _shapes(held.get(path)), _shapes(needed.get(path))
        if there != here:
            layer = "/".join(part for part in (name, path) if part)
            raise UserError(
                f"model.init_from: {source_file} does not fit this recipe's model: layer {layer} has weights "
                f"{there} there and {here} here; give the "
                "model section the source's settings (backbone, convlstm_units, flow), or leave that stream out "
                "with model.init_streams")
    for path, layer in needed.items():
        layer.set_weights(held[path].get_weights())

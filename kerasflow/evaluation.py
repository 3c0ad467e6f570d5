"""Test-set metrics of a predictor (a Keras model or an export) on a recipe's data, written beside the model.

``evaluate_run`` measures top-1, top-5, per-class accuracy and seconds per video (decoding, the RGB
stream, the flow stream), and writes ``confusion_matrix.png`` and ``evaluation.json`` to a folder of its
own (``output_folder``); ``python -m kerasflow.evaluate`` prints what it returns.
"""

import hashlib
import json
import math
import sys
from pathlib import Path

from kerasflow.atomic import ensure_writable_folder, write_json
from kerasflow.config import recipe_to_dict
from kerasflow.errors import UserError
from kerasflow.training.run_folder import RECIPE_FILE, run_folder_of


def find_recipe(path, recipe=None, source_run=None):
    """``recipe`` when given, else the ``recipe.yaml`` of the run folder ``path`` lies in (or, for an
    export, ``source_run``, the run it was exported from); a ``ValueError`` when neither is there."""
    if recipe is not None:
        return Path(recipe)
    run = run_folder_of(path) or (run_folder_of(source_run) if source_run else None)
    if run is None:
        raise ValueError(f"`recipe` must be the recipe {path} was trained with: it is not inside a run folder, "
                         f"whose {RECIPE_FILE} would be read. Received: recipe=None")
    return run / RECIPE_FILE


def check_model_matches_recipe(info, recipe, model_file):
    if info.kind != recipe.model.kind:
        raise UserError(f"{model_file} is a model file of another kind ({info.kind}) than the recipe's "
                        f"model.kind ({recipe.model.kind}); pass the recipe it was trained with")


def subset_dataset(recipe, info, subset, batch_size, bad_videos, clips=1):
    """The ``(index, dataset)`` of the recipe's ``subset``, fed as the model's ``ModelInfo`` says."""
    from kerasflow.data.feeds import model_dataset, recipe_indexes

    train, test = recipe_indexes(recipe.data)
    index = test if subset == "test" else train
    if list(index.class_names) != list(info.class_names):
        raise UserError(f"{recipe.data.root}: its classes ({len(index.class_names)}) differ from the "
                        f"{len(info.class_names)} the model was trained on; set data.root to that dataset")
    dataset = model_dataset(recipe.data, index, subset, info.inputs, batch_size=batch_size, training=False,
                            seed=recipe.runtime.seed, bad_videos=bad_videos, clips=clips)
    return index, dataset


def output_folder(model_file, recipe, subset, output=None, clips=1):
    """Where evaluate writes its picture and JSON: ``output``, or a folder of its own next to the model,
    ``evaluations/<model>-<subset>-<dataset>-<digest of the data section>``, so evaluating on other data
    never overwrites fit's pictures nor another evaluation; for an export, beside its folder (what is
    shipped stays as exported): ``<export folder>/../evaluations/<export name>-...``. Checked to be
    writable before any work."""
    from kerasflow.export.predictors import METADATA_FILE

    if output is None:
        base, name = Path(model_file).parent, Path(model_file).name.split(".")[0]
        if (base / METADATA_FILE).is_file():
            base, name = base.parent, base.name
        data = json.dumps(recipe_to_dict(recipe)["data"], sort_keys=True).encode("utf-8")
        tag = f"{name}-{subset}-{recipe.data.dataset}-{hashlib.sha1(data).hexdigest()[:8]}"
        tag += f"-{clips}clips" + ("-softmax" if recipe.evaluation.average == "softmax" else "") if clips > 1 else ""
        folder = base / "evaluations" / tag
    else:
        folder = Path(output)
        if folder.exists() and not folder.is_dir():
            raise UserError(f"the output folder {output} is a file; give a folder (it is created if missing)")
        if (folder / RECIPE_FILE).is_file():
            raise UserError(f"the output folder {output} is a run folder; leave the output folder out (evaluate "
                            "then writes to evaluations/ inside the run) or give another folder")
    ensure_writable_folder(folder)
    return folder


def evaluate_run(predictor, recipe, subset="test", batch_size=None, output=None, clips=None):
    """Evaluate ``predictor`` (``kerasflow.export.predictors``: a Keras model or an export) on the recipe's
    ``subset``; write the PNG and JSON; return the report dict."""
    from tqdm import tqdm

    from kerasflow import metrics
    from kerasflow.data.feeds import test_clips
    from kerasflow.data.pipeline import BadVideoLog, bad_videos_as_user_errors
    from kerasflow.models.common import streams_of

    info, model_file = predictor.info, predictor.path
    clips = test_clips(info.inputs, clips or recipe.evaluation.clips)
    folder = output_folder(model_file, recipe, subset, output, clips)
    batch_size = batch_size or recipe.data.batch_size
    bad_videos = BadVideoLog()
    index, dataset = subset_dataset(recipe, info, subset, batch_size, bad_videos, clips)
    class_names = list(info.class_names)
    batches = tqdm(dataset, total=math.ceil(len(index) / batch_size), desc=f"evaluating {subset}",
                   unit="batch", file=sys.stderr, disable=None)
    try:
        with bad_videos_as_user_errors():
            streams = list(streams_of(predictor.keras_model).values()) if predictor.keras_model else []
            result = metrics.evaluate(predictor, batches, len(class_names), streams=streams, clips=clips,
                                      average=recipe.evaluation.average)
    finally:
        batches.close()
    if result.num_videos == 0:
        raise UserError(f"none of the {len(index)} {subset} videos of {recipe.data.root} could be decoded "
                        f"({bad_videos.summary(shown=2)}); repair or replace them")
    png, report_file = folder / "confusion_matrix.png", folder / "evaluation.json"
    confusion = result.confusion()
    metrics.plot_confusion_matrix(
        confusion, class_names, str(png), f"{info.kind} ({info.stage}), {subset}: top-1 {result.top1:.3f}",
    )
    report = {
        "model": str(model_file),
        "format": predictor.format,
        "kind": info.kind,
        "stage": info.stage,
        "subset": subset,
        "clips": clips,
        "average": recipe.evaluation.average,
        **result.summary(class_names),
        "skipped_videos": bad_videos.paths,
        "class_names": class_names,
        "confusion_matrix": confusion.tolist(),
        "confusion_matrix_png": str(png),
        "evaluation_json": str(report_file),
    }
    write_json(report_file, report)
    return report

"""``python -m kerasflow.evaluate RUN_DIR`` (or ``MODEL.keras --recipe RECIPE.yaml``): test-set metrics.

Prints top-1, top-5, per-class accuracy and seconds per video split into decoding, the RGB stream and
the flow stream; writes ``confusion_matrix.png`` and ``evaluation.json`` to the run folder (or next to
the model file, beside an export folder, or to ``--output``). ``--json`` prints one JSON object on stdout
and nothing else.
"""

import hashlib
import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerasflow.cli import add_set_option, bad_videos_as_user_errors, positive_int, report_command  # noqa: E402
from kerasflow.errors import UserError, run_command  # noqa: E402
from kerasflow.atomic import ensure_writable_folder, write_json  # noqa: E402
from kerasflow.config import recipe_to_dict  # noqa: E402
from kerasflow.training.run_folder import RECIPE_FILE, run_folder_of  # noqa: E402


def find_recipe(path, recipe=None, source_run=None):
    """``recipe`` when given, else the ``recipe.yaml`` of the run folder ``path`` lies in (or, for an
    export, ``source_run``, the run it was exported from)."""
    if recipe is not None:
        return Path(recipe)
    run = run_folder_of(path) or (run_folder_of(source_run) if source_run else None)
    if run is None:
        raise UserError(f"{path} is not inside a run folder; pass the recipe it was trained with (--recipe)")
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
    from kerasflow.export.runtime import METADATA_FILE

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
            raise UserError(f"--output {output} is a file; pass a folder (it is created if missing)")
        if (folder / RECIPE_FILE).is_file():
            raise UserError(f"--output {output} is a run folder; leave --output out (evaluate then writes to "
                            "evaluations/ inside it) or pass another folder")
    ensure_writable_folder(folder)
    return folder


def evaluate_run(predictor, recipe, subset="test", batch_size=None, output=None, clips=None):
    """Evaluate ``predictor`` (``kerasflow.export.runtime``: a Keras model or an export) on the recipe's
    ``subset``; write the PNG and JSON; return the report dict."""
    from tqdm import tqdm

    from kerasflow import metrics
    from kerasflow.data.feeds import test_clips
    from kerasflow.data.pipeline import BadVideoLog
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


def format_report(report):
    """The human-readable lines ``evaluate`` prints."""
    from kerasflow.models.common import STREAM_NAMES

    split = report["seconds_per_video_split"]
    streams = ", ".join(f"{name} {split[name]:.4f}" for name in STREAM_NAMES if name in split)
    lines = [
        f"model: {report['model']} ({report['kind']}, stage {report['stage']})",
        f"{report['subset']} subset: {report['num_videos']} videos of {len(report['class_names'])} classes, "
        f"{report['clips']} clip{'s' if report['clips'] > 1 else ''} per video"
        + (f", {len(report['skipped_videos'])} bad videos skipped" if report["skipped_videos"] else ""),
        f"top-1 {report['top1']:.4f}   top-5 {report['top5']:.4f}",
        "per-class accuracy:",
        *(f"  {name:<30} {accuracy:.4f}" for name, accuracy in report["per_class_accuracy"].items()),
        f"seconds per video: {report['seconds_per_video']:.4f} (decode {split['decode']:.4f}, "
        f"model {split['model']:.4f}" + (f"; streams timed apart: {streams}" if streams else "") + ")",
        f"confusion matrix: {report['confusion_matrix_png']}",
        f"metrics: {report['evaluation_json']}",
    ]
    return "\n".join(lines)


def add_arguments(parser):
    parser.add_argument("model", help="run folder (uses its model.keras and recipe.yaml), a .keras model file, "
                        "an export folder or a .tflite file")
    parser.add_argument("--recipe", help="recipe the model was trained with (default: the run folder's recipe.yaml)")
    add_set_option(parser)
    parser.add_argument("--subset", choices=("test", "train"), default="test", help="which subset (default test)")
    parser.add_argument("--batch-size", type=positive_int, help="default: the recipe's data.batch_size")
    parser.add_argument("--clips", type=positive_int, help="clips per video, averaged as the recipe's "
                        "evaluation.average says (logits by default; --set evaluation.average=softmax): evenly "
                        "spaced flow windows or TV-L1 stacks (default: the recipe's evaluation.clips, 1)")
    parser.add_argument("--output", help="folder for confusion_matrix.png and evaluation.json (default: "
                        "evaluations/<model>-<subset>-<dataset>-<data digest>/ next to the model, or beside an "
                        "export folder)")


def evaluate_model(args):
    """The report of ``python -m kerasflow.evaluate`` for its parsed ``args``."""
    from kerasflow.config import load_recipe

    from kerasflow.export.runtime import load_predictor

    predictor = load_predictor(args.model)
    recipe = load_recipe(find_recipe(args.model, args.recipe, predictor.source_run), args.overrides)
    if predictor.keras_model is not None:
        predictor.set_jit_compile(recipe.runtime.jit_compile)
    check_model_matches_recipe(predictor.info, recipe, predictor.path)
    return evaluate_run(predictor, recipe, args.subset, args.batch_size, args.output, args.clips)


main = report_command("evaluate", __doc__, add_arguments, evaluate_model, format_report)

if __name__ == "__main__":
    run_command(main)

"""``python -m kerasflow.evaluate RUN_DIR`` (or ``MODEL.keras --recipe RECIPE.yaml``): test-set metrics.

Prints top-1, top-5, per-class accuracy and seconds per video split into decoding, the RGB stream and
the flow stream; writes ``confusion_matrix.png`` and ``evaluation.json`` to the run folder (or next to
the model file, beside an export folder, or to ``--output``). ``--json`` prints one JSON object on stdout
and nothing else.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerasflow.cli import add_set_option, positive_int, report_command, value_errors_as_user_errors  # noqa: E402
from kerasflow.errors import run_command  # noqa: E402
from kerasflow.evaluation import check_model_matches_recipe, evaluate_run, find_recipe  # noqa: E402


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
    from kerasflow.export.predictors import load_predictor

    predictor = load_predictor(args.model)
    with value_errors_as_user_errors({"recipe": "--recipe"}):
        recipe_path = find_recipe(args.model, args.recipe, predictor.source_run)
    recipe = load_recipe(recipe_path, args.overrides)
    if predictor.keras_model is not None:
        predictor.set_jit_compile(recipe.runtime.jit_compile)
    check_model_matches_recipe(predictor.info, recipe, predictor.path)
    return evaluate_run(predictor, recipe, args.subset, args.batch_size, args.output, args.clips)


main = report_command("evaluate", __doc__, add_arguments, evaluate_model, format_report)

if __name__ == "__main__":
    run_command(main)

"""``python -m kerasflow.export RUN_DIR_OR_MODEL --format {keras,saved_model,tflite}``: a deployable model.

The exported model takes raw uint8 frames of the run's fixed shape (``(1, T, S, S, 3)`` per clip
input, the TV-L1 stack for the optical-flow baseline) and returns ``logits`` and ``probs``; the folder
also holds ``metadata.json`` (classes, inputs, the crop rule). Right after writing, the artifact is run
on clips of the run's test data and compared with the Keras model; the command prints the size, the
largest probability difference, the top-1 agreement and the milliseconds per clip.

``--quantize int8`` (full-integer TFLite: int8 weights and activations, uint8 frames in) calibrates
its activation ranges on up to 32 of the run's training clips, spread over the training list; the ops
TFLite has no int8 kernel for stay float and are listed, as are the weights ``dynamic_int8`` could not
quantize.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerasflow.cli import (  # noqa: E402
    command_parser,
    positive_int,
    start_tensorflow_quietly,
    value_errors_as_user_errors,
)
from kerasflow.errors import UserError, cli_entry, run_command  # noqa: E402
from kerasflow.export.quantization import describe  # noqa: E402
from kerasflow.export.sample_clips import CHECK_CLIPS, check_clips, representative_clips  # noqa: E402
from kerasflow.export.writer import FORMATS, INT8_FLOAT_OPS, QUANTIZATIONS, REPORT_HEADER  # noqa: E402


def default_out(model_file, run, export_format, quantize):
    """``saved_models/<run name>/<format>[-<quantize>]``: the run's folder name (with the stage for a
    stage's best model), or the model file's name outside a run."""
    name = Path(model_file).name.split(".")[0]
    if run is not None:
        stage = Path(model_file).parent.name if Path(model_file).parent != run else None
        name = run.name + (f"-{stage}" if stage else "")
    return Path("saved_models") / name / (export_format + ("" if quantize == "none" else f"-{quantize}"))


@cli_entry
def main(argv=None):
    parser = command_parser("export", __doc__)
    parser.add_argument("model", help="run folder (its model.keras) or a .keras model file")
    parser.add_argument("--format", required=True, choices=FORMATS, help="what to write")
    parser.add_argument("--quantize", default="none", choices=QUANTIZATIONS, help="tflite only (default none)")
    parser.add_argument("--out", help="export folder (default saved_models/<run name>/<format>[-<quantize>])")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing export folder")
    parser.add_argument("--recipe", help="the model's recipe, for its test clips (default: the run's recipe.yaml)")
    parser.add_argument("--check-clips", type=positive_int, default=CHECK_CLIPS,
                        help=f"test clips to compare the export with the Keras model on (default {CHECK_CLIPS})")
    args = parser.parse_args(argv)
    if args.quantize != "none" and args.format != "tflite":
        raise UserError(f"--quantize {args.quantize} applies to --format tflite; leave it out for {args.format}")
    start_tensorflow_quietly()  # before Keras loads it (kerasflow.backend), so its start-up chatter stays off
    from kerasflow.backend import name as backend_name
    from kerasflow.backend import run_under_tensorflow

    if backend_name() != "tensorflow":  # a model file is the same on every backend; TensorFlow exports it
        return run_under_tensorflow("kerasflow.export", sys.argv[1:] if argv is None else argv)
    from kerasflow.config import load_recipe
    from kerasflow.model_io import find_model_file, read_model_info
    from kerasflow.training.run_folder import run_folder_of

    model_file = find_model_file(args.model)
    info = read_model_info(model_file)
    run = run_folder_of(model_file)
    out = Path(args.out) if args.out else default_out(model_file, run, args.format, args.quantize)
    if out.exists() and not args.overwrite:
        raise UserError(f"{out} exists; pass --overwrite to replace it, or --out another folder")
    recipe_path = args.recipe or (run / "recipe.yaml" if run else None)
    recipe = load_recipe(recipe_path) if recipe_path else None
    if args.quantize == "int8" and recipe is None:
        raise UserError("--quantize int8 calibrates on the model's training clips: pass --recipe with the recipe "
                        "it was trained with")
    from kerasflow.export.writer import export
    from kerasflow.model_io import load_model_file

    clips, origin = check_clips(info, recipe, args.check_clips)
    representative = representative_clips(info, recipe) if args.quantize == "int8" and recipe else None
    with value_errors_as_user_errors({"quantize": "--quantize"}):
        report = export(load_model_file(model_file), info, args.format, out, quantize=args.quantize,
                        overwrite=args.overwrite, clips=clips, source=model_file, run_folder=run,
                        frame_size=info.inputs[0].size, representative=representative)
    if report.representative_clips:
        print(f"int8 calibrated on {report.representative_clips} training clips")
    if report.kept_float:
        what = ("the weights of these ops (no dynamic-range int8 kernel)" if args.quantize == "dynamic_int8" else
                f"these ops (no int8 TFLite kernel; {', '.join(INT8_FLOAT_OPS)} and the representation-flow "
                "layers on purpose)")
        print(f"kept float32: {what}: {describe(report.kept_float)}")
    print(f"checked against the Keras model on {origin}")
    print(REPORT_HEADER)
    print(report.row())
    print(f"exported to {report.folder}")
    return 0


if __name__ == "__main__":
    run_command(main)

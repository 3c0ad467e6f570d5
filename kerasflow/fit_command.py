"""``python -m kerasflow.fit RECIPE [--set KEY=VALUE ...]``: run a recipe's staged training.

RECIPE is a YAML file or the name of an installed recipe (``demo``, ``egtea``, ...). Re-running the
same command resumes an interrupted run from the last finished epoch of its current stage; a finished
run is not trained again. RECIPE may also be a run folder (or the ``recipe.yaml`` in one): that run
resumes where the folder is now, even after it was moved. One process at a time trains in a run
folder. From Python, ``kerasflow.fit(recipe)`` does the same.

``python -m kerasflow.fit`` runs this module through ``kerasflow/fit.py``; the command lives here because
``kerasflow.fit`` is the API function, which a module of that name would replace once imported.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerasflow.cli import add_set_option, command_parser, start_tensorflow_quietly  # noqa: E402
from kerasflow.errors import cli_entry  # noqa: E402

# The demo's table: a row per trained stream, from the stage that trained it last.
TABLE_ROWS = (("RGB only (EgoRCNN)", ("rgb_stage2", "rgb_stage1")), ("flow stream only", ("flow",)),
              ("two-stream", ("joint",)))


def comparison_table(metrics):
    """Test accuracy and seconds per video of each trained stream, as the demo prints it."""
    lines = [f"{'model':<24} {'top-1':>7} {'top-5':>7} {'s/video':>9}"]
    for label, stages in TABLE_ROWS:
        result = next((metrics["stages"][stage] for stage in stages if stage in metrics["stages"]), None)
        if result is not None:
            lines.append(f"{label:<24} {result['top1']:>7.3f} {result['top5']:>7.3f} "
                         f"{result['seconds_per_video']:>9.4f}")
    return "\n".join(lines)


def parse_args(argv):
    parser = command_parser("fit", __doc__)
    parser.add_argument("recipe", help="YAML recipe (e.g. recipes/egtea.yaml), an installed recipe's name "
                                       "(e.g. demo), or a run folder to resume where it is")
    add_set_option(parser)
    return parser.parse_args(argv)


@cli_entry(interrupted="every finished epoch is saved; run the same command again to resume from the last one")
def main(argv=None):
    args = parse_args(argv)
    from kerasflow.training.run_folder import fit_recipe

    recipe = fit_recipe(args.recipe, args.overrides)
    start_tensorflow_quietly(initialize_devices=recipe.runtime.distribution != "multi_worker_mirrored")
    from kerasflow.data.pipeline import bad_videos_as_user_errors
    from kerasflow.training.trainer import train_recipe

    with bad_videos_as_user_errors():
        metrics = train_recipe(recipe)
    print(comparison_table(metrics))
    print(f"final model: {os.path.join(recipe.runtime.output_dir, 'model.keras')} "
          f"(test top-1 {metrics['final']['top1']:.3f})")
    return 0


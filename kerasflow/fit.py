"""``python -m kerasflow.fit RECIPE [--set KEY=VALUE ...]``: run a recipe's staged training.

Re-running the same command resumes an interrupted run from the last finished epoch of its current
stage; a finished run is not trained again.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerasflow.cli import add_set_option, bad_videos_as_user_errors, start_tensorflow_quietly  # noqa: E402
from kerasflow.errors import cli_entry  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m kerasflow.fit", description=__doc__.splitlines()[0])
    parser.add_argument("recipe", help="YAML recipe, e.g. recipes/demo.yaml")
    add_set_option(parser)
    return parser.parse_args(argv)


@cli_entry
def main(argv=None):
    args = parse_args(argv)
    from kerasflow.recipes import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    start_tensorflow_quietly(initialize_devices=recipe.runtime.distribution != "multi_worker_mirrored")
    from kerasflow.training import comparison_table, train_recipe

    with bad_videos_as_user_errors():
        metrics = train_recipe(recipe)
    print(comparison_table(metrics))
    print(f"final model: {os.path.join(recipe.runtime.output_dir, 'model.keras')} "
          f"(test top-1 {metrics['final']['top1']:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

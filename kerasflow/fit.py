"""``python -m kerasflow.fit RECIPE [--set KEY=VALUE ...]``: run a recipe's staged training.

Re-running the same command resumes an interrupted run from the last finished epoch of its current
stage; a finished run is not trained again.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerasflow.cli import add_set_option, start_tensorflow_quietly  # noqa: E402
from kerasflow.errors import UserError, cli_entry  # noqa: E402


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
    import tensorflow as tf

    from kerasflow.data.pipeline import bad_video_from_tf_error
    from kerasflow.training import comparison_table, train_recipe

    try:
        metrics = train_recipe(recipe)
    except (tf.errors.UnknownError, tf.errors.InvalidArgumentError) as error:
        bad = bad_video_from_tf_error(error)
        if bad is None:
            raise
        raise UserError(f"{bad} (data.on_bad_video is fail; set it to skip to leave such videos out)") from None
    print(comparison_table(metrics))
    print(f"final model: {os.path.join(recipe.runtime.output_dir, 'model.keras')} "
          f"(test top-1 {metrics['final']['top1']:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

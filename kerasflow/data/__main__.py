"""``python -m kerasflow.data synth OUT_DIR``, ``python -m kerasflow.data pack ... OUT.tfrecord`` and
``python -m kerasflow.data check RECIPE`` (can every video of a recipe's dataset be used?)."""

import argparse
import os

from kerasflow.cli import (
    add_json_option,
    add_set_option,
    json_mode,
    positive_int,
    start_tensorflow_quietly,
    value_errors_as_user_errors,
)
from kerasflow.data.datasets import dataset_names
from kerasflow.data.indexes import SUBSETS
from kerasflow.data.video import BAD_VIDEO_POLICIES
from kerasflow.errors import UserError, cli_entry, run_command


def _parser():
    parser = argparse.ArgumentParser(prog="python -m kerasflow.data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser("synth", help="write the synthetic motion dataset (folder layout, .avi files)")
    synth.add_argument("out_dir", help="output folder (created; reused when made with the same arguments)")
    synth.add_argument("--classes", type=int, default=4, help="motion directions, 1-8 (default 4)")
    synth.add_argument("--videos-per-class", type=int, default=24, help="default 24")
    synth.add_argument("--frames", type=int, default=16, help="frames per video (default 16)")
    synth.add_argument("--size", type=int, default=64, help="frame width and height in pixels (default 64)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--test-fraction", type=float, default=0.25, help="share of each class in test.txt")
    synth.add_argument("--variant", default="patch", choices=("patch", "letters"),
                       help="patch: a textured patch, 1.5-3 px/frame (default); letters: thin letters drifting "
                            "0.5-2 px/frame over a static texture, with sensor noise")

    pack = commands.add_parser("pack", help="pack a dataset split into a TFRecord file of JPEG frames")
    pack.add_argument("--dataset", required=True, choices=dataset_names())
    pack.add_argument("--root", required=True, help="dataset root folder")
    pack.add_argument("--split", type=int, default=1)
    pack.add_argument("--subset", default="train", choices=SUBSETS)
    pack.add_argument("--short-side", type=positive_int, default=None,
                      help="rescale frames to this shorter side first (pixels, 1 or more)")
    pack.add_argument("--jpeg-quality", type=int, default=95)
    pack.add_argument("--on-bad-video", default=BAD_VIDEO_POLICIES[0], choices=BAD_VIDEO_POLICIES)
    pack.add_argument("out", help="output .tfrecord path (a .json sidecar is written next to it)")
    pack.add_argument("--overwrite", action="store_true", help="replace an existing OUT (and its .json sidecar)")

    check = commands.add_parser(
        "check", help="check that every video of a recipe's dataset can be used, as fit does first (cached)"
    )
    check.add_argument("recipe", help="recipe YAML file or installed recipe name (e.g. demo)")
    add_set_option(check)
    check.add_argument("--workers", type=positive_int, default=None,
                       help="videos probed at once (default: the number of CPUs, at most 8)")
    add_json_option(check)
    return parser


def _check(args):
    """Index the recipe's data and check it for the inputs of every stage it trains; no TensorFlow."""
    import json

    from kerasflow.config import load_recipe
    from kerasflow.data.check import check_recipe_data, recipe_inputs
    from kerasflow.data.feeds import recipe_indexes

    with json_mode(args.json):
        recipe = load_recipe(args.recipe, args.overrides)
        if not recipe_inputs(recipe):
            print("data check: every stage reads the packed TFRecord files (data.packed); no video to check")
            train = test = result = None
        else:
            train, test = recipe_indexes(recipe.data)
            result = check_recipe_data(recipe, train, test, workers=args.workers)
            if result.summary is None and not args.json:
                print(f"data check: all {len(train.items) + len(test.items)} videos can be used")
    if args.json:
        print(json.dumps(_check_report(train, test, result)))
    return 0


def _check_report(train, test, result):
    """The JSON of ``data check --json``: counts, the videos left out, and those whose header overstates
    their frame count."""
    if result is None:
        return {"videos": 0, "usable": 0, "left_out": [], "header_mismatch": []}
    kept = {item.source for index in (result.train, result.test) for item in index.items}
    every = [item.source for index in (train, test) for item in index.items]
    return {
        "videos": len(every), "usable": len(kept), "left_out": [source for source in every if source not in kept],
        "header_mismatch": [{"video": source, "header_frames": stated, "decodable_frames": frames}
                            for source, stated, frames in result.short],
    }


def _check_pack_output(args):
    """Refuse to replace an existing file (a video of the dataset, notes, an earlier pack) without --overwrite."""
    for path in (args.out, f"{args.out}.json"):
        if os.path.isfile(path) and not args.overwrite:
            raise UserError(f"{path} exists; it is not overwritten: pass --overwrite to replace it, or give "
                            "another output path")


@cli_entry
def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command == "synth":
        from kerasflow.data.synthetic import make_synthetic_dataset

        options = ("classes", "videos_per_class", "frames", "size", "seed", "test_fraction", "variant")
        with value_errors_as_user_errors():
            out = make_synthetic_dataset(args.out_dir, **{name: getattr(args, name) for name in options})
        print(f"synthetic dataset ready in {out} (folder layout, train.txt / test.txt)")
        return 0
    if args.command == "check":
        return _check(args)
    _check_pack_output(args)
    start_tensorflow_quietly()  # packing writes TFRecords: TensorFlow, whose start-up notices would bury errors
    from kerasflow.data.datasets import build_index
    from kerasflow.data.tfrecord import pack_index

    index = build_index(args.dataset, args.root, split=args.split, subset=args.subset)
    summary = pack_index(
        index, args.out, short_side=args.short_side, jpeg_quality=args.jpeg_quality, on_bad_video=args.on_bad_video
    )
    print(f"packed {summary['clips']} clips into {args.out} ({len(summary['skipped'])} bad clips skipped)")
    return 0


if __name__ == "__main__":
    run_command(main)

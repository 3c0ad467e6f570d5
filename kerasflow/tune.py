"""``python -m kerasflow.tune RECIPE [--set KEY=VALUE ...] [--factor KEY=V1,V2,...]``: a search over a recipe.

The recipe's ``search:`` section says what varies (``factors``: recipe keys and their values), how
(``mode``: ``grid``, ``one_at_a_time`` or ``bayesian``) and which stages a trial trains (``stages``);
``--factor`` (repeatable) replaces its factors. Each trial is an ordinary run folder under
``trials/`` of the search folder (the recipe's ``runtime.output_dir``), which ends with
``results.csv``, ``results.md``, ``results.png`` and ``best.yaml``. Re-running the same command
resumes; with keras-tuner's KERASTUNER_* variables, a chief and its workers share one search.
"""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerasflow.cli import add_set_option, command_parser, positive_int, start_tensorflow_quietly  # noqa: E402
from kerasflow.errors import cli_entry, run_command  # noqa: E402


def parse_args(argv):
    from kerasflow.tuning.space import PLAN_LIMIT

    parser = command_parser("tune", __doc__)
    parser.add_argument("recipe", help="YAML recipe with a search: section (e.g. recipes/hmdb51-ablation.yaml) or "
                                       "an installed recipe's name (e.g. demo-ablation)")
    add_set_option(parser)
    parser.add_argument("--factor", dest="factors", action="append", default=[], metavar="KEY=V1,V2,...",
                        help="a factor and its values, e.g. --factor model.flow.iterations=10,20,30,50 "
                             "(repeatable; replaces the recipe's search.factors)")
    parser.add_argument("--max-trials", type=positive_int, help="the most trials a grid or one_at_a_time search "
                        f"may plan (default {PLAN_LIMIT}): a larger plan is refused before any work")
    return parser.parse_args(argv)


@cli_entry(interrupted="finished trials and epochs are kept; run the same command again to resume")
def main(argv=None):
    args = parse_args(argv)
    from kerasflow.tuning.space import SearchSpace

    space = SearchSpace(args.recipe, args.overrides, args.factors)  # every factor checked before TensorFlow starts
    size = space.check_plan_size(args.max_trials)
    print(f"{space.name}: a {space.search.mode} search of {size} trials"
          + (" at most (trials that make the same model run once)" if space.search.mode != "bayesian" else ""),
          flush=True)
    start_tensorflow_quietly()
    from kerasflow.tuning.report import RESULTS_MD
    from kerasflow.tuning.search import run_search

    report = run_search(space)
    if report is not None:
        print(Path(space.folder, RESULTS_MD).read_text(encoding="utf-8"))
        print("written: " + ", ".join(str(path) for path in report["files"]))
    return 0


if __name__ == "__main__":
    run_command(main)

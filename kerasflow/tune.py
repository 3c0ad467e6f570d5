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

import yaml  # noqa: E402

from kerasflow.cli import (  # noqa: E402
    add_set_option,
    command_parser,
    positive_int,
    start_tensorflow_quietly,
    value_errors_as_user_errors,
)
from kerasflow.errors import UserError, cli_entry, run_command  # noqa: E402


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


def parse_factor_options(options) -> dict:
    """``{key: values}`` of ``--factor KEY=V1,V2,...`` strings; each value is read as YAML, and so is a
    whole ``KEY=[...]`` list (for values that hold commas) or ``KEY={min: ..., max: ...}`` range."""
    factors = {}
    for option in options:
        key, separator, text = option.partition("=")
        key = key.strip()
        if not separator or not key:
            raise UserError(f"--factor {option!r}: expected KEY=V1,V2,..., e.g. --factor model.flow.iterations=10,20")
        if key in factors:
            raise UserError(f"--factor {key} is given twice; give each factor once")
        whole = text.strip().startswith(("[", "{"))
        parts = [text] if whole else text.split(",") if text.strip() else []
        try:
            values = [yaml.safe_load(part) for part in parts]
        except yaml.YAMLError:
            raise UserError(f"--factor {option!r}: the values are not valid YAML") from None
        factors[key] = values[0] if whole else values
    return factors


@cli_entry(interrupted="finished trials and epochs are kept; run the same command again to resume")
def main(argv=None):
    args = parse_args(argv)
    from kerasflow.tuning.space import SearchSpace

    # every factor checked before TensorFlow starts
    space = SearchSpace(args.recipe, args.overrides, parse_factor_options(args.factors))
    with value_errors_as_user_errors({"max_trials": "--max-trials"}):
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

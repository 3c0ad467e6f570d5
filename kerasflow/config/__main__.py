"""python -m kerasflow.config reference: print every recipe key (default, what it accepts, what it means).

The reference is Markdown; ``python -m kerasflow.config reference > docs/recipe-keys.md`` writes the page."""

from kerasflow.cli import command_parser
from kerasflow.errors import cli_entry


def _parser():
    parser = command_parser("config", __doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("reference", help="print the recipe key reference as Markdown (docs/recipe-keys.md)")
    return parser


@cli_entry
def main(argv=None):
    _parser().parse_args(argv)
    from kerasflow.config.reference import recipe_key_reference

    print(recipe_key_reference(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

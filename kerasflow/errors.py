"""User-facing errors: one line naming the file, key or value and what to do, then a non-zero exit."""

import functools
import sys


class UserError(Exception):
    """An error the user can fix (bad recipe, missing file, corrupt video...).

    Its message is a single line that names the culprit and says what to do. CLIs print it as
    ``error: <message>`` and exit with status 2 instead of showing a traceback.
    """


def cli_entry(main):
    """Decorate a CLI ``main(argv)`` so that a ``UserError`` ends in one line on stderr and exit 2."""

    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            return main(argv)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper

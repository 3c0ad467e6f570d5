"""``python -m kerasflow.fit``: runs the command ``kerasflow.fit_command``.

``kerasflow.fit`` is the API function (``kerasflow.api.fit``), so this module is only ever run, never
imported: importing a package's submodule binds it as the package's attribute, which would replace the
function. ``import kerasflow.fit`` therefore fails with a pointer to what to import instead.
"""

if __name__ != "__main__":
    raise ImportError("kerasflow.fit is the function kerasflow.api.fit (from kerasflow import fit); the command's "
                      "module is kerasflow.fit_command, run as python -m kerasflow.fit")

from kerasflow.errors import run_command  # noqa: E402
from kerasflow.fit_command import main  # noqa: E402

run_command(main)

"""Thin entry point: ``python tools/convert_weights.py ...`` is ``python -m kerasflow.convert_weights ...`` (see that module)."""

from kerasflow.convert_weights import main

if __name__ == "__main__":
    raise SystemExit(main())

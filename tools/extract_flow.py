"""Thin entry point: ``python tools/extract_flow.py ...`` is ``python -m kerasflow.extract_flow ...`` (see that module)."""

from kerasflow.extract_flow import main

if __name__ == "__main__":
    raise SystemExit(main())

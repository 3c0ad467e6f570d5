"""Thin entry point: ``python tools/benchmark.py ...`` is ``python -m kerasflow.benchmark ...`` (see that module)."""

from kerasflow.benchmark import main

if __name__ == "__main__":
    raise SystemExit(main())

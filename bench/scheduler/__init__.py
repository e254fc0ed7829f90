"""Scheduler benchmarks: in-memory placement and the end-to-end control path.

Run ``.venv/bin/python -m bench.scheduler`` (or ``.venv/bin/python bench/scheduler/run.py``)
from the repository root; ``--help`` lists the sizes that can be changed.
"""

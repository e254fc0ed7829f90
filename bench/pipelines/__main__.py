"""``python -m bench.pipelines``: see run.py."""

from bench.pipelines.run import main

main()

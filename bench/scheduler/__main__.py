"""``python -m bench.scheduler``: see run.py."""

from bench.scheduler.run import main

main()

"""``python -m bench.autoscaler``: see run.py."""

from bench.autoscaler.run import main

main()

"""``python -m bench.gateway``: see run.py."""

from bench.gateway.run import main

main()

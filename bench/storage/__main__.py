"""``python -m bench.storage``: see run.py."""

from bench.storage.run import main

main()

"""The gateway process of the benchmark: ``modelplane run gateway``, optionally on uvloop.

``python -m bench.gateway.gateway_process [--uvloop]``. Without the flag this is exactly what
``modelplane run gateway`` runs; with it the same code runs on uvloop's event loop (installed
as the loop policy before ``asyncio.run``), so the benchmark can show what the event loop costs
without editing the gateway.
"""

from __future__ import annotations

import sys


def main() -> None:
    if "--uvloop" in sys.argv[1:]:
        import uvloop

        uvloop.install()
    from modelplane.cli.main import cli

    cli(["run", "gateway"], prog_name="modelplane")


if __name__ == "__main__":
    main()

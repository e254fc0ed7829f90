"""The gateway process of the benchmark: exactly what ``modelplane run gateway`` runs.

``python -m bench.gateway.gateway_process``; a module of its own so that the benchmark can start it
under cProfile (``python -m cProfile -o ... -m bench.gateway.gateway_process``).
"""

from __future__ import annotations


def main() -> None:
    from modelplane.cli.main import cli

    cli(["run", "gateway"], prog_name="modelplane")


if __name__ == "__main__":
    main()

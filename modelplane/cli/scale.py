"""`modelplane model scale` and `modelplane server scale`: one command, made per kind."""

from __future__ import annotations

import click

from modelplane.cli.client import ApiClient, api_option
from modelplane.cli.manifest_files import resource_ref


def scale_command(kind: str) -> click.Command:
    """``scale NAME --replicas N`` for ``kind`` (Model or Server)."""
    noun = kind.lower()

    @click.command(
        "scale",
        help=(
            f"Set a {kind}'s replicas, nothing else (like kubectl scale). An autoscaled {noun} goes"
            " on following its load from there."
        ),
    )
    @click.argument("name")
    @click.option("--replicas", type=click.IntRange(min=0), required=True, help="The replicas to run.")
    @api_option
    def scale(name: str, replicas: int, api_address: str) -> None:
        with ApiClient(api_address) as api:
            reply = api.scale(kind, name, replicas)
        click.echo(f"{resource_ref(kind, name)} scaled to {replicas} replicas ({reply.outcome})")

    return scale

"""`modelplane server ...`: list servers and show one server's replicas."""

from __future__ import annotations

import click
from google.protobuf import json_format

from modelplane.cli.client import ApiClient, api_option
from modelplane.cli.render import OUTPUT_FORMATS, replica_summary, structured, table
from modelplane.cli.scale import scale_command

KIND = "Server"


@click.group()
def server() -> None:
    """Inspect model servers and their replicas."""


@server.command("list")
@api_option
def list_servers(api_address: str) -> None:
    """List servers with their state and replica counts."""
    with ApiClient(api_address) as api:
        # Servers are cluster-wide: every namespace's models share them.
        servers = {r.server.meta.name: r.server for r in api.list(KIND).resources}
        statuses = {s.name: s for s in api.statuses_here(KIND)}
    rows = []
    for name in sorted(servers.keys() | statuses.keys()):
        spec = servers[name].spec if name in servers else None
        st = statuses.get(name)
        rows.append(
            [
                name,
                (st.state if st else "") or "Unknown",
                f"{st.available_replicas if st else 0}/{spec.replicas if spec else 0}",
                (spec.server_config if spec else "") or "-",
                (st.reason if st else "") or "-",
            ]
        )
    click.echo(table(["NAME", "STATE", "READY", "SERVERCONFIG", "REASON"], rows))


@server.command()
@click.argument("name")
@click.option(
    "-o", "--output", type=click.Choice(OUTPUT_FORMATS), help="Print status and replicas as yaml or json."
)
@api_option
def status(name: str, output: str | None, api_address: str) -> None:
    """Show a server's state, pending scale request and each replica: memory, models, draining."""
    with ApiClient(api_address) as api:
        current = api.get_status(KIND, name).status
        replicas = api.server_replicas(name).replicas
    if output:
        data = {
            "status": json_format.MessageToDict(current),
            "replicas": [json_format.MessageToDict(r) for r in replicas],
        }
        click.echo(structured(data, output))
        return
    lines = [f"server/{name}: {current.state or 'Unknown'}"]
    if current.reason:
        lines.append(f"  reason: {current.reason}")
    lines.append(f"  scale request: {current.scale_request or '-'}")
    lines.append(f"  replicas registered: {len(replicas)}")
    booked = {r.index: r for r in current.replicas}
    lines.extend(replica_summary(r, booked.get(r.index)) for r in replicas)
    click.echo("\n".join(lines))


server.add_command(scale_command(KIND))

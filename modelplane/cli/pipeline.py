"""`modelplane pipeline ...`: load, unload, status, list (Seldon's pipeline commands).

A Pipeline's state is computed by the api from what the dataflow workers report and from its
models' states (``dataflow_commands``). Commands that call a pipeline or read its stream (infer,
inspect) are added to the ``pipeline`` group below.
"""

from __future__ import annotations

import json

import click

from modelplane.cli.client import ApiClient, GatewayClient, api_option, gateway_option
from modelplane.cli.dataflow_commands import dataflow_group
from modelplane.cli.model import infer_body

KIND = "Pipeline"

pipeline = dataflow_group(
    KIND,
    "pipeline",
    "Load Seldon v2 Pipelines (model steps joined by tensor references) and see their state.",
)


@pipeline.command()
@click.argument("name")
@click.argument("data", required=False)
@click.option("-f", "--filename", help="File holding the V2 JSON request body; - for stdin.")
@gateway_option
def infer(name: str, data: str | None, filename: str | None, gateway_url: str | None) -> None:
    """Send a V2 inference request (JSON) to a pipeline through the gateway; print its answer."""
    body = infer_body(data, filename)
    response = GatewayClient(gateway_url).request("POST", f"/v2/pipelines/{name}/infer", body)
    click.echo(json.dumps(response, indent=2))


@pipeline.command()
@click.argument("name")
@click.option("--step", default="", help="Only this step (default: the request, the answer and every step).")
@click.option("--request-id", default="", help="This request (default: the latest one).")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@api_option
def inspect(name: str, step: str, request_id: str, output: str, api_address: str) -> None:
    """Print the last messages of a pipeline: what each step was sent and answered (Seldon's
    `pipeline inspect`), read from the dataflow stream."""
    with ApiClient(api_address) as api:
        found = api.inspect_pipeline(name, step, request_id)
    records = [
        {"step": r.step or name, "port": r.port, "time": r.time, "message": json.loads(r.json or "null")}
        for r in found.records
    ]
    if output == "json":
        click.echo(json.dumps({"request_id": found.request_id, "records": records}, indent=2))
        return
    click.echo(f"request {found.request_id}")
    for record in records:
        where = f"{name}.{record['port']}" if record["step"] == name else f"{record['step']}.{record['port']}"
        click.echo(f"{where}\t{json.dumps(record['message'], separators=(',', ':'))}")

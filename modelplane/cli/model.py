"""`modelplane model ...`: load, unload, status (with wait), list, infer, metadata (Seldon-like)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import grpc

from modelplane.cli.client import (
    ApiClient,
    CommandFailed,
    GatewayClient,
    InvalidInput,
    api_option,
    gateway_option,
)
from modelplane.cli.manifest_files import read_documents, resource_ref
from modelplane.cli.progress import BarDisplay, Display, ModelDeleted, Outcome, PlainDisplay, follow_load
from modelplane.cli.render import OUTPUT_FORMATS, status_summary, structured, table
from modelplane.cli.scale import scale_command
from modelplane.libs.resources.namespacing import user_name
from modelplane.proto import control_pb2, state_pb2

KIND = "Model"


def wanted_states(state: str) -> set[str]:
    """The status names ``-w STATE`` accepts: ``ModelAvailable`` and the short ``Available``."""
    lowered = state.strip().lower()
    return {lowered, lowered if lowered.startswith("model") else f"model{lowered}"}


def _reached(status: state_pb2.ResourceStatus, wanted: set[str]) -> bool:
    return status.state.lower() in wanted


@click.group()
def model() -> None:
    """Load, inspect and call models."""


@model.command()
@click.option(
    "-f", "--filename", "filenames", multiple=True, required=True, help="Model manifest(s); - for stdin."
)
@click.option(
    "--no-wait",
    is_flag=True,
    help="Return once the api has accepted the manifests, without following the load.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    help="Seconds to wait for every model to be ModelAvailable (exit 1 after).",
)
@api_option
def load(filenames: tuple[str, ...], no_wait: bool, timeout: float, api_address: str) -> None:
    """Create or update Models from manifests (native or Seldon v2 Model YAML, unchanged).

    Then follow each model until it is ModelAvailable, with its download progress (a bar on a
    terminal, a line per phase otherwise). Exit 0 once all are available, 1 when one fails or
    the timeout passes; --no-wait returns right after the api accepted them.
    """
    docs = read_documents(filenames)
    for doc in docs:
        if doc.kind != KIND:
            raise InvalidInput(f"{doc.where}: kind: `model load` takes Model manifests, got {doc.kind!r}")
    with ApiClient(api_address) as api:
        applied: list[tuple[str, int]] = []
        for doc in docs:
            reply = api.apply(doc.body, context=doc.where)
            meta = reply.resource.model.meta
            click.echo(f"{resource_ref(KIND, user_name(meta.name, meta.namespace))} {reply.outcome}")
            applied.append((meta.name, meta.generation))
        if no_wait:
            return
        deadline = time.monotonic() + timeout
        for name, generation in applied:
            _follow(api, name, generation, deadline, timeout)


def _display() -> Display:
    if sys.stdout.isatty():
        return BarDisplay(sys.stdout)
    return PlainDisplay(click.echo)


def _follow(api: ApiClient, name: str, generation: int, deadline: float, timeout: float) -> None:
    events = _until_deadline(api, api.follow_model(name, timeout=max(0.001, deadline - time.monotonic())))
    try:
        outcome, last = follow_load(events, name, generation, _display())
    except ModelDeleted as exc:
        raise CommandFailed(str(exc)) from None
    if outcome is Outcome.READY:
        return
    reason = f" ({last.reason})" if last.reason else ""
    if outcome is Outcome.FAILED:
        raise CommandFailed(f"model {name} failed to load: it is {last.state}{reason}")
    raise CommandFailed(
        f"timed out after {timeout:g}s waiting for model {name} to be ModelAvailable: "
        f"it is {last.state or 'Unknown'}{reason}; it goes on loading "
        f"(see `modelplane model status {name}`)"
    )


def _until_deadline(
    api: ApiClient, stream: Iterator[control_pb2.FollowModelEvent]
) -> Iterator[control_pb2.FollowModelEvent]:
    """The stream's events; its deadline ends it quietly, any other error is a CommandFailed."""
    try:
        yield from stream
    except grpc.RpcError as exc:
        if not (isinstance(exc, grpc.Call) and exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED):
            raise api.failure(exc) from None


@model.command()
@click.argument("name")
@api_option
def unload(name: str, api_address: str) -> None:
    """Delete a Model: its replicas are unloaded from the servers."""
    with ApiClient(api_address) as api:
        reply = api.delete(KIND, name)
    click.echo(f"{resource_ref(KIND, name)} {reply.outcome}")


@model.command()
@click.argument("name")
@click.option(
    "-w",
    "--wait",
    "wait_for",
    metavar="STATE",
    help="Wait until the model is in STATE (e.g. ModelAvailable).",
)
@click.option(
    "--timeout", type=click.FloatRange(min=0), default=120.0, show_default=True, help="Seconds -w waits."
)
@click.option("-o", "--output", type=click.Choice(OUTPUT_FORMATS), help="Print the status as yaml or json.")
@api_option
def status(name: str, wait_for: str | None, timeout: float, output: str | None, api_address: str) -> None:
    """Show a model's status; with -w, wait for a state first (exit 1 on timeout)."""
    with ApiClient(api_address) as api:
        current = api.get_status(KIND, name).status
        if wait_for and not _reached(current, wanted_states(wait_for)):
            current = _wait(api, name, current, wanted_states(wait_for), wait_for, timeout)
    click.echo(structured(current, output) if output else status_summary(current))


def _wait(
    api: ApiClient,
    name: str,
    current: state_pb2.ResourceStatus,
    wanted: set[str],
    label: str,
    timeout: float,
) -> state_pb2.ResourceStatus:
    deadline = time.monotonic() + timeout
    try:
        for event in api.watch_status(KIND, name, timeout=max(0.001, deadline - time.monotonic())):
            if event.type == "DELETE":
                continue
            current = event.status
            if _reached(current, wanted):
                return current
    except grpc.RpcError as exc:
        if not (isinstance(exc, grpc.Call) and exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED):
            raise api.failure(exc) from None
    reason = f" ({current.reason})" if current.reason else ""
    raise CommandFailed(
        f"timed out after {timeout:g}s waiting for model {name} to be {label}: "
        f"it is {current.state or 'Unknown'}{reason}"
    )


@model.command("list")
@api_option
def list_models(api_address: str) -> None:
    """List models with their state."""
    with ApiClient(api_address) as api:
        statuses = api.statuses_here(KIND)
    rows = [
        [
            s.name,
            s.state or "Unknown",
            f"{s.available_replicas}/{s.total_replicas}",
            s.version or "-",
            s.reason or "-",
        ]
        for s in statuses
    ]
    click.echo(table(["NAME", "STATE", "AVAILABLE", "VERSION", "REASON"], rows))


def infer_body(data: str | None, filename: str | None) -> Any:
    if (data is None) == (filename is None):
        raise click.UsageError("give the request either as DATA or with -f FILE")
    source = "DATA"
    if filename is not None:
        source = filename
        try:
            data = sys.stdin.read() if filename == "-" else Path(filename).read_text()
        except OSError as exc:
            raise InvalidInput(f"{filename}: cannot read: {exc.strerror or exc}") from None
    assert data is not None
    try:
        body = json.loads(data)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{source}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(body, dict):
        raise InvalidInput(f"{source}: a V2 inference request must be a JSON object")
    return body


@model.command()
@click.argument("name")
@click.argument("data", required=False)
@click.option("-f", "--filename", help="File holding the V2 JSON request body; - for stdin.")
@gateway_option
def infer(name: str, data: str | None, filename: str | None, gateway_url: str | None) -> None:
    """Send a V2 inference request (JSON) to a model through the gateway; print the response."""
    body = infer_body(data, filename)
    response = GatewayClient(gateway_url).request("POST", f"/v2/models/{name}/infer", body)
    click.echo(json.dumps(response, indent=2))


@model.command()
@click.argument("name")
@gateway_option
def metadata(name: str, gateway_url: str | None) -> None:
    """Print a model's V2 metadata (inputs, outputs, platform) from the gateway."""
    click.echo(json.dumps(GatewayClient(gateway_url).request("GET", f"/v2/models/{name}"), indent=2))


model.add_command(scale_command(KIND))

"""The commands Pipelines and InferenceGraphs share: load, unload, status (with wait), list.

``pipeline.py`` and ``graph.py`` each build their group with ``dataflow_group`` and add their
own commands to it. Both kinds report Seldon's pipeline states (PipelineCreating,
PipelineReady, PipelineFailed, PipelineTerminating) with two conditions: PipelineReady (a
dataflow worker runs the current generation) and ModelsReady (every model it calls is
ModelAvailable). Their status is computed by the api on read, not watched, so ``-w`` polls it.
"""

from __future__ import annotations

import time
from typing import Final

import click
from google.protobuf import json_format

from modelplane.cli.client import ApiClient, CommandFailed, InvalidInput, api_option
from modelplane.cli.manifest_files import read_documents, resource_ref
from modelplane.cli.render import OUTPUT_FORMATS, structured, table
from modelplane.libs.resources.namespacing import user_name
from modelplane.proto import state_pb2

# Seconds between two GetStatus calls while -w waits.
POLL_INTERVAL: Final = 0.5
STATE_PREFIX: Final = "pipeline"


def wanted_states(state: str) -> set[str]:
    """What ``-w STATE`` accepts: ``PipelineReady`` and the short ``Ready`` (any case)."""
    lowered = state.strip().lower()
    return {lowered if lowered.startswith(STATE_PREFIX) else f"{STATE_PREFIX}{lowered}"}


def status_text(status: state_pb2.ResourceStatus) -> str:
    """State, reason, models and both conditions, one per line."""
    lines = [f"{resource_ref(status.kind, status.name)}: {status.state or 'Unknown'}"]
    if status.reason:
        lines.append(f"  reason: {status.reason}")
    lines.append(f"  models available: {status.available_replicas}/{status.total_replicas}")
    if status.generation:
        running = status.observed_generation or "none"
        lines.append(f"  generation: {status.generation} (dataflow runs: {running})")
    for condition in status.conditions:
        reason = f" ({condition.reason})" if condition.reason else ""
        lines.append(f"  {condition.type}: {condition.status}{reason}")
    if status.last_change:
        lines.append(f"  last change: {status.last_change}")
    return "\n".join(lines)


def _wait(
    api: ApiClient, kind: str, name: str, current: state_pb2.ResourceStatus, wanted: str, timeout: float
) -> state_pb2.ResourceStatus:
    states = wanted_states(wanted)
    deadline = time.monotonic() + timeout
    while current.state.lower() not in states:
        left = deadline - time.monotonic()
        if left <= 0:
            reason = f" ({current.reason})" if current.reason else ""
            raise CommandFailed(
                f"timed out after {timeout:g}s waiting for {resource_ref(kind, name)} to be {wanted}: "
                f"it is {current.state or 'Unknown'}{reason}"
            )
        time.sleep(min(POLL_INTERVAL, left))
        current = api.get_status(kind, name).status
    return current


def dataflow_group(kind: str, group_name: str, help_text: str) -> click.Group:
    """A click group with load / unload / status / list for ``kind``."""
    plural = f"{kind}s"
    one = f"an {kind}" if kind[0] in "AEIOU" else f"a {kind}"

    @click.group(name=group_name, help=help_text)
    def group() -> None:
        pass

    @group.command(help=f"Create or update {plural} from manifests (use `status -w` to wait for them).")
    @click.option(
        "-f",
        "--filename",
        "filenames",
        multiple=True,
        required=True,
        help=f"{kind} manifest(s); - for stdin.",
    )
    @api_option
    def load(filenames: tuple[str, ...], api_address: str) -> None:
        docs = read_documents(filenames)
        for doc in docs:
            if doc.kind != kind:
                raise InvalidInput(
                    f"{doc.where}: kind: `{group_name} load` takes {kind} manifests, got {doc.kind!r}"
                )
        with ApiClient(api_address) as api:
            for doc in docs:
                reply = api.apply(doc.body, context=doc.where)
                which = reply.resource.WhichOneof("kind") or ""
                meta = getattr(reply.resource, which).meta
                click.echo(f"{resource_ref(kind, user_name(meta.name, meta.namespace))} {reply.outcome}")

    @group.command(help=f"Delete {one}: the dataflow workers stop running it.")
    @click.argument("name")
    @api_option
    def unload(name: str, api_address: str) -> None:
        with ApiClient(api_address) as api:
            reply = api.delete(kind, name)
        click.echo(f"{resource_ref(kind, name)} {reply.outcome}")

    @group.command(help=f"Show {one}'s state, its reason and both conditions (every {kind} without NAME).")
    @click.argument("name", required=False)
    @click.option(
        "-w",
        "--wait",
        "wait_for",
        metavar="STATE",
        help="Wait until it is in STATE (e.g. PipelineReady or Ready); needs NAME.",
    )
    @click.option(
        "--timeout", type=click.FloatRange(min=0), default=120.0, show_default=True, help="Seconds -w waits."
    )
    @click.option(
        "-o", "--output", type=click.Choice(OUTPUT_FORMATS), help="Print the status as yaml or json."
    )
    @api_option
    def status(
        name: str | None, wait_for: str | None, timeout: float, output: str | None, api_address: str
    ) -> None:
        if wait_for and not name:
            raise InvalidInput("-w needs a NAME")
        with ApiClient(api_address) as api:
            if name is None:
                statuses = api.statuses_here(kind)
            else:
                current = api.get_status(kind, name).status
                if wait_for:
                    current = _wait(api, kind, name, current, wait_for, timeout)
                statuses = [current]
        if output:
            items = [json_format.MessageToDict(s) for s in statuses]
            click.echo(structured(items[0] if name else {"items": items}, output))
        else:
            click.echo("\n".join(status_text(s) for s in statuses))

    @group.command("list", help=f"List {plural} with their state, available models and reason.")
    @api_option
    def list_all(api_address: str) -> None:
        with ApiClient(api_address) as api:
            statuses = api.statuses_here(kind)
        rows = [
            [
                s.name,
                s.state or "Unknown",
                f"{s.available_replicas}/{s.total_replicas}",
                s.generation or "-",
                s.reason or "-",
            ]
            for s in statuses
        ]
        click.echo(table(["NAME", "STATE", "MODELS", "GENERATION", "REASON"], rows))

    return group

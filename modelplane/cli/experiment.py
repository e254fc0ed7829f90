"""`modelplane experiment ...`: start, stop, status, list (Seldon's experiment commands).

An experiment's state is derived by the api from its members' model states (ExperimentReady once
every candidate and the mirror is ModelAvailable); the gateways apply it as soon as it is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from google.protobuf import json_format

from modelplane.cli.client import ApiClient, InvalidInput, api_option
from modelplane.cli.manifest_files import read_documents, resource_ref
from modelplane.cli.render import OUTPUT_FORMATS, structured, table
from modelplane.libs.resources.convert import resource_from_pb
from modelplane.libs.resources.manifests import to_manifest
from modelplane.libs.resources.namespacing import user_name
from modelplane.proto import resources_pb2

KIND = "Experiment"


def _candidates(spec: resources_pb2.ExperimentSpec, shown: Callable[[str], str]) -> str:
    return ", ".join(f"{shown(c.name)} ({c.weight})" for c in spec.candidates) or "-"


def _mirror(spec: resources_pb2.ExperimentSpec, shown: Callable[[str], str]) -> str:
    return f"{shown(spec.mirror.name)} ({spec.mirror.percent}%)" if spec.HasField("mirror") else "-"


@click.group()
def experiment() -> None:
    """Split a model's traffic over candidates by weight, and mirror a share of it."""


@experiment.command()
@click.option(
    "-f", "--filename", "filenames", multiple=True, required=True, help="Experiment manifest(s); - for stdin."
)
@api_option
def start(filenames: tuple[str, ...], api_address: str) -> None:
    """Create or update Experiments from manifests (native or Seldon v2 Experiment YAML)."""
    docs = read_documents(filenames)
    for doc in docs:
        if doc.kind != KIND:
            raise InvalidInput(
                f"{doc.where}: kind: `experiment start` takes Experiment manifests, got {doc.kind!r}"
            )
    with ApiClient(api_address) as api:
        for doc in docs:
            reply = api.apply(doc.body, context=doc.where)
            meta = reply.resource.experiment.meta
            click.echo(f"{resource_ref(KIND, user_name(meta.name, meta.namespace))} {reply.outcome}")


@experiment.command()
@click.argument("name")
@api_option
def stop(name: str, api_address: str) -> None:
    """Delete an Experiment: its default model gets all of its own traffic again."""
    with ApiClient(api_address) as api:
        reply = api.delete(KIND, name)
    click.echo(f"{resource_ref(KIND, name)} {reply.outcome}")


@experiment.command()
@click.argument("name")
@click.option(
    "-o", "--output", type=click.Choice(OUTPUT_FORMATS), help="Print spec and status as yaml or json."
)
@api_option
def status(name: str, output: str | None, api_address: str) -> None:
    """Show an experiment's state, its candidates and mirror, and which are not ready."""
    with ApiClient(api_address) as api:
        found = api.get(KIND, name)
        spec = found.experiment.spec
        current = api.get_status(KIND, name).status
        shown = api.shown
    if output:
        data: dict[str, Any] = {
            # As its user wrote it (to_manifest gives back the names of its namespace).
            "spec": to_manifest(resource_from_pb(found))["spec"],
            "status": json_format.MessageToDict(current),
        }
        click.echo(structured(data, output))
        return
    lines = [
        f"experiment/{name}: {current.state or 'Unknown'}",
        f"  default: {shown(spec.default) if spec.default else '-'}",
        f"  candidates: {_candidates(spec, shown)}",
        f"  mirror: {_mirror(spec, shown)}",
        f"  ready: {current.available_replicas}/{current.total_replicas}",
    ]
    if current.reason:
        lines.append(f"  reason: {current.reason}")
    click.echo("\n".join(lines))


@experiment.command("list")
@api_option
def list_experiments(api_address: str) -> None:
    """List experiments with their state, default, candidates and mirror."""
    with ApiClient(api_address) as api:
        specs = {
            api.shown(r.experiment.meta.name): r.experiment.spec
            for r in api.list(KIND).resources
            if (r.experiment.meta.namespace or "default") == api.namespace
        }
        statuses = {s.name: s for s in api.statuses_here(KIND)}
    rows = []
    for name in sorted(specs):
        spec, st = specs[name], statuses.get(name)
        rows.append(
            [
                name,
                (st.state if st else "") or "Unknown",
                api.shown(spec.default) if spec.default else "-",
                _candidates(spec, api.shown),
                _mirror(spec, api.shown),
            ]
        )
    click.echo(table(["NAME", "STATE", "DEFAULT", "CANDIDATES", "MIRROR"], rows))

"""`modelplane get`, `modelplane list` and `modelplane convert`: every kind, native or foreign.

A foreign resource (InferenceService, SeldonDeployment, ...) is shown as it was applied, with
its status in its own kind's shape; a native one as its manifest with the native status.
`convert` runs the importers locally (no api needed) and prints the native resources a file's
manifests become, with the importers' notes (runtime chosen, defaults filled) and what does not
run locally, as YAML comments (or fields, with ``-o json``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import click
import yaml
from google.protobuf import json_format

from modelplane.cli.client import ApiClient, CommandFailed, InvalidInput, api_option
from modelplane.cli.manifest_files import FILES_HELP, read_documents
from modelplane.cli.render import OUTPUT_FORMATS, table
from modelplane.libs.errors import ModelplaneError
from modelplane.libs.resources import importers
from modelplane.libs.resources.convert import resource_from_pb
from modelplane.libs.resources.importers.base import (
    DEFAULT_NAMESPACE,
    ForeignDocument,
    ForeignRef,
    Importer,
)
from modelplane.libs.resources.importers.namespaces import translate_in_namespace
from modelplane.libs.resources.manifests import parse_manifest, to_manifest
from modelplane.libs.resources.namespacing import CLUSTER_WIDE, user_name
from modelplane.libs.resources.types import KINDS
from modelplane.proto import control_pb2

__all__ = ["convert", "get", "list_resources", "wait"]

# Seconds between two reads while `wait` polls (the api answers from memory and KV).
WAIT_POLL_SECONDS = 0.5
# Native states that mean ready, by kind.
_READY_STATES = {
    "Model": "ModelAvailable",
    "Server": "ServerReady",
    "Pipeline": "PipelineReady",
    "InferenceGraph": "PipelineReady",
    "Experiment": "ExperimentReady",
}

OUTPUT_OPTION = click.option(
    "-o", "--output", type=click.Choice(OUTPUT_FORMATS), help="Print the whole resource as YAML or JSON."
)


def _foreign_dict(foreign: control_pb2.ForeignResource) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(foreign.manifest_json or "{}")
    if foreign.status_json:
        manifest["status"] = json.loads(foreign.status_json)
    return manifest


def _dump(data: Any, output: str) -> str:
    if output == "json":
        return json.dumps(data, indent=2)
    if isinstance(data, list):
        return "\n---\n".join(yaml.safe_dump(d, sort_keys=False).rstrip() for d in data)
    return yaml.safe_dump(data, sort_keys=False).rstrip()


def foreign_summary(status: Mapping[str, Any]) -> tuple[str, str]:
    """(state, detail) of a foreign status: Seldon v1's ``state``, else the Ready condition."""
    if "state" in status:
        return str(status.get("state") or "Unknown"), str(status.get("description") or "")
    for condition in status.get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            ready = str(condition.get("status")) == "True"
            detail = " ".join(str(condition.get(k) or "") for k in ("reason", "message")).strip()
            return ("Ready" if ready else "NotReady"), detail
    return "Unknown", ""


@click.command()
@click.argument("kind")
@click.argument("name")
@OUTPUT_OPTION
@api_option
def get(kind: str, name: str, output: str | None, api_address: str) -> None:
    """Show one resource of any kind (``isvc``, ``sdep``, ``model``, ...) with its status."""
    with ApiClient(api_address) as api:
        reply = api.get(kind, name)
        which = reply.WhichOneof("kind")
        if which == "foreign":
            data = _foreign_dict(reply.foreign)
            if output:
                click.echo(_dump(data, output))
                return
            state, detail = foreign_summary(data.get("status") or {})
            click.echo(
                f"{reply.foreign.kind.lower()}/{reply.foreign.name} ({reply.foreign.namespace}): {state}"
            )
            if detail:
                click.echo(f"  {detail}")
            url = (data.get("status") or {}).get("url") or (
                (data.get("status") or {}).get("address") or {}
            ).get("url")
            if url:
                click.echo(f"  url: {url}")
            for problem in reply.foreign.problems:
                click.echo(f"  not served locally: {problem.field}: {problem.reason}: {problem.message}")
            for owned in reply.foreign.owned:
                click.echo(f"  owns {owned.kind.lower()}/{owned.name}")
            return
        resource = resource_from_pb(reply)
        status = api.get_status(resource.kind, resource.meta.name).status
        if output:
            data = to_manifest(resource)
            data["status"] = json_format.MessageToDict(status)
            click.echo(_dump(data, output))
            return
        shown = user_name(resource.meta.name, resource.meta.namespace)
        click.echo(f"{resource.kind.lower()}/{shown}: {status.state or 'Unknown'}")
        if status.reason:
            click.echo(f"  {status.reason}")
        if resource.meta.owner:
            click.echo(f"  owned by {resource.meta.owner}")


@click.command()
@click.argument("kind")
@click.argument("name")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait (exit 1 after).")
@api_option
def wait(kind: str, name: str, timeout: float, api_address: str) -> None:
    """Wait until a resource is ready, like `kubectl wait --for=condition=Ready`: a foreign one's
    Ready condition (or Seldon's state Available), a native one's ready state."""
    deadline = time.monotonic() + timeout
    state, detail = "Unknown", ""
    with ApiClient(api_address) as api:
        while True:
            reply = api.get(kind, name)
            if reply.WhichOneof("kind") == "foreign":
                state, detail = foreign_summary(json.loads(reply.foreign.status_json or "{}"))
                ready = state in ("Ready", "Available")
                label = f"{reply.foreign.kind.lower()}/{reply.foreign.name}"
            else:
                resource = resource_from_pb(reply)
                status = api.get_status(resource.kind, resource.meta.name).status
                state, detail = status.state or "Unknown", status.reason
                ready = state == _READY_STATES.get(resource.kind)
                label = f"{resource.kind.lower()}/{user_name(resource.meta.name, resource.meta.namespace)}"
            if ready:
                click.echo(f"{label} {state}")
                return
            if time.monotonic() >= deadline:
                raise CommandFailed(
                    f"timed out after {timeout:g}s waiting for {label}: {state}"
                    + (f" ({detail})" if detail else "")
                )
            time.sleep(WAIT_POLL_SECONDS)


@click.command("list")
@click.argument("kind", required=False)
@click.option("-A", "--all-namespaces", is_flag=True, help="Resources of every namespace.")
@api_option
def list_resources(kind: str | None, all_namespaces: bool, api_address: str) -> None:
    """List resources of one kind, or of every kind, with their state."""
    kinds = [kind] if kind else [*KINDS, *importers.foreign_kinds()]
    rows: list[tuple[str, str, str, str]] = []
    with ApiClient(api_address) as api:
        for each in kinds:
            reply = api.list(each)
            natives = [r for r in reply.resources if r.WhichOneof("kind") not in ("foreign", "server_config")]
            statuses = {}
            if natives:
                statuses = {s.name: s for s in api.list_status(each).statuses}
            for item in reply.resources:
                if item.WhichOneof("kind") == "foreign":
                    foreign = item.foreign
                    if not all_namespaces and foreign.namespace not in (api.namespace, ""):
                        continue
                    state, detail = foreign_summary(json.loads(foreign.status_json or "{}"))
                    rows.append(
                        (f"{foreign.kind.lower()}/{foreign.name}", foreign.namespace or "-", state, detail)
                    )
                    continue
                resource = resource_from_pb(item)
                status = statuses.get(resource.meta.name)
                owner = f"owned by {resource.meta.owner}" if resource.meta.owner else ""
                if resource.kind == "ServerConfig":  # cluster-wide templates: nothing runs as them
                    rows.append((f"serverconfig/{resource.meta.name}", "-", "-", owner))
                    continue
                if resource.kind in CLUSTER_WIDE:  # shared by every namespace
                    namespace = "-"
                else:
                    namespace = resource.meta.namespace or DEFAULT_NAMESPACE
                    if not all_namespaces and namespace != api.namespace:
                        continue
                detail = "; ".join(d for d in ((status.reason if status else ""), owner) if d)
                state = status.state if status is not None and status.state else "Unknown"
                name = user_name(resource.meta.name, resource.meta.namespace)
                rows.append((f"{resource.kind.lower()}/{name}", namespace, state, detail))
    if not rows:
        click.echo("No resources found.")
        return
    click.echo(table(("NAME", "NAMESPACE", "STATE", "DETAIL"), rows))


@click.command()
@click.option("-f", "--filename", "filenames", multiple=True, required=True, help=FILES_HELP)
@OUTPUT_OPTION
def convert(filenames: tuple[str, ...], output: str | None) -> None:
    """Print the native resources the manifests become (no api needed).

    Foreign manifests are translated by the same importers the api uses, seeing the other
    manifests given (a ServingRuntime in the same file) and the built-in runtimes; the
    runtimes already applied to a running modelplane are not consulted."""
    docs = read_documents(filenames)
    documents = tuple(
        ForeignDocument(_ref(importer, doc.name, doc.body), str(doc.body.get("apiVersion")), doc.body)
        for doc in docs
        if (importer := importers.importer_for(str(doc.body.get("apiVersion") or ""), doc.kind)) is not None
    )
    conversions: list[dict[str, Any]] = []
    for doc in docs:
        importer = importers.importer_for(str(doc.body.get("apiVersion") or ""), doc.kind)
        try:
            if importer is None:
                resource = parse_manifest(doc.body)
                conversions.append(
                    {"source": f"{doc.kind}/{doc.name}", "notes": ["native: stored as it is"],
                     "problems": [], "resources": [to_manifest(resource)]}
                )  # fmt: skip
                continue
            ref = _ref(importer, doc.name, doc.body)
            translation = translate_in_namespace(
                importer, ref, str(doc.body["apiVersion"]), doc.body, documents
            )
        except ModelplaneError as exc:
            raise InvalidInput(f"{doc.where}: {exc}") from None
        conversions.append(
            {
                "source": f"{doc.kind}/{doc.name}",
                "notes": list(translation.notes),
                "problems": [
                    {"field": p.field, "reason": p.reason, "message": p.message} for p in translation.problems
                ],
                "resources": [to_manifest(r) for r in translation.resources],
            }
        )
    if output == "json":
        click.echo(json.dumps(conversions, indent=2))
        return
    parts: list[str] = []
    for conversion in conversions:
        lines = [f"# {conversion['source']} becomes:"]
        lines += [f"#   {note}" for note in conversion["notes"]]
        lines += [
            f"#   not served locally: {p['field']}: {p['reason']}: {p['message']}"
            for p in conversion["problems"]
        ]
        if not conversion["resources"]:
            parts.append("\n".join([*lines, "#   (no native resources)"]))
            continue
        for index, manifest in enumerate(conversion["resources"]):
            body = yaml.safe_dump(manifest, sort_keys=False).rstrip()
            parts.append("\n".join([*lines, body]) if index == 0 else body)
    click.echo("\n---\n".join(parts))


def _ref(importer: Importer, name: str, body: Mapping[str, Any]) -> ForeignRef:
    if importer.cluster_scoped:
        return ForeignRef(importer.kind, name, "")
    metadata = body.get("metadata")
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    return ForeignRef(importer.kind, name, str(namespace or DEFAULT_NAMESPACE))

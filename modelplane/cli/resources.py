"""Resource commands: `apply`, `delete`, and the `model`, `server`, `experiment`, `pipeline` and
`graph` groups.

``main.py`` registers every command named in ``__all__``.
"""

from __future__ import annotations

import click

from modelplane.cli.client import ApiClient, api_option
from modelplane.cli.experiment import experiment
from modelplane.cli.graph import graph
from modelplane.cli.manifest_files import read_documents, resource_ref
from modelplane.cli.model import model
from modelplane.cli.pipeline import pipeline
from modelplane.cli.server import server
from modelplane.cli.token import token

__all__ = ["apply", "delete", "experiment", "graph", "model", "pipeline", "server", "token"]

# The kind named by each field of the api's Resource oneof.
_KINDS_BY_FIELD = {
    "model": "Model",
    "server": "Server",
    "server_config": "ServerConfig",
    "experiment": "Experiment",
    "pipeline": "Pipeline",
    "inference_graph": "InferenceGraph",
}

FILES_OPTION = click.option(
    "-f",
    "--filename",
    "filenames",
    multiple=True,
    required=True,
    help="A manifest file, a directory of *.yaml/*.yml/*.json, or - for stdin (repeatable).",
)


@click.command()
@FILES_OPTION
@api_option
def apply(filenames: tuple[str, ...], api_address: str) -> None:
    """Create or update the resources in the manifests (native or Seldon v2 YAML)."""
    docs = read_documents(filenames)
    with ApiClient(api_address) as api:
        for doc in docs:
            reply = api.apply(doc.body, context=doc.where)
            which = reply.resource.WhichOneof("kind") or ""
            meta = getattr(reply.resource, which).meta
            kind = _KINDS_BY_FIELD.get(which, which)
            click.echo(f"{resource_ref(kind, meta.name)} {reply.outcome}")


@click.command()
@FILES_OPTION
@api_option
def delete(filenames: tuple[str, ...], api_address: str) -> None:
    """Delete the resources named in the manifests."""
    docs = read_documents(filenames)
    with ApiClient(api_address) as api:
        for doc in docs:
            reply = api.delete(doc.kind, doc.name, context=doc.where)
            click.echo(f"{resource_ref(doc.kind, doc.name)} {reply.outcome}")

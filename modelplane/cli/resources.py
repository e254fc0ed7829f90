"""Resource commands: `apply`, `delete`, and the `model`, `server`, `experiment`, `pipeline` and
`graph` groups.

``main.py`` registers every command named in ``__all__``.
"""

from __future__ import annotations

import click

from modelplane.cli.client import ApiClient, InvalidInput, api_option
from modelplane.cli.experiment import experiment
from modelplane.cli.graph import graph
from modelplane.cli.inventory import convert, get, list_resources, wait
from modelplane.cli.manifest_files import FILES_HELP, read_documents, resource_ref
from modelplane.cli.model import model
from modelplane.cli.pipeline import pipeline
from modelplane.cli.server import server
from modelplane.cli.token import token
from modelplane.libs.resources.namespacing import user_name

__all__ = [
    "apply",
    "convert",
    "delete",
    "experiment",
    "get",
    "graph",
    "list_resources",
    "model",
    "pipeline",
    "server",
    "token",
    "wait",
]

# The kind named by each field of the api's Resource oneof.
_KINDS_BY_FIELD = {
    "model": "Model",
    "server": "Server",
    "server_config": "ServerConfig",
    "experiment": "Experiment",
    "pipeline": "Pipeline",
    "inference_graph": "InferenceGraph",
}

FILES_OPTION = click.option("-f", "--filename", "filenames", multiple=True, required=True, help=FILES_HELP)


@click.command()
@FILES_OPTION
@api_option
def apply(filenames: tuple[str, ...], api_address: str) -> None:
    """Create or update the resources in the manifests, all or nothing (native, Seldon v2 and
    v1, KServe): nothing is stored unless every manifest is valid."""
    docs = read_documents(filenames)
    with ApiClient(api_address) as api:
        reply = api.apply_all([doc.body for doc in docs], [doc.where for doc in docs])
        for item in reply.items:
            which = item.resource.WhichOneof("kind") or ""
            if which == "foreign":
                foreign = item.resource.foreign
                click.echo(f"{resource_ref(foreign.kind, foreign.name)} {item.outcome}")
                for problem in foreign.problems:
                    click.echo(f"  not served locally: {problem.field}: {problem.reason}: {problem.message}")
                continue
            meta = getattr(item.resource, which).meta
            kind = _KINDS_BY_FIELD.get(which, which)
            click.echo(f"{resource_ref(kind, user_name(meta.name, meta.namespace))} {item.outcome}")


@click.command()
@click.argument("kind_and_name", nargs=-1)
@click.option("-f", "--filename", "filenames", multiple=True, help=FILES_HELP)
@api_option
def delete(kind_and_name: tuple[str, ...], filenames: tuple[str, ...], api_address: str) -> None:
    """Delete the resources named in the manifests (``-f``), or KIND NAME."""
    if bool(filenames) == bool(kind_and_name):
        raise InvalidInput("give either -f FILE or KIND NAME")
    if kind_and_name and len(kind_and_name) != 2:
        raise InvalidInput("give KIND NAME, e.g. `modelplane delete isvc sklearn-iris`")
    with ApiClient(api_address) as api:
        if kind_and_name:
            kind, name = kind_and_name
            reply = api.delete(kind, name, context=f"{kind.lower()}/{name}")
            click.echo(f"{resource_ref(kind, name)} {reply.outcome}")
            return
        for doc in read_documents(filenames):
            metadata = doc.body.get("metadata")
            doc_namespace = metadata.get("namespace", "") if isinstance(metadata, dict) else ""
            reply = api.delete(doc.kind, doc.name, context=doc.where, namespace=str(doc_namespace or ""))
            click.echo(f"{resource_ref(doc.kind, doc.name)} {reply.outcome}")

"""How the CLI talks to the api (gRPC, synchronous) and the gateway (REST), and fails.

Design: a CLI command makes a handful of short calls, so a plain synchronous channel with short
deadlines is simplest. Every failure becomes a ``CommandFailed`` (a click exception): exactly one
line on stderr, exit 2 for invalid input (and for a field the caller's role may not set) and 1
for anything else, never a traceback.

Every api call carries a bearer token: ``--token``, else ``MODELPLANE_TOKEN``, else the admin
token `modelplane up` wrote to ``<state dir>/auth/admin.token`` (state dir from
``MODELPLANE_STATE_DIR``, else ``.modelplane``), so commands run next to `up` need no setup.
An ``https://`` address or ``--ca`` (``MODELPLANE_CA``) selects TLS, for the api and the gateway
alike: `up --tls-cert` serves both over TLS, so one CA setting is all the CLI needs then.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

import click
import grpc
from google.protobuf import struct_pb2

from modelplane.libs.auth.bearer import authorization
from modelplane.libs.auth.files import admin_token_path, read_private, state_dir_from_env
from modelplane.libs.auth.grpc_metadata import bearer_metadata
from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.namespacing import DEFAULT_NAMESPACE, user_name
from modelplane.libs.tls import client_ssl_context, grpc_channel_credentials
from modelplane.proto import control_pb2, control_pb2_grpc, state_pb2

DEFAULT_API = "127.0.0.1:9004"
# The gateway's header naming the namespace of a model or pipeline (services/gateway/planner.py).
SELDON_NAMESPACE_HEADER = "seldon-namespace"
DEFAULT_GATEWAY = "http://127.0.0.1:9000"
DEFAULT_GATEWAY_TLS = "https://127.0.0.1:9000"
# Seconds one unary api call may take; the api answers from KV in milliseconds.
CALL_TIMEOUT = 10.0
# Seconds one gateway request may take (a model may be loading on demand).
GATEWAY_TIMEOUT = 60.0

EXIT_FAILURE = 1
EXIT_INVALID = 2

F = TypeVar("F", bound=Callable[..., Any])


class CommandFailed(click.ClickException):
    """A failure: one line on stderr, exit 1."""

    exit_code = EXIT_FAILURE

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


class InvalidInput(CommandFailed):
    """Bad input (syntax, validation): one line on stderr naming the file/field, exit 2."""

    exit_code = EXIT_INVALID


TOKEN_ENV = "MODELPLANE_TOKEN"
NAMESPACE_ENV = "MODELPLANE_NAMESPACE"
CA_ENV = "MODELPLANE_CA"
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Where --token and --ca are kept for ApiClient (the commands' own parameters stay unchanged).
_TOKEN_META = "modelplane.token"
_CA_META = "modelplane.ca"
_NAMESPACE_META = "modelplane.namespace"
# "spec.command: the deployer role may not set it": a refusal naming a field of the input.
_NAMES_A_FIELD = re.compile(r"^[A-Za-z_][\w.\[\]-]*: ")


def _remember(key: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _: click.Parameter, value: Any) -> None:
        if value is not None:
            ctx.meta[key] = value

    return callback


def _credential_options(func: F, service: str) -> F:
    """--token and --ca, kept in the click context for ``credentials()``."""
    func = click.option(
        "--ca",
        envvar=CA_ENV,
        type=click.Path(dir_okay=False, path_type=Path),
        expose_value=False,
        callback=_remember(_CA_META),
        help=f"CA bundle (PEM) to trust; selects TLS to the {service} (`up --tls-cert`).",
    )(func)
    return click.option(
        "--token",
        envvar=TOKEN_ENV,
        expose_value=False,
        callback=_remember(_TOKEN_META),
        help=f"Bearer token for the {service} [default: <state dir>/auth/admin.token].",
    )(func)


def _namespace_option(func: F) -> F:
    """-n/--namespace, kept in the click context for ``current_namespace()``."""
    return click.option(
        "-n",
        "--namespace",
        envvar=NAMESPACE_ENV,
        expose_value=False,
        callback=_remember(_NAMESPACE_META),
        help="Namespace of the resources named [default: default].",
    )(func)


def current_namespace() -> str:
    """-n/--namespace, else MODELPLANE_NAMESPACE, else "default"."""
    ctx = click.get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    return str(meta.get(_NAMESPACE_META) or os.environ.get(NAMESPACE_ENV) or DEFAULT_NAMESPACE)


def api_option(func: F) -> F:
    """--api, -n, and the credentials every api call needs: --token and --ca."""
    func = _namespace_option(_credential_options(func, "api"))
    return click.option(
        "--api",
        "api_address",
        envvar="MODELPLANE_API_ADDRESS",
        default=DEFAULT_API,
        show_default=True,
        help="host:port of the modelplane api (gRPC); https://host:port for TLS.",
    )(func)


@dataclass(frozen=True)
class Credentials:
    """What the CLI presents to the api."""

    token: str | None
    ca: Path | None


def credentials() -> Credentials:
    """--token/MODELPLANE_TOKEN, else the admin token `up` wrote; --ca/MODELPLANE_CA."""
    ctx = click.get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    # Commands without --token/--ca (the gateway's) read the same environment variables.
    token = (
        meta.get(_TOKEN_META)
        or os.environ.get(TOKEN_ENV)
        or read_private(admin_token_path(state_dir_from_env()))
    )
    ca = meta.get(_CA_META) or os.environ.get(CA_ENV)
    return Credentials(token, Path(ca) if ca else None)


def _target(address: str) -> tuple[str, bool]:
    """The host:port of an api address and whether it asks for TLS (https://)."""
    for scheme, tls in (("https://", True), ("grpcs://", True), ("http://", False), ("grpc://", False)):
        if address.startswith(scheme):
            return address[len(scheme) :].rstrip("/"), tls
    return address, False


def gateway_option(func: F) -> F:
    """--gateway, -n, and --token and --ca (a gateway may require tokens and serve TLS)."""
    func = _namespace_option(_credential_options(func, "gateway"))
    return click.option(
        "--gateway",
        "gateway_url",
        envvar="MODELPLANE_GATEWAY_URL",
        help=(
            "Base URL of the modelplane gateway (Open Inference Protocol v2 REST) "
            f"[default: {DEFAULT_GATEWAY}, {DEFAULT_GATEWAY_TLS} with --ca]."
        ),
    )(func)


def gateway_url(url: str | None, ca: Path | None) -> str:
    """The gateway's base URL: ``url`` or the local default; a CA selects https, as it selects
    TLS for the api (`up --tls-cert` serves both with one certificate)."""
    url = (url or DEFAULT_GATEWAY).rstrip("/")
    if ca is not None and url.startswith("http://"):
        return "https://" + url[len("http://") :]
    return url


# "documents[2].spec.x: reason": an all-or-nothing apply naming the document that failed.
_DOCUMENT_INDEX = re.compile(r"^documents\[(\d+)\]\.?(.*)$", re.DOTALL)


def _unreachable(details: str) -> bool:
    markers = ("failed to connect", "connection refused", "dns resolution failed", "connect failed")
    return any(marker in details.lower() for marker in markers)


E = TypeVar("E", control_pb2.WatchEvent, control_pb2.FollowModelEvent)


class _Shown(Generic[E]):
    """A status stream whose statuses carry the names their users wrote (``ApiClient.shown``);
    still a gRPC stream: ``cancel()`` ends it."""

    def __init__(self, stream: Iterator[E], shown: Callable[[str], str]) -> None:
        self._stream: Iterator[E] = stream
        self._shown = shown

    def __iter__(self) -> _Shown[E]:
        return self

    def __next__(self) -> E:
        event: E = next(self._stream)
        if event.HasField("status"):
            event.status.name = self._shown(event.status.name)
        return event

    def cancel(self) -> None:
        cancel = getattr(self._stream, "cancel", None)
        if cancel is not None:
            cancel()


class ApiClient:
    """The ControlService over one synchronous channel; every error becomes CommandFailed."""

    def __init__(self, address: str, creds: Credentials | None = None) -> None:
        self.address = address
        creds = creds if creds is not None else credentials()
        target, tls = _target(address)
        if tls or creds.ca is not None:
            try:
                channel_credentials = grpc_channel_credentials(creds.ca)
            except InvalidError as exc:
                raise InvalidInput(str(exc)) from None
            self._channel = grpc.secure_channel(target, channel_credentials)
        else:
            self._channel = grpc.insecure_channel(target)
        self._stub = control_pb2_grpc.ControlServiceStub(self._channel)
        self._metadata = bearer_metadata(creds.token)
        # The namespace every name of this client's calls is in (the api resolves it).
        self.namespace = current_namespace()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._channel.close()

    def failure(self, exc: grpc.RpcError, context: str = "") -> CommandFailed:
        code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
        details = (exc.details() if isinstance(exc, grpc.Call) else None) or str(code)
        return self.failure_of(code, details, context)

    def failure_of(self, code: grpc.StatusCode, details: str, context: str = "") -> CommandFailed:
        prefix = f"{context}: " if context else ""
        if code == grpc.StatusCode.UNAVAILABLE and _unreachable(details):
            return CommandFailed(f"cannot reach the modelplane api at {self.address} (is `make up` running?)")
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return InvalidInput(prefix + details)
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return CommandFailed(
                f"{prefix}the api at {self.address} refused the token ({details}); pass --token or "
                "MODELPLANE_TOKEN, or run this where `modelplane up` keeps its state dir"
            )
        if code == grpc.StatusCode.PERMISSION_DENIED:
            failure = InvalidInput if _NAMES_A_FIELD.match(details) else CommandFailed
            return failure(f"{prefix}permission denied: {details}")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return CommandFailed(f"{prefix}the modelplane api at {self.address} did not answer in time")
        return CommandFailed(prefix + details)

    def _call(self, method: Callable[..., Any], request: Any, context: str = "") -> Any:
        try:
            return method(request, timeout=CALL_TIMEOUT, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise self.failure(exc, context) from None

    def apply(self, manifest: dict[str, Any], context: str = "") -> control_pb2.ApplyResponse:
        struct = struct_pb2.Struct()
        # A JSON round trip turns YAML-only values (dates, ...) into strings Struct accepts.
        struct.update(json.loads(json.dumps(manifest, default=str)))
        reply: control_pb2.ApplyResponse = self._call(
            self._stub.Apply, control_pb2.ApplyRequest(manifest=struct), context
        )
        return reply

    def apply_all(
        self, manifests: Sequence[dict[str, Any]], contexts: Sequence[str]
    ) -> control_pb2.ApplyAllResponse:
        """Apply every manifest, all or nothing; an error naming ``documents[i]`` is reported
        with where that document came from (``contexts[i]``)."""
        structs = []
        for manifest in manifests:
            struct = struct_pb2.Struct()
            struct.update(json.loads(json.dumps(manifest, default=str)))
            structs.append(struct)
        try:
            reply: control_pb2.ApplyAllResponse = self._stub.ApplyAll(
                control_pb2.ApplyAllRequest(manifests=structs), timeout=CALL_TIMEOUT, metadata=self._metadata
            )
        except grpc.RpcError as exc:
            details = (exc.details() if isinstance(exc, grpc.Call) else None) or ""
            found = _DOCUMENT_INDEX.match(details)
            if isinstance(exc, grpc.Call) and found is not None and int(found.group(1)) < len(contexts):
                raise self.failure_of(exc.code(), found.group(2), contexts[int(found.group(1))]) from None
            raise self.failure(exc, contexts[0] if len(contexts) == 1 else "") from None
        return reply

    def scale(self, kind: str, name: str, replicas: int) -> control_pb2.ApplyResponse:
        """Set only the replicas of a Model or Server."""
        request = control_pb2.ScaleRequest(
            kind=kind, name=name, replicas=replicas, reason="modelplane CLI", namespace=self.namespace
        )
        reply: control_pb2.ApplyResponse = self._call(self._stub.Scale, request, f"{kind.lower()}/{name}")
        return reply

    def get(self, kind: str, name: str) -> control_pb2.Resource:
        reply: control_pb2.Resource = self._call(
            self._stub.Get, control_pb2.ResourceRef(kind=kind, name=name, namespace=self.namespace)
        )
        return reply

    def list(self, kind: str) -> control_pb2.ListResponse:
        reply: control_pb2.ListResponse = self._call(self._stub.List, control_pb2.ListRequest(kind=kind))
        return reply

    def delete(
        self, kind: str, name: str, context: str = "", namespace: str = ""
    ) -> control_pb2.DeleteResponse:
        """Delete ``kind``/``name`` in ``namespace`` (a manifest's own), else the client's."""
        ref = control_pb2.ResourceRef(kind=kind, name=name, namespace=namespace or self.namespace)
        reply: control_pb2.DeleteResponse = self._call(self._stub.Delete, ref, context)
        return reply

    def get_status(self, kind: str, name: str) -> control_pb2.StatusResponse:
        """The status, named as its user wrote it (see ``shown``)."""
        reply: control_pb2.StatusResponse = self._call(
            self._stub.GetStatus, control_pb2.ResourceRef(kind=kind, name=name, namespace=self.namespace)
        )
        reply.status.name = self.shown(reply.status.name)
        return reply

    def statuses_here(self, kind: str) -> Sequence[state_pb2.ResourceStatus]:
        """The statuses of the native resources of ``kind`` in the client's namespace, named as
        their users wrote them (the services know them as ``<namespace>--<name>``)."""
        here: set[str] = set()
        for item in self.list(kind).resources:
            which = item.WhichOneof("kind")
            meta = getattr(item, which).meta if which and which != "foreign" else None
            if meta is None:
                continue
            # Cluster-wide resources (Servers, ServerConfigs) are in every namespace.
            if (
                which in ("server", "server_config")
                or (meta.namespace or DEFAULT_NAMESPACE) == self.namespace
            ):
                here.add(meta.name)
        out: builtins.list[state_pb2.ResourceStatus] = []
        for status in self.list_status(kind).statuses:
            if status.name in here:
                shown = state_pb2.ResourceStatus()
                shown.CopyFrom(status)
                shown.name = self.shown(status.name)
                out.append(shown)
        return out

    def shown(self, name: str) -> str:
        """A service-wide name of the client's namespace as its user wrote it."""
        return user_name(name, self.namespace)

    def list_status(self, kind: str) -> control_pb2.ListStatusResponse:
        reply: control_pb2.ListStatusResponse = self._call(
            self._stub.ListStatus, control_pb2.ListRequest(kind=kind)
        )
        return reply

    def server_replicas(self, name: str) -> control_pb2.ServerReplicasResponse:
        reply: control_pb2.ServerReplicasResponse = self._call(
            self._stub.GetServerReplicas,
            control_pb2.ResourceRef(kind="Server", name=name, namespace=self.namespace),
        )
        return reply

    def inspect_pipeline(self, name: str, step: str, request_id: str) -> control_pb2.InspectPipelineResponse:
        reply: control_pb2.InspectPipelineResponse = self._call(
            self._stub.InspectPipeline,
            control_pb2.InspectPipelineRequest(
                name=name, step=step, request_id=request_id, namespace=self.namespace
            ),
        )
        return reply

    def watch_status(self, kind: str, name: str, timeout: float) -> Iterator[control_pb2.WatchEvent]:
        """Status events until ``timeout`` seconds pass (then DEADLINE_EXCEEDED is raised as RpcError)."""
        stream: Iterator[control_pb2.WatchEvent] = self._stub.WatchStatus(
            control_pb2.WatchRequest(kind=kind, name=name, namespace=self.namespace),
            timeout=timeout,
            metadata=self._metadata,
        )
        return _Shown(stream, self.shown)

    def follow_model(self, name: str, timeout: float) -> Iterator[control_pb2.FollowModelEvent]:
        """A model's status and download progress until ``timeout`` seconds pass (then
        DEADLINE_EXCEEDED is raised as RpcError)."""
        stream: Iterator[control_pb2.FollowModelEvent] = self._stub.FollowModel(
            control_pb2.FollowModelRequest(name=name, namespace=self.namespace),
            timeout=timeout,
            metadata=self._metadata,
        )
        return _Shown(stream, self.shown)

    def create_token(self, role: str, name: str) -> control_pb2.CreateTokenResponse:
        reply: control_pb2.CreateTokenResponse = self._call(
            self._stub.CreateToken, control_pb2.CreateTokenRequest(role=role, name=name)
        )
        return reply

    def list_tokens(self) -> control_pb2.ListTokensResponse:
        reply: control_pb2.ListTokensResponse = self._call(
            self._stub.ListTokens, control_pb2.ListTokensRequest()
        )
        return reply

    def revoke_token(self, name: str) -> control_pb2.RevokeTokenResponse:
        reply: control_pb2.RevokeTokenResponse = self._call(
            self._stub.RevokeToken, control_pb2.RevokeTokenRequest(name=name), f"token/{name}"
        )
        return reply


class GatewayClient:
    """Open Inference Protocol v2 REST calls to the gateway (stdlib HTTP: no extra dependency)."""

    def __init__(self, base_url: str | None, creds: Credentials | None = None) -> None:
        creds = creds if creds is not None else credentials()
        self.base_url = gateway_url(base_url, creds.ca)
        url = urllib.parse.urlsplit(self.base_url)
        self._headers = {"Content-Type": "application/json"}
        namespace = current_namespace()
        if namespace != DEFAULT_NAMESPACE:
            self._headers[SELDON_NAMESPACE_HEADER] = namespace
        # A gateway with MODELPLANE_GATEWAY_AUTH=required takes the same token; it is sent over
        # TLS or to this machine only, never in clear text to another host.
        if creds.token and (url.scheme == "https" or url.hostname in _LOOPBACK_HOSTS):
            self._headers["Authorization"] = authorization(creds.token)
        try:
            self._ssl = client_ssl_context(creds.ca) if url.scheme == "https" else None
        except InvalidError as exc:
            raise InvalidInput(str(exc)) from None

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=self._headers)
        try:
            with urllib.request.urlopen(req, timeout=GATEWAY_TIMEOUT, context=self._ssl) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise CommandFailed(f"gateway answered {exc.code}: {_error_text(exc.read())}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ssl.SSLError):
                raise CommandFailed(
                    f"TLS with the modelplane gateway at {self.base_url} failed ({reason}); "
                    "pass --ca (MODELPLANE_CA) with the certificate it serves"
                ) from None
            raise CommandFailed(
                f"cannot reach the modelplane gateway at {self.base_url} ({reason}; is `make up` running?)"
            ) from None
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            raise CommandFailed(f"the gateway answered with non-JSON: {raw[:200]!r}") from None


def _error_text(raw: bytes) -> str:
    """The ``error`` of a V2 error body, else the body itself (one line)."""
    text = raw.decode(errors="replace").strip()
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        return " ".join(text.split()) or "(empty body)"
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return " ".join(text.split())

"""How the CLI talks to the api (gRPC, synchronous) and the gateway (REST), and fails.

Design: a CLI command makes a handful of short calls, so a plain synchronous channel with short
deadlines is simplest. Every failure becomes a ``CommandFailed`` (a click exception): exactly one
line on stderr, exit 2 for invalid input and 1 for anything else, never a traceback.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import IO, Any, TypeVar

import click
import grpc
from google.protobuf import struct_pb2

from modelplane.proto import control_pb2, control_pb2_grpc

DEFAULT_API = "127.0.0.1:9004"
DEFAULT_GATEWAY = "http://127.0.0.1:9000"
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


def api_option(func: F) -> F:
    return click.option(
        "--api",
        "api_address",
        envvar="MODELPLANE_API_ADDRESS",
        default=DEFAULT_API,
        show_default=True,
        help="host:port of the modelplane api (gRPC).",
    )(func)


def gateway_option(func: F) -> F:
    return click.option(
        "--gateway",
        "gateway_url",
        envvar="MODELPLANE_GATEWAY_URL",
        default=DEFAULT_GATEWAY,
        show_default=True,
        help="Base URL of the modelplane gateway (Open Inference Protocol v2 REST).",
    )(func)


def _unreachable(details: str) -> bool:
    markers = ("failed to connect", "connection refused", "dns resolution failed", "connect failed")
    return any(marker in details.lower() for marker in markers)


class ApiClient:
    """The ControlService over one synchronous channel; every error becomes CommandFailed."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._channel = grpc.insecure_channel(address)
        self._stub = control_pb2_grpc.ControlServiceStub(self._channel)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._channel.close()

    def failure(self, exc: grpc.RpcError, context: str = "") -> CommandFailed:
        code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
        details = (exc.details() if isinstance(exc, grpc.Call) else None) or str(code)
        prefix = f"{context}: " if context else ""
        if code == grpc.StatusCode.UNAVAILABLE and _unreachable(details):
            return CommandFailed(f"cannot reach the modelplane api at {self.address} (is `make up` running?)")
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return InvalidInput(prefix + details)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return CommandFailed(f"{prefix}the modelplane api at {self.address} did not answer in time")
        return CommandFailed(prefix + details)

    def _call(self, method: Callable[..., Any], request: Any, context: str = "") -> Any:
        try:
            return method(request, timeout=CALL_TIMEOUT)
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

    def scale(self, kind: str, name: str, replicas: int) -> control_pb2.ApplyResponse:
        """Set only the replicas of a Model or Server."""
        request = control_pb2.ScaleRequest(kind=kind, name=name, replicas=replicas, reason="modelplane CLI")
        reply: control_pb2.ApplyResponse = self._call(self._stub.Scale, request, f"{kind.lower()}/{name}")
        return reply

    def get(self, kind: str, name: str) -> control_pb2.Resource:
        reply: control_pb2.Resource = self._call(
            self._stub.Get, control_pb2.ResourceRef(kind=kind, name=name)
        )
        return reply

    def list(self, kind: str) -> control_pb2.ListResponse:
        reply: control_pb2.ListResponse = self._call(self._stub.List, control_pb2.ListRequest(kind=kind))
        return reply

    def delete(self, kind: str, name: str, context: str = "") -> control_pb2.DeleteResponse:
        reply: control_pb2.DeleteResponse = self._call(
            self._stub.Delete, control_pb2.ResourceRef(kind=kind, name=name), context
        )
        return reply

    def get_status(self, kind: str, name: str) -> control_pb2.StatusResponse:
        reply: control_pb2.StatusResponse = self._call(
            self._stub.GetStatus, control_pb2.ResourceRef(kind=kind, name=name)
        )
        return reply

    def list_status(self, kind: str) -> control_pb2.ListStatusResponse:
        reply: control_pb2.ListStatusResponse = self._call(
            self._stub.ListStatus, control_pb2.ListRequest(kind=kind)
        )
        return reply

    def server_replicas(self, name: str) -> control_pb2.ServerReplicasResponse:
        reply: control_pb2.ServerReplicasResponse = self._call(
            self._stub.GetServerReplicas, control_pb2.ResourceRef(kind="Server", name=name)
        )
        return reply

    def inspect_pipeline(self, name: str, step: str, request_id: str) -> control_pb2.InspectPipelineResponse:
        reply: control_pb2.InspectPipelineResponse = self._call(
            self._stub.InspectPipeline,
            control_pb2.InspectPipelineRequest(name=name, step=step, request_id=request_id),
        )
        return reply

    def watch_status(self, kind: str, name: str, timeout: float) -> Iterator[control_pb2.WatchEvent]:
        """Status events until ``timeout`` seconds pass (then DEADLINE_EXCEEDED is raised as RpcError)."""
        stream: Iterator[control_pb2.WatchEvent] = self._stub.WatchStatus(
            control_pb2.WatchRequest(kind=kind, name=name), timeout=timeout
        )
        return stream

    def follow_model(self, name: str, timeout: float) -> Iterator[control_pb2.FollowModelEvent]:
        """A model's status and download progress until ``timeout`` seconds pass (then
        DEADLINE_EXCEEDED is raised as RpcError)."""
        stream: Iterator[control_pb2.FollowModelEvent] = self._stub.FollowModel(
            control_pb2.FollowModelRequest(name=name), timeout=timeout
        )
        return stream


class GatewayClient:
    """Open Inference Protocol v2 REST calls to the gateway (stdlib HTTP: no extra dependency)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=GATEWAY_TIMEOUT) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise CommandFailed(f"gateway answered {exc.code}: {_error_text(exc.read())}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
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

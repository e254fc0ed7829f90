"""FetchRequest/FetchReply (protobuf) <-> our types and errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelplane.libs.errors import InvalidError, ModelplaneError, NotFoundError, RetryableError
from modelplane.proto import agent_pb2

# FetchReply.error_kind values.
KIND_INVALID = "invalid"
KIND_NOT_FOUND = "not_found"
KIND_UNAVAILABLE = "unavailable"
KIND_PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class FetchQuery:
    uri: str
    artifact_version: str
    secret_name: str


def query_from_pb(msg: agent_pb2.FetchRequest) -> FetchQuery:
    return FetchQuery(uri=msg.uri, artifact_version=msg.artifact_version, secret_name=msg.secret_name)


def query_to_pb(query: FetchQuery) -> agent_pb2.FetchRequest:
    return agent_pb2.FetchRequest(
        uri=query.uri, artifact_version=query.artifact_version, secret_name=query.secret_name
    )


def path_to_pb(path: Path) -> agent_pb2.FetchReply:
    return agent_pb2.FetchReply(path=str(path))


def error_kind(exc: BaseException) -> str:
    if isinstance(exc, InvalidError):
        return KIND_INVALID
    if isinstance(exc, NotFoundError):
        return KIND_NOT_FOUND
    if isinstance(exc, RetryableError):
        return KIND_UNAVAILABLE
    return KIND_PERMANENT


def error_to_pb(exc: BaseException) -> agent_pb2.FetchReply:
    message = str(exc) if isinstance(exc, ModelplaneError) else "internal error while fetching the artifact"
    return agent_pb2.FetchReply(error=message, error_kind=error_kind(exc))

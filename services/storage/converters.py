"""FetchRequest/FetchReply/FetchProgress (protobuf) <-> our types and errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError

from modelplane.libs.errors import InvalidError, ModelplaneError, NotFoundError, RetryableError
from modelplane.proto import agent_pb2
from modelplane.services.storage.handler import FetchProgress, ProgressKey

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
    # Whose progress this is; None when the request names no model.
    progress_key: ProgressKey | None = None


def query_from_pb(msg: agent_pb2.FetchRequest) -> FetchQuery:
    key = ProgressKey(model=msg.model, version=msg.version) if msg.model else None
    return FetchQuery(
        uri=msg.uri, artifact_version=msg.artifact_version, secret_name=msg.secret_name, progress_key=key
    )


def query_to_pb(query: FetchQuery) -> agent_pb2.FetchRequest:
    msg = agent_pb2.FetchRequest(
        uri=query.uri, artifact_version=query.artifact_version, secret_name=query.secret_name
    )
    if query.progress_key is not None:
        msg.model = query.progress_key.model
        msg.version = query.progress_key.version
    return msg


def progress_to_pb(event: FetchProgress) -> agent_pb2.FetchProgress:
    return agent_pb2.FetchProgress(
        model=event.model,
        version=event.version,
        uri=event.uri,
        bytes_done=event.bytes_done,
        bytes_total=event.bytes_total,
        bytes_per_second=event.bytes_per_second,
        phase=event.phase,
    )


def progress_from_pb(msg: agent_pb2.FetchProgress) -> FetchProgress:
    return FetchProgress(
        model=msg.model,
        version=msg.version,
        uri=msg.uri,
        bytes_done=msg.bytes_done,
        bytes_total=msg.bytes_total,
        bytes_per_second=msg.bytes_per_second,
        phase=msg.phase,
    )


def path_to_pb(path: Path, lease_id: str = "") -> agent_pb2.FetchReply:
    return agent_pb2.FetchReply(path=str(path), lease_id=lease_id)


def release_to_pb(lease_id: str) -> agent_pb2.FetchRelease:
    return agent_pb2.FetchRelease(lease_id=lease_id)


def release_from_pb(data: bytes) -> str:
    """The lease id of a FetchRelease payload ("" when it is not one)."""
    msg = agent_pb2.FetchRelease()
    try:
        msg.ParseFromString(data)
    except DecodeError:
        return ""
    return msg.lease_id


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

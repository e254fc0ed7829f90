"""Asks the storage service (NATS request/reply) for a local path of an artifact."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import nats.errors
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS

from modelplane.libs import subjects
from modelplane.libs.errors import (
    DeadlineError,
    InvalidError,
    ModelplaneError,
    NotFoundError,
    PermanentError,
    RetryableError,
)
from modelplane.proto import agent_pb2

_ERRORS: dict[str, type[ModelplaneError]] = {
    "invalid": InvalidError,
    "not_found": NotFoundError,
    "unavailable": RetryableError,
    "permanent": PermanentError,
}


class StorageClient:
    """``fetch`` returns a local path or raises the error the storage service reported."""

    def __init__(self, nc: NATS, timeout: float) -> None:
        self._nc = nc
        self._timeout = timeout

    async def fetch(
        self, uri: str, artifact_version: str, secret_name: str, *, model: str = "", version: int = 0
    ) -> Path:
        """``model``/``version``: whose artifact it is, so the storage service publishes its progress.

        The storage service protects the path from eviction for its lease timeout after the
        reply; ``lease`` ends that protection as soon as the caller is done with the path.
        """
        path, _ = await self._request(uri, artifact_version, secret_name, model, version)
        return path

    @contextlib.asynccontextmanager
    async def lease(
        self, uri: str, artifact_version: str, secret_name: str, *, model: str = "", version: int = 0
    ) -> AsyncIterator[Path]:
        """Like ``fetch``; the path stays protected from cache eviction until the block ends."""
        path, lease_id = await self._request(uri, artifact_version, secret_name, model, version)
        try:
            yield path
        finally:
            if lease_id:
                # When this fails the storage service's lease timeout ends the protection.
                with contextlib.suppress(nats.errors.Error):
                    await self._nc.publish(
                        subjects.STORAGE_RELEASE,
                        agent_pb2.FetchRelease(lease_id=lease_id).SerializeToString(),
                    )

    async def _request(
        self, uri: str, artifact_version: str, secret_name: str, model: str, version: int
    ) -> tuple[Path, str]:
        request = agent_pb2.FetchRequest(
            uri=uri, artifact_version=artifact_version, secret_name=secret_name, model=model, version=version
        )
        try:
            msg = await self._nc.request(
                subjects.STORAGE_FETCH, request.SerializeToString(), timeout=self._timeout
            )
        except nats.errors.NoRespondersError as exc:
            raise RetryableError("no storage service is running") from exc
        except nats.errors.TimeoutError as exc:
            raise DeadlineError(f"the storage service did not answer within {self._timeout:g}s") from exc
        reply = agent_pb2.FetchReply()
        try:
            reply.ParseFromString(msg.data)
        except DecodeError as exc:
            raise PermanentError("the storage service sent an unreadable reply") from exc
        if reply.error:
            raise _ERRORS.get(reply.error_kind, PermanentError)(reply.error)
        if not reply.path:
            raise PermanentError("the storage service returned no path")
        return Path(reply.path), reply.lease_id

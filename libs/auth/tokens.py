"""Bearer tokens: made here, stored hashed in NATS KV, verified from memory.

Design: a token is ``mpt_`` and 43 url-safe characters (32 random bytes). The bucket
``KV_TOKENS`` holds one ``TokenRecord`` per token name with the token's SHA-256, never the token:
whoever reads the bucket (every service may) cannot call with it. The plaintext is returned once,
by ``create``.

``TokenStore.verify`` runs on every request of the api and the gateway, so it never asks NATS:
``start`` replays the bucket into memory and an owned task follows its changes. Each key's
latest revision wins, so a late watch event cannot bring back a token this process has just
revoked (``create``/``revoke``/``ensure`` update the memory at once, then the watch confirms).
The presented token's digest is compared with every known digest by ``hmac.compare_digest``,
without stopping at the first match, so the time taken says nothing about the stored digests.

A token is never logged, nor any part of it beyond its ``mpt_`` prefix: log lines name the
token's name and role.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

import structlog
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.auth.roles import Role, is_role, parse_role
from modelplane.libs.clock import now_rfc3339
from modelplane.libs.errors import ConflictError, InvalidError, NotFoundError, RetryableError
from modelplane.libs.resources.types import NAME_PATTERN
from modelplane.libs.store import TypedBucket
from modelplane.libs.tasks import TaskSupervisor
from modelplane.proto import auth_pb2

log = structlog.get_logger(__name__)

TOKEN_PREFIX: Final = "mpt_"
# 32 random bytes: 43 url-safe base64 characters.
_TOKEN_BYTES: Final = 32
# Seconds ``start`` waits for the bucket's replay.
_REPLAY_TIMEOUT: Final = 10.0


def generate_token() -> str:
    """A new random token, ``mpt_<43 url-safe characters>``."""
    return TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The lowercase hex SHA-256 of a token, as stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified token belongs to."""

    name: str
    role: Role


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A stored token as ``list`` shows it: no hash, no token."""

    name: str
    role: Role
    created: str


class TokenVerifier(Protocol):
    """What a listener needs to authenticate a caller."""

    async def verify(self, token: str) -> Principal | None:
        """The token's principal, or None when the token is unknown (or revoked)."""
        ...


@runtime_checkable
class ImmediateTokenVerifier(Protocol):
    """A verifier that answers at once, from memory (``TokenStore``)."""

    def verify_now(self, token: str) -> Principal | None:
        """The token's principal, or None when the token is unknown (or revoked)."""
        ...


class TokenAdmin(TokenVerifier, Protocol):
    """What the api needs: verification and administration (``TokenStore`` in production)."""

    async def create(self, name: str, role: str) -> str: ...

    async def list(self) -> list[TokenInfo]: ...

    async def revoke(self, name: str) -> None: ...

    async def close(self) -> None: ...


def check_token_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise InvalidError(
            f"{name!r} is not a valid name: lowercase letters, digits and '-', "
            "starting and ending with a letter or digit",
            field="name",
        )
    return name


@dataclass(frozen=True, slots=True)
class _Known:
    """A token name's latest state in memory; ``record`` None once deleted."""

    revision: int
    record: auth_pb2.TokenRecord | None


class TokenStore:
    """Tokens in the KV bucket ``KV_TOKENS``; ``verify`` answers from memory after ``start``."""

    def __init__(self, bucket: TypedBucket[auth_pb2.TokenRecord]) -> None:
        self._bucket = bucket
        self._known: dict[str, _Known] = {}
        self._tasks = TaskSupervisor("tokens")
        self._started = False

    @classmethod
    async def open(cls, js: JetStreamContext) -> TokenStore:
        """The store over ``KV_TOKENS`` (the bucket must exist: ``store.ensure_buckets``)."""
        return cls(await TypedBucket.open(js, subjects.KV_TOKENS, auth_pb2.TokenRecord))

    async def start(self, timeout: float = _REPLAY_TIMEOUT) -> None:
        """Load every token and follow changes (needed before ``verify``; idempotent)."""
        if self._started:
            return
        self._started = True
        caught_up = asyncio.Event()
        self._tasks.spawn("watch", self._follow(caught_up))
        try:
            await asyncio.wait_for(caught_up.wait(), timeout)
        except TimeoutError as exc:
            raise RetryableError("the token store could not read its KV bucket in time") from exc

    async def close(self) -> None:
        """Stop following the bucket (idempotent)."""
        await self._tasks.close()

    async def _follow(self, caught_up: asyncio.Event) -> None:
        async for change in self._bucket.watch():
            if change is None:
                caught_up.set()
                continue
            self._remember(change.key, change.revision, change.value)

    def _remember(self, name: str, revision: int, record: auth_pb2.TokenRecord | None) -> None:
        known = self._known.get(name)
        if known is not None and revision <= known.revision:
            return  # older than what this process already applied
        if record is not None and not is_role(record.role):
            log.warning("token_record_ignored", name=name, reason=f"unknown role {record.role!r}")
            record = None
        self._known[name] = _Known(revision, record)

    # ---- verification -------------------------------------------------------------------------

    async def verify(self, token: str) -> Principal | None:
        return self.verify_now(token)

    def verify_now(self, token: str) -> Principal | None:
        """``verify`` without a suspension point: the answer comes from memory, so an HTTP
        server can decide from a request's head, before its body is read."""
        digest = hash_token(token)
        found: auth_pb2.TokenRecord | None = None
        for known in list(self._known.values()):
            record = known.record
            # Compare with every digest (no early exit) in constant time.
            if record is not None and hmac.compare_digest(digest, record.sha256):
                found = record
        if found is None or not is_role(found.role):
            return None
        return Principal(found.name, found.role)

    # ---- administration -----------------------------------------------------------------------

    async def create(self, name: str, role: str) -> str:
        """Make a token; returns its plaintext (the only time it is shown). ConflictError when
        a token of that name exists."""
        check_token_name(name)
        checked = parse_role(role)
        token = generate_token()
        record = self._record(name, checked, token)
        revision = await self._bucket.create(name, record)
        self._remember(name, revision, record)
        log.info("token_created", name=name, role=checked)
        return token

    async def ensure(self, name: str, role: str, token: str) -> None:
        """Store ``token`` under ``name`` whatever was there (bootstrap: ``up``'s admin token and
        the internal services' tokens, made by their owner)."""
        check_token_name(name)
        checked = parse_role(role)
        if not token.startswith(TOKEN_PREFIX):
            raise InvalidError(f"a token starts with {TOKEN_PREFIX}", field="token")
        record = self._record(name, checked, token)
        revision = await self._bucket.put(name, record)
        self._remember(name, revision, record)
        log.info("token_ensured", name=name, role=checked)

    async def list(self) -> list[TokenInfo]:
        """Every stored token by name, without hashes."""
        out: list[TokenInfo] = []
        for item in await self._bucket.items():
            role = item.value.role
            if is_role(role):
                out.append(TokenInfo(item.value.name or item.key, role, item.value.created))
        return sorted(out, key=lambda t: t.name)

    async def revoke(self, name: str) -> None:
        """Delete a token; it stops working here at once, elsewhere when their watch sees it."""
        found = await self._bucket.try_get(name)
        if found is None:
            raise NotFoundError(f"token {name!r} not found")
        try:
            await self._bucket.delete(name, found.revision)
        except ConflictError:
            await self._bucket.delete(name)  # changed meanwhile: revoke whatever it is now
        # The delete's own revision is above the one read: a replayed put cannot revive it.
        self._remember(name, found.revision + 1, None)
        log.info("token_revoked", name=name)

    @staticmethod
    def _record(name: str, role: Role, token: str) -> auth_pb2.TokenRecord:
        return auth_pb2.TokenRecord(name=name, role=role, sha256=hash_token(token), created=now_rfc3339())

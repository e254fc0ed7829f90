"""A leader lease in a NATS JetStream KV bucket: one active instance, the others on standby.

Design:
- The lease is one key (the lease name) in ``KV_LEASES`` holding a ``Lease`` message (holder id,
  term, informative wall-clock times). Every write is a compare-and-set on the KV revision:
  ``create`` when the key is absent or deleted, ``update(revision)`` to renew, to take over and
  to release. Two contenders can therefore never both win one revision.
- Expiry is judged without comparing clocks of different machines. A contender polls the key
  and remembers *when it first saw* the current revision (its own monotonic clock, taken after
  the read returned, so after the holder's write). Only when the same revision has stood for
  ``ttl`` seconds may it try ``update(revision)``; any renewal in between changes the revision
  and restarts its count.
- Fencing by time: the holder counts from the *start* of its last successful write (so before
  the revision contenders see) and stops being leader at ``ttl - margin`` after it, whether or
  not its renewals are failing (conflict, NATS down, a hung request). ``is_leader`` turns false
  at that instant even before the renew task notices; ``lost`` is set when the task does. The
  margin is the time the caller has to stop its work before a contender's ``ttl`` can run out.
- A clean ``close()`` overwrites the key at our revision with a lease without holder (keeping
  the term, so terms only grow), and a standby takes it on its next poll instead of waiting out
  the ttl. An election object serves one term: once lost or closed it
  stays so; ``serve_while_leader`` campaigns again with a fresh one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType

import structlog

from modelplane.libs.clock import now_rfc3339
from modelplane.libs.errors import ConflictError
from modelplane.libs.store import TypedBucket
from modelplane.libs.tasks import TaskSupervisor
from modelplane.proto import lease_pb2

log = structlog.get_logger(__name__)

# Seconds a release (delete) at close may take; a NATS that slow means contenders wait the ttl.
_RELEASE_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class LeaseConfig:
    """Who competes for which lease, and its timing (seconds)."""

    name: str
    holder: str
    # How long a lease lasts after its last renewal, as contenders measure it.
    ttl: float = 5.0
    # How often the holder renews and a standby polls.
    renew_interval: float = 1.0
    # The holder stops acting this long before contenders may take over.
    margin: float = 1.0

    def __post_init__(self) -> None:
        if not self.name or not self.holder:
            raise ValueError("lease name and holder must not be empty")
        if self.ttl <= 0 or self.renew_interval <= 0 or self.margin <= 0:
            raise ValueError("lease ttl, renew_interval and margin must be positive")
        if self.margin >= self.ttl:
            raise ValueError(f"lease margin ({self.margin}s) must be shorter than its ttl ({self.ttl}s)")
        if 2 * self.renew_interval > self.ttl - self.margin:
            # At least two renewal attempts must fit before the holder steps down.
            raise ValueError(
                f"lease renew_interval ({self.renew_interval}s) must be at most half of "
                f"ttl - margin ({self.ttl - self.margin}s)"
            )

    @property
    def hold_for(self) -> float:
        """Seconds after a successful renewal's start during which the holder may act."""
        return self.ttl - self.margin


class LeaderElection:
    """Campaigns for one lease; while held, renews it; steps down before it could be taken."""

    def __init__(self, bucket: TypedBucket[lease_pb2.Lease], config: LeaseConfig) -> None:
        self._bucket = bucket
        self.config = config
        self._supervisor = TaskSupervisor(f"lease:{config.name}")
        self._elected = asyncio.Event()
        # Set when the lease is no longer ours (stepped down, taken over, or closed).
        self.lost = asyncio.Event()
        self._revision = 0
        self._term = 0
        self._valid_until = 0.0
        self._acquired_at = ""
        self._started = False
        self._closed = False

    # ---- state --------------------------------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        """True only while the lease is held and its hold time has not run out (fenced by time)."""
        return (
            self._elected.is_set()
            and not self.lost.is_set()
            and asyncio.get_running_loop().time() < self._valid_until
        )

    @property
    def term(self) -> int:
        """The term of the lease we hold or held (0 before the first win)."""
        return self._term

    async def wait_until_leader(self) -> None:
        """Return once this instance holds the lease."""
        await self._elected.wait()

    # ---- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start campaigning (returns at once; see ``wait_until_leader``)."""
        if self._started:
            return
        self._started = True
        self._supervisor.spawn("campaign", self._campaign())

    async def close(self) -> None:
        """Stop campaigning or renewing and release the lease if we hold it (idempotent)."""
        if self._closed:
            return
        self._closed = True
        await self._supervisor.close()
        self.lost.set()  # a chosen end, not a loss worth a warning
        # Release even after a step-down: the write is conditional on our revision, so it can
        # only remove our own lease, and a standby then need not wait out the ttl.
        if self._elected.is_set():
            try:
                async with asyncio.timeout(_RELEASE_TIMEOUT):
                    released = lease_pb2.Lease(term=self._term, renewed_at=now_rfc3339())
                    await self._bucket.update(self.config.name, released, self._revision)
                log.info("lease_released", lease=self.config.name, holder=self.config.holder, term=self._term)
            except Exception as exc:  # taken already, or NATS gone: contenders wait out the ttl
                log.warning("lease_release_failed", lease=self.config.name, error=str(exc) or repr(exc))

    async def __aenter__(self) -> LeaderElection:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ---- campaign (standby) -------------------------------------------------------------------
    async def _campaign(self) -> None:
        loop = asyncio.get_running_loop()
        seen_revision: int | None = None
        seen_at = 0.0
        while True:
            try:
                current = await self._bucket.try_get(self.config.name)
            except Exception as exc:  # NATS down or slow: keep polling, nothing to decide on
                log.warning("lease_read_failed", lease=self.config.name, error=str(exc) or repr(exc))
                seen_revision = None  # an unreadable lease is not an absent one
            else:
                now = loop.time()
                if current is None:
                    if await self._try_acquire(None, 0):
                        return
                    seen_revision = None
                elif not current.value.holder:  # released: free to take at once
                    if await self._try_acquire(current.revision, current.value.term):
                        return
                else:
                    if current.revision != seen_revision:
                        seen_revision, seen_at = current.revision, now
                    elif now - seen_at >= self.config.ttl:
                        log.info(
                            "lease_expired",
                            lease=self.config.name,
                            previous_holder=current.value.holder,
                            previous_term=current.value.term,
                        )
                        if await self._try_acquire(current.revision, current.value.term):
                            return
            await asyncio.sleep(self.config.renew_interval)

    async def _try_acquire(self, revision: int | None, previous_term: int) -> bool:
        """One compare-and-set attempt; True when we hold the lease afterwards."""
        loop = asyncio.get_running_loop()
        stamp = now_rfc3339()
        lease = lease_pb2.Lease(
            holder=self.config.holder,
            term=previous_term + 1,
            ttl_seconds=self.config.ttl,
            acquired_at=stamp,
            renewed_at=stamp,
        )
        started = loop.time()
        try:
            if revision is None:
                new_revision = await self._bucket.create(self.config.name, lease)
            else:
                new_revision = await self._bucket.update(self.config.name, lease, revision)
        except ConflictError:
            return False  # another contender won this revision
        except Exception as exc:
            log.warning("lease_acquire_failed", lease=self.config.name, error=str(exc) or repr(exc))
            return False
        self._revision, self._term, self._acquired_at = new_revision, lease.term, stamp
        self._valid_until = started + self.config.hold_for
        self._elected.set()
        log.info("lease_acquired", lease=self.config.name, holder=self.config.holder, term=lease.term)
        self._supervisor.spawn("renew", self._renew())
        return True

    # ---- holding (leader) ---------------------------------------------------------------------
    async def _renew(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            remaining = self._valid_until - loop.time()
            await asyncio.sleep(max(0.0, min(self.config.renew_interval, remaining)))
            if loop.time() >= self._valid_until:
                self._step_down("renewal failed for too long")
                return
            lease = lease_pb2.Lease(
                holder=self.config.holder,
                term=self._term,
                ttl_seconds=self.config.ttl,
                acquired_at=self._acquired_at,
                renewed_at=now_rfc3339(),
            )
            started = loop.time()
            deadline = asyncio.timeout_at(self._valid_until)
            try:
                async with deadline:
                    self._revision = await self._bucket.update(self.config.name, lease, self._revision)
            except ConflictError:
                self._step_down("lease changed by another instance")
                return
            except Exception as exc:
                if deadline.expired():
                    self._step_down("renewal did not finish in time")
                    return
                log.warning("lease_renew_failed", lease=self.config.name, error=str(exc) or repr(exc))
                continue
            self._valid_until = started + self.config.hold_for

    def _step_down(self, reason: str) -> None:
        if self.lost.is_set():
            return
        self.lost.set()
        if self._elected.is_set():
            log.warning(
                "lease_lost",
                lease=self.config.name,
                holder=self.config.holder,
                term=self._term,
                reason=reason,
            )


async def serve_while_leader(
    bucket: TypedBucket[lease_pb2.Lease],
    config: LeaseConfig,
    term: Callable[[LeaderElection], AbstractAsyncContextManager[None]],
    retry_delay: float = 1.0,
) -> None:
    """Campaign for the lease forever; hold ``term(election)`` open for as long as we lead.

    The term's ``__aexit__`` runs when the lease is lost (before a contender can take over, if
    it is quick: it has ``config.margin`` seconds) or when this coroutine is cancelled, and
    always before the lease is released. A term that fails to start is logged; we release the
    lease, wait ``retry_delay`` seconds and campaign again. Runs until cancelled.
    """
    while True:
        async with LeaderElection(bucket, config) as election:
            await election.wait_until_leader()
            try:
                async with term(election):
                    await election.lost.wait()
            except Exception:
                log.exception("leader_term_failed", lease=config.name, holder=config.holder)
        # After a loss or a failure: a fresh election, as a standby again.
        await asyncio.sleep(retry_delay)

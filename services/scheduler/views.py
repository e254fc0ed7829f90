"""The cluster as placement sees it, kept up to date as things change instead of rebuilt.

Why: placement looks at every server for every decision. Building each ``ServerView`` (and the
memory booked on every replica) from all placements per decision made placing N models cost
O(N^2): at 500 models, rebuilding took 9 s of 10. Here:

- bookings change by delta, one model at a time (``capacity.Ledger``): the scheduler says which
  models' records it changed (``record_changed``) and they are re-booked on the next read;
- a ``ServerView`` is rebuilt only when something it shows changed. A change of a replica's
  bookings rebuilds that one ``ReplicaView`` and re-ranks the server's summary
  (``ServerView.with_replicas``); a change of a replica record (registered, gone, lost, draining)
  or of the server (its Server resource, its ServerConfig's parallel workers) rebuilds the
  server's view. Every other server keeps its view and its cached summary.

- ``views()`` comes with a ``ServerIndex`` over the views (server_index.py), updated for the
  servers that changed, so a decision does not judge every server.

The result is the same as building every view from scratch (a test compares them after random
changes); reads are ``views()`` (what ``place`` takes), ``booked`` and the models-on indexes.
The owner (the handler) keeps the records; this class only holds what is derived from them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from modelplane.services.scheduler.capacity import Booking, Ledger
from modelplane.services.scheduler.cluster import ReplicaRecord, ReplicaView, ServerRecord, ServerView
from modelplane.services.scheduler.records import ModelRecord
from modelplane.services.scheduler.server_index import IndexedViews, ServerIndex

_NO_BOOKING = Booking()


class ClusterViews:
    """Server views and replica bookings derived from the scheduler's tables."""

    def __init__(
        self,
        servers: Mapping[str, ServerRecord],
        replicas: Mapping[str, ReplicaRecord],
        placements: Mapping[str, ModelRecord],
        parallel_workers: Callable[[str], int],
    ) -> None:
        # The owner's tables, read (never written) when something derived is rebuilt.
        self._servers = servers
        self._replicas = replicas
        self._placements = placements
        self._parallel_workers = parallel_workers
        self.ledger = Ledger()
        # Models whose record changed since they were booked.
        self._unbooked: set[str] = set()
        # Server -> keys of its replica records (live or lost).
        self._keys: dict[str, set[str]] = {}
        self._views: dict[str, ServerView] = {}
        # Server -> replica keys whose bookings changed, or None: rebuild the whole view.
        self._stale: dict[str, set[str] | None] = {}
        # ``_views`` in name order, as ``place`` gets it; None when a server came or went.
        self.index = ServerIndex(self.ledger.has_assignments)
        self._ordered: IndexedViews | None = IndexedViews([], self.index)
        self._position: dict[str, int] = {}

    # ---- what changed (cheap: the work happens on the next read) ----------------------------
    def record_changed(self, model: str) -> None:
        """The placement record of ``model`` changed (assignments, states, versions, or it is gone)."""
        self._unbooked.add(model)

    def server_changed(self, server: str) -> None:
        """The Server resource or a replica record of it changed."""
        self._stale[server] = None

    def workers_changed(self, server: str) -> None:
        """The parallel workers of ``server`` changed: what its models book changes with them."""
        self.server_changed(server)
        # Records not booked yet are booked with the new workers anyway.
        self._unbooked.update(self.ledger.models_on_server(server))

    def replica_changed(self, key: str, old: ReplicaRecord | None, new: ReplicaRecord | None) -> None:
        """A replica record was added, replaced or removed, or its ``lost`` flag changed."""
        if old is None or new is None or _shown(old) != _shown(new):
            # Not for the usual update (an agent's list of loaded models): views do not show it.
            for record in (old, new):
                if record is not None:
                    self.server_changed(record.server)
        if old is not None and new is None:
            keys = self._keys.get(old.server)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._keys[old.server]
        if new is not None:
            self._keys.setdefault(new.server, set()).add(key)

    # ---- reads ------------------------------------------------------------------------------
    @property
    def booked(self) -> Mapping[str, Booking]:
        """Replica key -> what is booked there (as ``capacity.book`` over every placement)."""
        self._rebook()
        return self.ledger.booked

    def models_on_replica(self, key: str) -> list[str]:
        """Models with an assignment (any state) on replica ``key``, by name."""
        self._rebook()
        return sorted(self.ledger.models_on_replica(key))

    def models_on_server(self, server: str) -> list[str]:
        """Models with an assignment (any state) on any replica of ``server``, by name."""
        self._rebook()
        return sorted(self.ledger.models_on_server(server))

    def views(self) -> Sequence[ServerView]:
        """Every server with a resource or a live replica, by name (valid until the next change)."""
        self._rebook()
        for server, keys in self._stale.items():
            self._refresh(server, keys)
        self._stale.clear()
        if self._ordered is None:
            names = sorted(self._views)
            self._ordered = IndexedViews([self._views[n] for n in names], self.index)
            self._position = {n: i for i, n in enumerate(names)}
        return self._ordered

    # ---- rebuilding -------------------------------------------------------------------------
    def _rebook(self) -> None:
        while self._unbooked:
            name = self._unbooked.pop()
            for key in self.ledger.rebook(name, self._placements.get(name), self._parallel_workers):
                replica = self._replicas.get(key)
                if replica is None:
                    continue  # not in any view; it is booked in when it registers
                stale = self._stale
                if replica.server not in stale:
                    stale[replica.server] = {key}
                elif (keys := stale[replica.server]) is not None:
                    keys.add(key)

    def _refresh(self, server: str, keys: set[str] | None) -> None:
        old = self._views.get(server)
        view: ServerView | None
        if keys is not None and old is not None:
            # Only bookings changed: new views of those replicas (the rest of each is as in the
            # old view, since a change of anything else rebuilds the server), the summary re-ranked.
            shown = old.replicas
            changed: dict[int, ReplicaView] = {}
            for key in keys:
                replica = self._replicas.get(key)
                if replica is None or replica.lost:
                    continue
                at = replica.index
                # Replicas are in index order, usually without gaps: then index = position.
                if at < len(shown) and shown[at].index == at:
                    before: ReplicaView | None = shown[at]
                else:
                    before = next((r for r in shown if r.index == at), None)
                changed[at] = self._replica_view(replica) if before is None else self._rebooked(before, key)
            view = old.with_replicas(changed)
        else:
            view = self._build(server)
        self.index.put(server, view)
        if view is None:
            if old is not None:
                del self._views[server]
                self._ordered = None
        elif old is None:
            self._views[server] = view
            self._ordered = None
        else:
            self._views[server] = view
            if self._ordered is not None:
                self._ordered[self._position[server]] = view

    def _build(self, server: str) -> ServerView | None:
        record = self._servers.get(server)
        live = [replica for key in self._keys.get(server, ()) if not (replica := self._replicas[key]).lost]
        if record is None and not live:
            return None
        return ServerView(
            name=server,
            expected_replicas=record.expected_replicas if record else 0,
            replicas=tuple(sorted((self._replica_view(r) for r in live), key=lambda r: r.index)),
            exists=record is not None,
        )

    def _replica_view(self, replica: ReplicaRecord) -> ReplicaView:
        entry = self.ledger.booked.get(replica.key, _NO_BOOKING)
        return ReplicaView(
            server=replica.server,
            index=replica.index,
            capabilities=replica.capabilities,
            memory_bytes=replica.memory_bytes,
            overcommit_percent=replica.overcommit_percent,
            # Placement sees (capacity - loaded) - reserved as free memory.
            used_bytes=entry.loaded,
            reserved_bytes=entry.reserved,
            draining=replica.draining,
            unavailable_reason=replica.unavailable_reason,
            assigned=entry.models,
            parallel_workers=self._parallel_workers(replica.server),
        )

    def _rebooked(self, before: ReplicaView, key: str) -> ReplicaView:
        """``before`` with the bookings of replica ``key`` now (as ``_replica_view`` would build it)."""
        entry = self.ledger.booked.get(key, _NO_BOOKING)
        return ReplicaView(
            before.server,
            before.index,
            before.capabilities,
            before.memory_bytes,
            before.overcommit_percent,
            entry.loaded,
            before.draining,
            before.unavailable_reason,
            entry.models,
            before.parallel_workers,
            entry.reserved,
        )


def _shown(replica: ReplicaRecord) -> tuple[object, ...]:
    """The fields of a replica record that its ``ReplicaView`` shows (or that hide it)."""
    return (
        replica.capabilities,
        replica.memory_bytes,
        replica.overcommit_percent,
        replica.draining,
        replica.unavailable_reason,
        replica.lost,
    )

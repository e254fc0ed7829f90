"""Incremental cluster views equal views built from scratch, after any sequence of changes."""

from __future__ import annotations

import random

import pytest

from modelplane.libs import states
from modelplane.libs.resources.types import ModelSpec
from modelplane.services.scheduler import capacity
from modelplane.services.scheduler.cluster import (
    ReplicaRecord,
    ReplicaView,
    ServerRecord,
    ServerSummary,
    ServerView,
)
from modelplane.services.scheduler.placement import default_policy, place
from modelplane.services.scheduler.policy.base import PlacementRequest
from modelplane.services.scheduler.records import Assignment, ModelRecord, VersionRecord
from modelplane.services.scheduler.server_index import IndexedViews
from modelplane.services.scheduler.views import ClusterViews

SERVERS = ("alpha", "beta", "gamma")
CONFIGS = ("mlserver", "triton")
CAPABILITIES = (("sklearn", "mlserver"), ("onnx",), ("sklearn", "alibi-explain"))
MODELS = tuple(f"m{i}" for i in range(8))
STATES = tuple(states.REPLICA_STATE_NAMES)


class Tables:
    """The scheduler's tables, changed at random the way the handler changes them."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.servers: dict[str, ServerRecord] = {}
        self.configs: dict[str, int] = {}
        self.replicas: dict[str, ReplicaRecord] = {}
        self.placements: dict[str, ModelRecord] = {}
        self.views = ClusterViews(self.servers, self.replicas, self.placements, self.workers)

    def workers(self, server: str) -> int:
        record = self.servers.get(server)
        return self.configs.get(record.server_config, 0) if record else 0

    def change(self) -> None:
        rnd = self.rnd
        what = rnd.choice(("server", "config", "replica", "replica", "lost", "model", "model", "model"))
        if what == "server":
            name = rnd.choice(SERVERS)
            before = self.workers(name)
            if rnd.random() < 0.2:
                self.servers.pop(name, None)
            else:
                self.servers[name] = ServerRecord(name, rnd.choice((0, 2, 3)), rnd.choice(CONFIGS))
            self.views.server_changed(name)
            if self.workers(name) != before:
                self.views.workers_changed(name)
        elif what == "config":
            name = rnd.choice(CONFIGS)
            if rnd.random() < 0.2:
                self.configs.pop(name, None)
            else:
                self.configs[name] = rnd.choice((0, 1, 2))
            for server_record in self.servers.values():
                if server_record.server_config == name:
                    self.views.workers_changed(server_record.name)
        elif what == "replica":
            server, index = rnd.choice(SERVERS), rnd.randrange(3)
            key = f"{server}.{index}"
            old = self.replicas.get(key)
            if rnd.random() < 0.2:
                if old is not None:
                    del self.replicas[key]
                    self.views.replica_changed(key, old, None)
                return
            new = ReplicaRecord(
                server,
                index,
                "i",
                rnd.choice(CAPABILITIES),
                rnd.choice((100, 200, 400)),
                rnd.choice((0, 10)),
                "h",
                "g",
                loaded_models=frozenset(rnd.sample(MODELS, 2)),
                draining=rnd.random() < 0.2,
                unavailable_reason="runtime missing" if rnd.random() < 0.1 else "",
            )
            self.replicas[key] = new
            self.views.replica_changed(key, old, new)
        elif what == "lost":
            if self.replicas:
                replica = self.replicas[rnd.choice(sorted(self.replicas))]
                replica.lost = not replica.lost
                self.views.server_changed(replica.server)
        else:
            name = rnd.choice(MODELS)
            record = self.placements.get(name)
            if record is not None and rnd.random() < 0.5:
                # Change states in place, as reports and decisions do.
                for version in record.versions:
                    for a in version.replicas:
                        if rnd.random() < 0.5:
                            a.state = rnd.choice(STATES)
                    if version.replicas and rnd.random() < 0.3:
                        version.replicas.pop(rnd.randrange(len(version.replicas)))
            elif rnd.random() < 0.2:
                self.placements.pop(name, None)
            else:
                self.placements[name] = self.record(name)
            self.views.record_changed(name)

    def record(self, name: str) -> ModelRecord:
        rnd = self.rnd
        versions = []
        for number in range(1, rnd.randrange(1, 3) + 1):
            server = rnd.choice(SERVERS)
            spec = ModelSpec(
                storage_uri="file:///m",
                memory_bytes=rnd.choice((10, 50)),
                parallel_workers=rnd.choice((0, 0, 2)),
            )
            indexes = rnd.sample(range(3), rnd.randrange(0, 3))
            assignments = [Assignment(server, i, rnd.choice(STATES)) for i in indexes]
            versions.append(VersionRecord(number, spec, server, assignments))
        return ModelRecord(name, versions=versions)

    def expected_views(self) -> list[ServerView]:
        """Every view built from all placements (the scheduler's former way)."""
        booked = capacity.book(self.placements, self.workers)
        by_server: dict[str, list[ReplicaView]] = {}
        for replica in self.replicas.values():
            if replica.lost:
                continue
            entry = booked.get(replica.key, capacity.Booking())
            by_server.setdefault(replica.server, []).append(
                ReplicaView(
                    server=replica.server,
                    index=replica.index,
                    capabilities=replica.capabilities,
                    memory_bytes=replica.memory_bytes,
                    overcommit_percent=replica.overcommit_percent,
                    used_bytes=entry.loaded,
                    reserved_bytes=entry.reserved,
                    draining=replica.draining,
                    unavailable_reason=replica.unavailable_reason,
                    assigned=frozenset(entry.models),
                    parallel_workers=self.workers(replica.server),
                )
            )
        return [
            ServerView(
                name=name,
                expected_replicas=server.expected_replicas if (server := self.servers.get(name)) else 0,
                replicas=tuple(sorted(by_server.get(name, []), key=lambda r: r.index)),
                exists=server is not None,
            )
            for name in sorted(set(self.servers) | set(by_server))
        ]


@pytest.mark.parametrize("seed", range(40))
def test_incremental_views_equal_views_built_from_scratch(seed: int) -> None:
    """Views, summaries, bookings and the models-on indexes match a full rebuild at every read."""
    tables = Tables(random.Random(seed))
    for _ in range(150):
        tables.change()
        if tables.rnd.random() < 0.5:
            continue  # let changes pile up between reads
        views = list(tables.views.views())
        assert views == tables.expected_views()
        for view in views:
            # Place reads the summary (making it, or taking the one updated by a booking).
            accepting = view.exists and view.expected_replicas > 0
            assert view.summary == ServerSummary.of(view.replicas, accepting)
        expected_booked = capacity.book(tables.placements, tables.workers)
        assert {k: (b.reserved, b.loaded, b.models) for k, b in tables.views.booked.items()} == {
            k: (b.reserved, b.loaded, b.models) for k, b in expected_booked.items()
        }
        for key in {f"{s}.{i}" for s in SERVERS for i in range(3)}:
            on_replica = sorted(
                name
                for name, record in tables.placements.items()
                if any(a.replica_key == key for v in record.versions for a in v.replicas)
            )
            assert tables.views.models_on_replica(key) == on_replica
        for server in SERVERS:
            on_server = sorted(
                name
                for name, record in tables.placements.items()
                if any(a.server == server for v in record.versions for a in v.replicas)
            )
            assert tables.views.models_on_server(server) == on_server


@pytest.mark.parametrize("seed", range(40))
def test_indexed_views_decide_like_judging_every_server(seed: int) -> None:
    """After any changes, placing through the views' index equals judging every server."""
    tables = Tables(random.Random(seed))
    rnd = random.Random(seed + 1000)
    for _ in range(150):
        tables.change()
        views = tables.views.views()
        assert isinstance(views, IndexedViews)
        for strategy in ("best-fit", "spread"):
            policy = default_policy(strategy)
            for _ in range(3):
                replicas = rnd.choice((1, 1, 2, 3))
                spec = ModelSpec(
                    storage_uri="file:///m",
                    requirements=rnd.choice(((), ("sklearn",), ("onnx",), ("mlserver", "sklearn"))),
                    memory_bytes=rnd.choice((0, 10, 50, 100, 150)),
                    parallel_workers=rnd.choice((0, 0, 2)),
                    replicas=replicas,
                    min_replicas=rnd.randrange(replicas + 1),
                    server=rnd.choice(("",) * 6 + SERVERS),
                )
                # Known models (a server may hold their version) and new ones.
                model = rnd.choice((*MODELS, "new-a", "new-b"))
                request = PlacementRequest(model, rnd.choice((1, 2)), spec)
                assert place(request, views, policy) == place(request, list(views), policy)

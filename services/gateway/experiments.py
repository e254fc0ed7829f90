"""Experiments in the gateway: which model a request goes to, and whether it is mirrored.

Design: plain data and pure choices, no I/O. The experiment watcher keeps an
``ExperimentTable`` (experiment name -> ``libs.resources.types.Experiment``, plus the index of
baselines: default model -> experiment) in step with KV_EXPERIMENTS. For each inference request
the adapters call ``ExperimentRouter.route(model name, headers)`` once, and get a ``Routed``:
the model to resolve, the ``x-seldon-route`` value to put on the response, and the model to
send a mirror copy to (or None). A request is part of an experiment when it names the
experiment's default model, or ``<experiment>.experiment`` (URL or ``seldon-model`` header).

Seldon compatibility (its Envoy routes): the route header value is ``:<model>_<version>:`` of
the candidate that served; a client that sends it back (Seldon matches "contains", so several
values may be concatenated) stays on that candidate. We match the candidate by model name and
ignore the version, so a session survives a new version of its candidate. Candidates are picked
at random by weight and the mirror gets ``percent``% of requests, from one ``random.Random`` per
process (seeded from the OS unless a test passes its own). An experiment over pipelines
(``resourceType: pipeline``) routes the same way between ``<candidate>.pipeline`` targets; its
baseline is addressed as ``<default>.pipeline`` and its route key is ``:<candidate>.pipeline:``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from modelplane.libs.dataplane.routing import RouteTable, default_version
from modelplane.libs.errors import NotFoundError
from modelplane.libs.resources.types import Experiment, ExperimentCandidate
from modelplane.services.gateway.dataflow import PIPELINE_SUFFIX

ROUTE_HEADER: Final = "x-seldon-route"
EXPERIMENT_SUFFIX: Final = ".experiment"
# Seldon wraps each route key in this separator (":iris_1:").
_SEPARATOR: Final = ":"
# "<model>_<version>": model names never contain "_" (resource name rule), so the last "_" splits.
_VERSIONED: Final = re.compile(r"^(?P<model>.+)_(?P<version>\d+)$")


@dataclass(frozen=True, slots=True)
class Routed:
    """Where one request goes: ``model`` to resolve, what to tell the client, what to mirror."""

    model: str
    # Value of the x-seldon-route response header; None when no experiment was involved.
    route_header: str | None = None
    # Model to send a fire-and-forget copy of the request to, if any.
    mirror: str | None = None
    experiment: str | None = None


def route_value(model: str, version: int | None) -> str:
    """Seldon's route key for a model version, wrapped: ``:iris_1:`` (``:iris:`` when unknown)."""
    key = f"{model}_{version}" if version is not None else model
    return f"{_SEPARATOR}{key}{_SEPARATOR}"


def addressed(name: str, resource_type: str) -> str:
    """How requests name a member: ``iris`` for a model, ``chain.pipeline`` for a pipeline."""
    return f"{name}{PIPELINE_SUFFIX}" if resource_type == "pipeline" else name


def sticky_candidate(header: str | None, candidates: Iterable[str]) -> str | None:
    """The candidate a returned x-seldon-route names, if any (first named wins)."""
    if not header:
        return None
    names = set(candidates)
    for token in header.split(_SEPARATOR):
        token = token.strip()
        if not token:
            continue
        if token.endswith(PIPELINE_SUFFIX):
            token = token[: -len(PIPELINE_SUFFIX)]
        versioned = _VERSIONED.match(token)
        model = versioned.group("model") if versioned else token
        if model in names:
            return model
    return None


def weighted_choice(candidates: tuple[ExperimentCandidate, ...], draw: float) -> str:
    """The candidate ``draw`` (uniform in [0, 1)) falls on, each owning a share = its weight."""
    total = sum(c.weight for c in candidates)
    point = draw * total
    for candidate in candidates:
        point -= candidate.weight
        if point < 0:
            return candidate.name
    return candidates[-1].name  # draw * total rounded up to total


def mirrored(percent: int, draw: float) -> bool:
    """Whether a request is copied to a mirror taking ``percent``% (``draw`` uniform in [0, 1))."""
    return draw * 100 < percent


class ExperimentTable:
    """Current experiments by name and by baseline model, kept up to date by the watcher."""

    def __init__(self) -> None:
        self._experiments: dict[str, Experiment] = {}
        self._baselines: dict[str, str] = {}
        self._seen: set[str] | None = None
        # True once one full replay of the KV bucket has been applied.
        self.synced = False

    def get(self, name: str) -> Experiment | None:
        return self._experiments.get(name)

    def with_default(self, model: str) -> Experiment | None:
        """The experiment whose baseline is ``model`` (the api keeps it to one)."""
        name = self._baselines.get(model)
        return self._experiments.get(name) if name is not None else None

    def names(self) -> list[str]:
        return sorted(self._experiments)

    def __len__(self) -> int:
        return len(self._experiments)

    def begin_sync(self) -> None:
        """A watch (re)starts: remember which keys its replay mentions."""
        self._seen = set()

    def put(self, experiment: Experiment) -> None:
        name = experiment.meta.name
        self._forget(name)
        self._experiments[name] = experiment
        if experiment.spec.default:
            self._baselines[addressed(experiment.spec.default, experiment.spec.resource_type)] = name
        if self._seen is not None:
            self._seen.add(name)

    def delete(self, name: str) -> None:
        self._forget(name)
        if self._seen is not None:
            self._seen.add(name)

    def end_sync(self) -> None:
        """The replay is complete: drop experiments it did not mention (deleted meanwhile)."""
        if self._seen is not None:
            for name in set(self._experiments) - self._seen:
                self._forget(name)
        self._seen = None
        self.synced = True

    def _forget(self, name: str) -> None:
        old = self._experiments.pop(name, None)
        if old is None:
            return
        baseline = addressed(old.spec.default, old.spec.resource_type)
        if self._baselines.get(baseline) == name:
            del self._baselines[baseline]


class ExperimentRouter:
    """Turns a requested model name (+ headers) into a ``Routed``; one per gateway process."""

    def __init__(
        self,
        experiments: ExperimentTable,
        routes: RouteTable | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._experiments = experiments
        self._routes = routes
        # Seeded from the OS: each gateway process draws its own sequence.
        self._rng = rng if rng is not None else random.Random()

    def splits(self, name: str) -> bool:
        """Whether an experiment has ``name`` (a model, or ``<pipeline>.pipeline``) as default."""
        return self._experiments.with_default(name) is not None

    def route(self, model: str, headers: Mapping[str, str]) -> Routed:
        """Where a request for ``model`` goes (``model`` unchanged when no experiment applies).

        NotFoundError for ``<x>.experiment`` naming no experiment."""
        if model.endswith(EXPERIMENT_SUFFIX):
            name = model[: -len(EXPERIMENT_SUFFIX)]
            experiment = self._experiments.get(name)
            if experiment is None:
                raise NotFoundError(f"experiment {name} not found")
        else:
            found = self._experiments.with_default(model)
            if found is None:
                return Routed(model=model)
            experiment = found
        return self._choose(experiment, headers.get(ROUTE_HEADER))

    def _choose(self, experiment: Experiment, route_header: str | None) -> Routed:
        spec, name = experiment.spec, experiment.meta.name
        if not spec.candidates:
            raise NotFoundError(f"experiment {name} has only a mirror: no candidate answers its requests")
        chosen = sticky_candidate(route_header, (c.name for c in spec.candidates))
        if chosen is None:
            chosen = weighted_choice(spec.candidates, self._rng.random())
        mirror = None
        if spec.mirror is not None and mirrored(spec.mirror.percent, self._rng.random()):
            mirror = addressed(spec.mirror.name, spec.resource_type)
        if spec.resource_type == "pipeline":
            target = addressed(chosen, spec.resource_type)
            return Routed(
                model=target, route_header=route_value(target, None), mirror=mirror, experiment=name
            )
        return Routed(model=chosen, route_header=self._route_value(chosen), mirror=mirror, experiment=name)

    def _route_value(self, model: str) -> str:
        route = self._routes.get(model) if self._routes is not None else None
        version = default_version(route) if route is not None else None
        return route_value(model, version.version if version is not None else None)

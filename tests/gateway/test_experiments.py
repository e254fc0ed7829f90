"""Experiment routing choices (pure): weighted split, stickiness, mirror share, table upkeep."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from modelplane.libs.dataplane.routing import RouteTable
from modelplane.libs.errors import NotFoundError
from modelplane.libs.resources.types import (
    Experiment,
    ExperimentCandidate,
    ExperimentMirror,
    ExperimentSpec,
    Meta,
)
from modelplane.libs.routes import Route, RouteVersion
from modelplane.services.gateway.experiments import (
    ROUTE_HEADER,
    ExperimentRouter,
    ExperimentTable,
    mirrored,
    route_value,
    sticky_candidate,
    weighted_choice,
)

REQUESTS = 1000


def ab(
    name: str = "ab",
    default: str = "iris",
    weights: tuple[int, int] = (80, 20),
    mirror: ExperimentMirror | None = None,
    resource_type: str = "model",
) -> Experiment:
    return Experiment(
        meta=Meta(name=name),
        spec=ExperimentSpec(
            candidates=(ExperimentCandidate("iris", weights[0]), ExperimentCandidate("iris2", weights[1])),
            default=default,
            mirror=mirror,
            resource_type=resource_type,
        ),
    )


def router(*experiments: Experiment, seed: int | None = 1) -> ExperimentRouter:
    table = ExperimentTable()
    for experiment in experiments:
        table.put(experiment)
    routes = RouteTable()
    routes.put(Route(model="iris", versions=(RouteVersion(3, "iris_3", ()),)))
    return ExperimentRouter(table, routes, random.Random(seed) if seed is not None else None)


def within_three_sigma(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 3 * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_80_20_split_over_1000_requests_is_within_three_sigma(seed: int | None) -> None:
    """1,000 requests for the baseline split 80/20 within 3 sigma, for several seeds."""
    choose = router(ab(), seed=seed)
    counts = Counter(choose.route("iris", {}).model for _ in range(REQUESTS))
    assert set(counts) == {"iris", "iris2"}
    assert within_three_sigma(counts["iris"], REQUESTS, 0.8), counts


def test_weighted_choice_gives_each_candidate_its_share_of_the_unit_interval() -> None:
    """Draws in [0, 0.8) go to the weight-80 candidate, [0.8, 1) to the weight-20 one."""
    candidates = (ExperimentCandidate("a", 80), ExperimentCandidate("b", 20))
    assert weighted_choice(candidates, 0.0) == "a"
    assert weighted_choice(candidates, 0.7999) == "a"
    assert weighted_choice(candidates, 0.8) == "b"
    assert weighted_choice(candidates, 0.99999) == "b"


def test_route_header_names_the_candidate_version_as_seldon_does() -> None:
    """The route value is ``:<model>_<version>:`` (version from the route; bare name without one)."""
    choose = router(ab(weights=(1, 1)))
    values = {choose.route("iris", {}).route_header for _ in range(50)}
    assert values == {":iris_3:", ":iris2:"}
    assert route_value("iris", 3) == ":iris_3:"


def test_a_returned_route_header_keeps_the_request_on_its_candidate() -> None:
    """A request sending x-seldon-route back stays on that candidate, even the 20% one."""
    choose = router(ab())
    for header in (":iris2_1:", ":iris2:", ":other_4::iris2_7:", "iris2_2"):
        picked = {choose.route("iris", {ROUTE_HEADER: header}).model for _ in range(200)}
        assert picked == {"iris2"}, header
    # A header naming no candidate is ignored: the split applies.
    assert sticky_candidate(":nosuch_1:", ["iris", "iris2"]) is None
    spread = Counter(choose.route("iris", {ROUTE_HEADER: ":nosuch_1:"}).model for _ in range(200))
    assert set(spread) == {"iris", "iris2"}


@pytest.mark.parametrize("percent", [0, 10, 50, 100])
def test_the_mirror_gets_its_percent_of_requests(percent: int) -> None:
    """The mirror is chosen for ``percent``% of 1,000 requests (within 3 sigma; 0 and 100 exactly)."""
    choose = router(ab(mirror=ExperimentMirror("shadow", percent)))
    mirrors = sum(choose.route("iris", {}).mirror == "shadow" for _ in range(REQUESTS))
    if percent in (0, 100):
        assert mirrors == REQUESTS * percent // 100
    else:
        assert within_three_sigma(mirrors, REQUESTS, percent / 100), mirrors
    assert mirrored(100, 0.999)
    assert not mirrored(0, 0.0)


def test_requests_outside_experiments_are_untouched() -> None:
    """A model that is no experiment's baseline routes to itself with no header and no mirror."""
    choose = router(ab())
    routed = choose.route("iris2", {ROUTE_HEADER: ":iris_1:"})
    assert (routed.model, routed.route_header, routed.mirror, routed.experiment) == (
        "iris2",
        None,
        None,
        None,
    )


def test_experiment_name_routes_without_a_default() -> None:
    """``<name>.experiment`` reaches an experiment with no default; unknown names are 404."""
    choose = router(ab(default=""))
    assert choose.route("iris", {}).route_header is None  # no baseline: iris is just a model
    routed = choose.route("ab.experiment", {})
    assert routed.model in {"iris", "iris2"}
    assert routed.experiment == "ab"
    with pytest.raises(NotFoundError, match="experiment nosuch not found"):
        choose.route("nosuch.experiment", {})


def test_pipeline_experiments_route_between_pipelines() -> None:
    """An experiment over pipelines splits requests for ``<default>.pipeline`` (not the model of
    the same name) between ``<candidate>.pipeline``, keyed ``:<candidate>.pipeline:``, sticky."""
    choose = router(ab(resource_type="pipeline"))
    assert choose.route("iris", {}).route_header is None  # the model iris is not the baseline
    routed = choose.route("iris.pipeline", {})
    assert routed.model in {"iris.pipeline", "iris2.pipeline"}
    assert routed.route_header == f":{routed.model}:"
    again = choose.route("iris.pipeline", {ROUTE_HEADER: ":iris2.pipeline:"})
    assert again.model == "iris2.pipeline"
    assert choose.route("ab.experiment", {ROUTE_HEADER: ":iris.pipeline:"}).model == "iris.pipeline"


def test_table_tracks_baselines_across_updates_and_resyncs() -> None:
    """Changing or deleting an experiment moves its baseline; a resync drops vanished ones."""
    table = ExperimentTable()
    table.put(ab())
    assert table.with_default("iris") is not None
    table.put(ab(default="iris2"))
    assert table.with_default("iris") is None
    assert table.with_default("iris2") is not None
    table.begin_sync()
    table.put(ab("other", default="iris"))
    table.end_sync()
    assert table.names() == ["other"]
    assert table.with_default("iris2") is None
    assert table.synced
    table.delete("other")
    assert len(table) == 0
    assert table.with_default("iris") is None

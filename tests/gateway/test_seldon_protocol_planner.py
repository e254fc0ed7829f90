"""How the planner resolves a Seldon Core v1 deployment name (``RequestPlanner.deployment``) and
plans it: a model, else a pipeline, experiments over either, one namespace; called directly."""

from __future__ import annotations

import random

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from modelplane.libs.dataplane.balancers.round_robin import RoundRobin
from modelplane.libs.dataplane.handler import GatewayHandler
from modelplane.libs.dataplane.holding import RequestHold
from modelplane.libs.dataplane.routing import RouteTable
from modelplane.libs.resources.manifests import parse_manifest
from modelplane.libs.resources.types import Experiment, Pipeline
from modelplane.libs.routes import Route, RouteEndpoint, RouteVersion
from modelplane.services.gateway.dataflow import PIPELINE, DataflowInvoker, FlowNames
from modelplane.services.gateway.experiments import ExperimentRouter, ExperimentTable
from modelplane.services.gateway.planner import Inbound, RequestPlanner

A = RouteEndpoint("s", 0, "a:1", "a:2")


def _experiment(name: str, default: str, candidates: list[str], resource_type: str) -> Experiment:
    parsed = parse_manifest(
        {
            "apiVersion": "mlops.seldon.io/v1alpha1",
            "kind": "Experiment",
            "metadata": {"name": name},
            "spec": {
                "default": default,
                "resourceType": resource_type,
                "candidates": [{"name": c, "weight": 1} for c in candidates],
            },
        }
    )
    assert isinstance(parsed, Experiment)
    return parsed


def _pipeline(name: str) -> Pipeline:
    parsed = parse_manifest(
        {
            "apiVersion": "mlops.seldon.io/v1alpha1",
            "kind": "Pipeline",
            "metadata": {"name": name},
            "spec": {"steps": [{"name": "iris"}]},
        }
    )
    assert isinstance(parsed, Pipeline)
    return parsed


@pytest.fixture
def planner(nc: NATS, js: JetStreamContext) -> RequestPlanner:
    """Models iris, team-a--iris (iris of namespace team-a) and both (a pipeline is also named both); pipelines chain, pa, pb and both;
    experiment "models" splits model "front" (no model of that name), experiment "flows" splits
    pipeline "pa" between pa and pb."""
    routes = RouteTable()
    routes.begin_sync()
    for name in ("iris", "both", "team-a--iris"):
        routes.put(Route(name, (RouteVersion(1, f"{name}_1", (A,)),)))
    routes.end_sync()
    handler = GatewayHandler(
        routes,
        RoundRobin(),
        retries=0,
        is_connected=lambda: True,
        hold=RequestHold(routes, hold_seconds=0, max_held=10),
    )
    pipelines = FlowNames()
    for name in ("chain", "pa", "pb", "both"):
        pipelines.put(_pipeline(name))
    table = ExperimentTable()
    table.put(_experiment("models", "front", ["iris", "front"], "model"))
    table.put(_experiment("flows", "pa", ["pa", "pb"], "pipeline"))
    return RequestPlanner(
        handler,
        experiments=ExperimentRouter(table, routes, random.Random(3)),
        dataflow=DataflowInvoker(nc, js, pipelines, FlowNames(), 1.0),
    )


def test_a_model_wins_then_a_pipeline_then_the_name_as_it_is(planner: RequestPlanner) -> None:
    """Seldon v1 deployments become a model or a pipeline; a model of the same name wins."""
    assert planner.deployment("default", "iris") == "iris"
    assert planner.deployment("default", "chain") == "chain.pipeline"
    assert planner.deployment("default", "both") == "both"
    assert planner.deployment("default", "ghost") == "ghost"
    assert planner.deployment("default", "pb.pipeline") == "pb.pipeline"
    assert planner.deployment("default", "flows.experiment") == "flows.experiment"


def test_experiment_defaults_count_as_deployments(planner: RequestPlanner) -> None:
    """A model experiment's default is planned as the model name even without such a model; a
    pipeline experiment's default as ``<name>.pipeline``."""
    assert planner.deployment("default", "front") == "front"
    assert planner.deployment("default", "pa") == "pa.pipeline"


def test_other_namespaces_name_their_own_resources(planner: RequestPlanner) -> None:
    """A deployment outside default is the resource named <namespace>--<name> (what the api
    derives there; importers.namespaces); a name already carrying it is kept."""
    assert planner.deployment("prod", "iris") == "prod--iris"
    assert planner.deployment("prod", "prod--iris") == "prod--iris"
    assert planner.deployment("default", "iris") == "iris"


async def test_pinned_names_ignore_the_seldon_model_header(planner: RequestPlanner) -> None:
    """A name from a deployment's path is planned as it is; unpinned, the header still wins."""
    pinned = await planner.plan(Inbound("iris", {"seldon-model": "chain.pipeline"}, pinned=True))
    assert (pinned.name, pinned.flow) == ("iris", None)
    unpinned = await planner.plan(Inbound("iris", {"seldon-model": "chain.pipeline"}))
    assert unpinned.flow == (PIPELINE, "chain")


async def test_a_pipeline_experiment_splits_the_deployment_and_the_v2_name(planner: RequestPlanner) -> None:
    """The experiment over pipelines routes both the resolved deployment and the V2 path's
    ``pa.pipeline`` (or the seldon-model header) to its candidates, naming the route."""
    for inbound in (
        Inbound(planner.deployment("default", "pa"), {}, pinned=True),
        Inbound("pa.pipeline", {}),
        Inbound("anything", {"seldon-model": "pa.pipeline"}),
    ):
        seen = set()
        for _ in range(40):
            plan = await planner.plan(inbound)
            assert plan.flow in ((PIPELINE, "pa"), (PIPELINE, "pb"))
            assert plan.route_header == f":{plan.name}:"
            seen.add(plan.name)
        assert seen == {"pa.pipeline", "pb.pipeline"}
    sticky = await planner.plan(Inbound("pa.pipeline", {"x-seldon-route": ":pb.pipeline:"}))
    assert sticky.name == "pb.pipeline"


async def test_a_model_experiment_splits_its_default(planner: RequestPlanner) -> None:
    """Requests for ``front`` (no such model) go to the candidates iris or front."""
    names = {(await planner.plan(Inbound("front", {}, pinned=True))).name for _ in range(40)}
    assert names == {"iris", "front"}


async def test_host_names_the_namespace_of_a_model_as_kserve_does(planner: RequestPlanner) -> None:
    """``Host: <name>.<namespace>.<domain>`` reaches the namespace's model; default, an unknown
    namespace or a Host naming another model leave the name as it is."""
    plan = await planner.plan(Inbound("iris", {"host": "iris.team-a.example.com"}))
    assert plan.name == "team-a--iris"
    for host in (
        "iris.default.example.com",
        "iris.team-b.example.com",
        "other.team-a.example.com",
        "127.0.0.1:9000",
    ):
        assert (await planner.plan(Inbound("iris", {"host": host}))).name == "iris"


async def test_the_seldon_namespace_header_names_the_namespace(planner: RequestPlanner) -> None:
    """``seldon-namespace: team-a`` reaches team-a's iris (for every transport: the planner
    names it); default or no header keep the name; pipeline and experiment names too."""
    assert (await planner.plan(Inbound("iris", {"seldon-namespace": "team-a"}))).name == "team-a--iris"
    assert (await planner.plan(Inbound("iris", {"seldon-namespace": "default"}))).name == "iris"
    assert planner.model_name("chain.pipeline", {"seldon-namespace": "team-a"}) == "team-a--chain.pipeline"
    assert planner.model_name("team-a--iris", {"seldon-namespace": "team-a"}) == "team-a--iris"
    assert planner.flow_name("chain", {"seldon-namespace": "team-a"}) == "team-a--chain"
    assert planner.flow_name("chain", {}) == "chain"

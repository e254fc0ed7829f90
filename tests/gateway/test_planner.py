"""The transport-neutral request planner: naming, experiments, labels, auth and the byte-bounded
hold, called directly (the adapters' tests run the same decisions over REST, gRPC and OpenAI)."""

from __future__ import annotations

import random

import pytest

from modelplane.libs.auth.tokens import Principal
from modelplane.libs.dataplane.balancers.round_robin import RoundRobin
from modelplane.libs.dataplane.handler import GatewayHandler
from modelplane.libs.dataplane.holding import RequestHold
from modelplane.libs.dataplane.routing import RouteTable
from modelplane.libs.errors import NotFoundError, PermissionDeniedError, RetryableError, UnauthenticatedError
from modelplane.libs.resources.types import (
    Experiment,
    ExperimentCandidate,
    ExperimentMirror,
    ExperimentSpec,
    Meta,
)
from modelplane.libs.routes import Route, RouteEndpoint, RouteVersion
from modelplane.services.gateway.access import Access
from modelplane.services.gateway.experiments import ExperimentRouter, ExperimentTable
from modelplane.services.gateway.held_bytes import HeldBytes
from modelplane.services.gateway.metrics import UNKNOWN_MODEL
from modelplane.services.gateway.planner import Inbound, RequestPlanner

A = RouteEndpoint("s", 0, "a:1", "a:2")
READY = Route("ready", (RouteVersion(1, "ready_1", (A,)),))
COLD = Route("cold", (RouteVersion(1, "cold_1", ()),))
CAND = Route("cand", (RouteVersion(2, "cand_2", (A,)),))


class Tokens:
    """A TokenVerifier over a dict (the KV-backed TokenStore has its own tests)."""

    def __init__(self, known: dict[str, Principal]) -> None:
        self._known = known

    async def verify(self, token: str) -> Principal | None:
        return self._known.get(token)


def planner(
    *, access: Access | None = None, held_bytes: HeldBytes | None = None, hold_seconds: float = 0
) -> RequestPlanner:
    routes = RouteTable()
    routes.begin_sync()
    for route in (READY, COLD, CAND):
        routes.put(route)
    routes.end_sync()
    hold = RequestHold(routes, hold_seconds=hold_seconds, max_held=10)
    handler = GatewayHandler(routes, RoundRobin(), retries=0, is_connected=lambda: True, hold=hold)
    table = ExperimentTable()
    table.put(
        Experiment(
            meta=Meta(name="ab"),
            spec=ExperimentSpec(
                candidates=(ExperimentCandidate("cand", 100),),
                default="ready",
                mirror=ExperimentMirror("cold", 100),
            ),
        )
    )
    experiments = ExperimentRouter(table, routes, random.Random(1))
    return RequestPlanner(handler, access=access, experiments=experiments, held_bytes=held_bytes)


async def test_plan_applies_the_seldon_header_and_experiments() -> None:
    """The seldon-model header names the model; an experiment's default goes to its candidate,
    with the route header and the mirror, whatever transport asked."""
    plan = await planner().plan(Inbound("url-name", {"seldon-model": "ready"}))
    assert (plan.name, plan.route_header, plan.mirror, plan.metric_label) == (
        "cand",
        ":cand_2:",
        "cold",
        "cand",
    )
    plain = await planner().plan(Inbound("cold", {}))
    assert (plain.name, plain.route_header, plain.mirror, plain.flow) == ("cold", None, None, None)


async def test_unknown_names_get_the_unknown_label_and_no_flow_without_dataflow() -> None:
    """Labels stay bounded: an unknown model is counted as unknown; without dataflow a
    ``.pipeline`` name is just an unknown model."""
    assert (await planner().plan(Inbound("nope", {}))).metric_label == UNKNOWN_MODEL
    plan = await planner().plan(Inbound("chain.pipeline", {}))
    assert (plan.flow, plan.metric_label) == (None, UNKNOWN_MODEL)
    with pytest.raises(NotFoundError):
        await planner().plan(Inbound("missing.experiment", {}))


def test_held_model_names_only_known_models_without_a_ready_replica() -> None:
    """What the server reserves bytes for before reading a body."""
    plans = planner()
    assert plans.held_model(Inbound("cold", {})) == "cold"
    assert plans.held_model(Inbound("x", {"seldon-model": "cold"})) == "cold"
    assert plans.held_model(Inbound("ready", {})) is None  # routed to "cand", which is ready
    assert plans.held_model(Inbound("nope", {})) is None
    assert plans.held_model(Inbound("cold", {}, version="7")) is None


async def test_target_reserves_held_bytes_only_while_held() -> None:
    """A ready model is not counted; a held one is, and past the bound it is 503 at once."""
    budget = HeldBytes(per_model=100, total=100)
    plans = planner(held_bytes=budget)
    assert (await plans.target("cand", None, 10_000)).server_model_name == "cand_2"
    with pytest.raises(RetryableError, match="0 of 100 bytes"):
        await plans.target("cold", None, 101)
    with pytest.raises(RetryableError, match="no ready replica"):
        await plans.target("cold", None, 50)  # within the bound: held, then the hold gives up
    assert budget.held == 0
    reserved = budget.reserve("cold", 100)
    with pytest.raises(RetryableError, match="no ready replica"):
        # The server's reservation for this request counts; nothing is reserved twice.
        await plans.target("cold", None, 100, reserved)
    reserved.release()
    assert budget.held == 0


async def test_access_requires_an_inference_or_admin_token() -> None:
    """Off: everyone; required: 401 without or with an unknown token, 403 for other roles."""
    assert await planner().authenticate({}) is None
    tokens = Tokens(
        {
            "mpt_i": Principal("i", "inference"),
            "mpt_a": Principal("a", "admin"),
            "mpt_v": Principal("v", "viewer"),
            "mpt_d": Principal("d", "deployer"),
        }
    )
    plans = planner(access=Access(tokens))
    for headers in ({}, {"authorization": "Bearer mpt_zzz"}, {"authorization": "mpt_i"}):
        with pytest.raises(UnauthenticatedError):
            await plans.authenticate(headers)
    for token in ("mpt_v", "mpt_d"):
        with pytest.raises(PermissionDeniedError, match="role"):
            await plans.authenticate({"authorization": f"Bearer {token}"})
    assert await plans.authenticate({"authorization": "Bearer mpt_i"}) == Principal("i", "inference")
    assert await plans.authenticate({"authorization": "bearer mpt_a"}) == Principal("a", "admin")

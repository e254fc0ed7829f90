"""The NATS permission table: who may write state, answer, and read whose inbox.

Enforcement by a real nats-server is tested in tests/up/test_nats_access.py; these check the
table's properties over every user at once.
"""

from __future__ import annotations

import pytest

from modelplane.libs import subjects
from modelplane.libs.nats_permissions import (
    SERVICE_USERS,
    Permissions,
    agent_permissions,
    agent_user,
    service_permissions,
)


def _everyone() -> dict[str, Permissions]:
    users = {user: service_permissions(user) for user in SERVICE_USERS}
    users[agent_user("mlserver", 0)] = agent_permissions("mlserver", 0)
    return users


def test_only_the_api_and_up_write_desired_state_or_tokens() -> None:
    """No other user may publish into a desired-state bucket or the tokens bucket."""
    guarded = (*subjects.DESIRED_BUCKETS, subjects.KV_TOKENS)
    writers = {"api": set(guarded), "up": {subjects.KV_TOKENS}}
    for user, permissions in _everyone().items():
        writes = {b for b in guarded for p in permissions.publish if p.startswith(f"$KV.{b}.")}
        assert writes == writers.get(user, set()), user


def test_the_gateway_writes_no_state_at_all() -> None:
    gateway = service_permissions("gateway")
    assert not [p for p in gateway.publish if p.startswith("$KV.")]
    assert not [p for p in gateway.publish if ".STREAM.CREATE.KV_" in p or ".STREAM.PURGE." in p]


def test_nobody_but_its_owner_subscribes_to_an_inbox() -> None:
    """Each user subscribes under its own inbox prefix only; no wildcard over all inboxes."""
    for user, permissions in _everyone().items():
        inboxes = [p for p in permissions.subscribe if p.startswith(subjects.INBOX_ROOT) or p in (">", "*")]
        assert inboxes == [f"{subjects.user_inbox_prefix(user)}.>"], user


def test_only_dataflow_publishes_into_an_inbox_and_only_the_gateways() -> None:
    for user, permissions in _everyone().items():
        inboxes = [p for p in permissions.publish if p.startswith(subjects.INBOX_ROOT)]
        expected = [f"{subjects.user_inbox_prefix('gateway')}.>"] if user == "dataflow" else []
        assert inboxes == expected, user


def test_an_agent_is_confined_to_its_own_replica() -> None:
    """Its own key in the replicas bucket, its own commands, answers only to requests it got."""
    agent = agent_permissions("mlserver", 1)
    assert [p for p in agent.publish if p.startswith("$KV.")] == [f"$KV.{subjects.KV_REPLICAS}.mlserver.1"]
    commands = [p for p in agent.subscribe if p.startswith(subjects.AGENT_PREFIX)]
    assert commands == ["modelplane.agent.mlserver.1.*"]
    assert not [p for p in agent.publish if p.startswith(f"{subjects.AGENT_PREFIX}.mlserver.")]
    assert agent.allow_responses


def test_only_responders_may_answer_requests() -> None:
    answering = {user for user, p in _everyone().items() if p.allow_responses}
    assert answering == {"storage", agent_user("mlserver", 0)}


def test_no_user_has_a_catch_all_rule() -> None:
    for user, permissions in _everyone().items():
        for pattern in (*permissions.publish, *permissions.subscribe):
            assert pattern not in (">", "*", "$JS.API.>", "$KV.>", "modelplane.>"), (user, pattern)


def test_an_unknown_service_user_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown NATS service user 'mallory'"):
        service_permissions("mallory")


def test_agent_user_names_do_not_collide() -> None:
    assert agent_user("a-1", 0) != agent_user("a", 10)
    assert "." not in agent_user("mlserver", 3)

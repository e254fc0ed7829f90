"""The Server replica cap: who is bounded, and how the variable is read."""

from __future__ import annotations

import pytest

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.replica_cap import (
    DEFAULT_MAX_SERVER_REPLICAS,
    MAX_SERVER_REPLICAS_ENV,
    cap_from_env,
    check_server_replicas,
    replica_cap,
)
from modelplane.libs.resources.types import ServerSpec


def test_a_servers_own_max_replicas_wins_over_the_cap() -> None:
    """maxReplicas set: that bound; unset (0): the cap."""
    assert replica_cap(20, 8) == 20
    assert replica_cap(0, 8) == 8


def test_only_servers_without_max_replicas_are_checked() -> None:
    """300 without maxReplicas is refused naming spec.replicas; with maxReplicas 300 it is not."""
    with pytest.raises(InvalidError) as caught:
        check_server_replicas(ServerSpec("mlserver", replicas=300), 8)
    assert caught.value.field == "spec.replicas"
    check_server_replicas(ServerSpec("mlserver", replicas=8), 8)
    check_server_replicas(ServerSpec("mlserver", replicas=300, max_replicas=300), 8)


def test_the_variable_is_read_and_checked() -> None:
    """Unset: the default; a bad value is InvalidError naming the variable."""
    assert cap_from_env({}) == DEFAULT_MAX_SERVER_REPLICAS
    assert cap_from_env({MAX_SERVER_REPLICAS_ENV: "3"}) == 3
    for bad in ("0", "-1", "many"):
        with pytest.raises(InvalidError) as caught:
            cap_from_env({MAX_SERVER_REPLICAS_ENV: bad})
        assert caught.value.field == MAX_SERVER_REPLICAS_ENV

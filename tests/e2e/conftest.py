"""End-to-end fixtures: a real `modelplane up` with real MLServer replicas (slow)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelplane.libs.local_paths import LOCAL_ROOTS_ENV
from tests.e2e.stack import REPO, Ports, UpProcess, nats_permission_violations


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.e2e)
        item.add_marker(pytest.mark.timeout(600))


@pytest.fixture(autouse=True)
def _no_leaked_tasks() -> None:
    """These tests are synchronous and drive subprocesses: no event-loop tasks to check."""


@pytest.fixture
def stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[UpProcess]:
    """A real `modelplane up`; a test module's ``UP_ENV`` dict adds settings to its environment.

    After the test, the embedded nats-server's log must show no permission violation: every
    service did all it needed as its own NATS user."""
    # The tests keep their model folders in tmp_path (which also holds the state dir, as a
    # checkout holds .modelplane): it is an allowed local storage root beside the repo.
    env = {
        LOCAL_ROOTS_ENV: os.pathsep.join([str(REPO), str(tmp_path)]),
        **getattr(request.module, "UP_ENV", {}),
    }
    up = UpProcess(tmp_path / "state", Ports(), tmp_path / "up.log", extra_env=env)
    up.start()
    try:
        up.wait_ready()
        yield up
    finally:
        up.stop()
    # A module that provokes a violation on purpose lists it in ALLOWED_NATS_VIOLATIONS.
    allowed = getattr(request.module, "ALLOWED_NATS_VIOLATIONS", ())
    violations = [v for v in nats_permission_violations(up.state_dir) if not any(a in v for a in allowed)]
    assert not violations, "NATS permission violations:\n" + "\n".join(violations[:20])

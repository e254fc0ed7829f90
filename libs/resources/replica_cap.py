"""The upper bound on a Server's replicas when the Server itself sets no maxReplicas.

Design: ``replicas: 300`` on a Server without maxReplicas would make a local ``up`` start 300
model servers. One setting, read under the scheduler's name by every process that acts on a
Server's replica count (the api refuses above it, the scheduler asks for no more, ``up``'s
launcher starts no more), bounds that. A Server that sets maxReplicas has chosen its own bound.
"""

from __future__ import annotations

from collections.abc import Mapping

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.types import ServerSpec

# The environment variable every reader uses, so that one value holds across the processes.
MAX_SERVER_REPLICAS_ENV = "MODELPLANE_SCHEDULER_MAX_SERVER_REPLICAS"
# Sized for a laptop: eight model-server processes of the default 1 GiB each.
DEFAULT_MAX_SERVER_REPLICAS = 8


def replica_cap(max_replicas: int, cap: int) -> int:
    """The most replicas a Server may run: its own maxReplicas, else ``cap``."""
    return max_replicas if max_replicas > 0 else cap


def check_server_replicas(spec: ServerSpec, cap: int) -> None:
    """InvalidError naming the field when a Server without maxReplicas asks for more than ``cap``."""
    # (minReplicas needs no check of its own: every change of replicas, the autoscaler's too,
    # passes here.)
    if spec.max_replicas <= 0 and spec.replicas > cap:
        raise InvalidError(
            f"{spec.replicas} replicas is above the limit of {cap} for a Server without maxReplicas"
            f" ({MAX_SERVER_REPLICAS_ENV}); set spec.maxReplicas to allow more",
            field="spec.replicas",
        )


def cap_from_env(env: Mapping[str, str]) -> int:
    """The cap as set in ``env`` (the default when unset); InvalidError naming the variable if bad."""
    raw = env.get(MAX_SERVER_REPLICAS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_SERVER_REPLICAS
    try:
        cap = int(raw)
    except ValueError:
        cap = 0
    if cap <= 0:
        raise InvalidError(f"must be a whole number > 0, got {raw!r}", field=MAX_SERVER_REPLICAS_ENV)
    return cap

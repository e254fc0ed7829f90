"""Who may do what on the control API: the one place the api decides.

Design: every handler method names its action (read, apply, delete, scale, tokens) and, when it
writes, the kind it writes; ``authorize`` answers for the caller's role. A deployer's manifest is
also read whole by ``check_content`` before it is parsed: a deployer deploys models, pipelines,
experiments and graphs, never anything that starts a process of its choosing on the host, so
``command``, ``args`` and ``env`` keys are refused wherever they appear (even where the parser
would ignore them) and so is ``runtime: custom``. The error names the field, as validation does.

Roles (``libs.auth.roles``): ``admin`` everything; ``deployer`` reads, and applies, deletes and
scales Models, Pipelines, Experiments and InferenceGraphs (scale: Models); ``viewer`` reads
(get, list, status, watch, replicas, inspect); ``inference`` nothing here (the gateway's role).
Foreign kinds: a deployer applies and deletes InferenceServices, TrainedModels and
SeldonDeployments (``authorize_foreign``; their manifests are read by ``check_content`` too, so
a container's ``env`` or ``args`` in them is refused); ServingRuntimes and
ClusterServingRuntimes are admin only. Token administration is admin only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final, Literal

from modelplane.libs.auth.roles import ADMIN, DEPLOYER, VIEWER
from modelplane.libs.auth.tokens import Principal
from modelplane.libs.errors import PermissionDeniedError
from modelplane.libs.resources.types import Kind

Action = Literal["read", "apply", "delete", "scale", "tokens"]

# What a deployer may write, by action.
_DEPLOYER_KINDS: Final[dict[Action, frozenset[Kind]]] = {
    "apply": frozenset({"Model", "Pipeline", "Experiment", "InferenceGraph"}),
    "delete": frozenset({"Model", "Pipeline", "Experiment", "InferenceGraph"}),
    "scale": frozenset({"Model"}),
}
# Foreign kinds a deployer may apply and delete: those that deploy models. The runtimes
# (ServingRuntime, ClusterServingRuntime) say which processes run: admin only, like ServerConfigs.
_DEPLOYER_FOREIGN: Final = frozenset({"InferenceService", "TrainedModel", "SeldonDeployment"})
# Keys that choose what runs on the host, refused anywhere in a deployer's manifest.
_HOST_KEYS: Final = ("command", "args", "env")
_CUSTOM_RUNTIME: Final = "custom"
_VERBS: Final[dict[Action, str]] = {
    "read": "read",
    "apply": "apply",
    "delete": "delete",
    "scale": "scale",
    "tokens": "manage tokens",
}


def authorize(principal: Principal, action: Action, kind: Kind | None = None) -> None:
    """PermissionDeniedError unless ``principal`` may do ``action`` (on ``kind``)."""
    role = principal.role
    if role == ADMIN:
        return
    if action == "read" and role in (DEPLOYER, VIEWER):
        return
    if role == DEPLOYER and action in _DEPLOYER_KINDS:
        if kind is None or kind in _DEPLOYER_KINDS[action]:
            return
        raise PermissionDeniedError(f"the deployer role may not {_VERBS[action]} {kind}s", field="kind")
    raise PermissionDeniedError(f"the {role} role may not {_VERBS[action]} on the control API")


def authorize_foreign(principal: Principal, action: Action, kind: str) -> None:
    """PermissionDeniedError unless ``principal`` may ``action`` (apply, delete) ``kind``."""
    role = principal.role
    if role == ADMIN:
        return
    if role == DEPLOYER and action in ("apply", "delete") and kind in _DEPLOYER_FOREIGN:
        return
    if role == DEPLOYER:
        raise PermissionDeniedError(f"the deployer role may not {_VERBS[action]} {kind}s", field="kind")
    raise PermissionDeniedError(f"the {role} role may not {_VERBS[action]} on the control API")


def check_content(principal: Principal, manifest: Any) -> None:
    """PermissionDeniedError naming the first field of ``manifest`` the role may not set."""
    if principal.role == ADMIN:
        return
    for path, key, value in _fields(manifest, ""):
        if key in _HOST_KEYS and value not in (None, "", [], {}, ()):
            raise PermissionDeniedError(f"the {principal.role} role may not set it", field=path)
    for path, key, value in _fields(manifest, ""):
        if key == "runtime" and value == _CUSTOM_RUNTIME:
            raise PermissionDeniedError(
                f"the {principal.role} role may not use the custom runtime", field=path
            )


def _fields(value: Any, prefix: str) -> Iterator[tuple[str, str, Any]]:
    """Every (dotted path, key, value) of a JSON-like document, depth first in document order."""
    if isinstance(value, dict):
        for key, child in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            yield path, str(key), child
            yield from _fields(child, path)
    elif isinstance(value, list | tuple):
        for index, child in enumerate(value):
            yield from _fields(child, f"{prefix}[{index}]")

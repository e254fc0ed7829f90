"""MLServer's runtime implementations we know: which requirement picks one, how to install it.

sklearn, xgboost and lightgbm come with modelplane; mlflow is an extra (heavy) and huggingface
cannot be installed beside it, so a replica may advertise a capability its interpreter lacks. Without this
check MLServer's load fails deep in its own import machinery; with it the load fails before the
server is asked, with a reason naming what to install (it reaches the Model's ModelFailed status).

Importability is looked up with ``importlib.util.find_spec`` (no import, so no torch start-up) once
per agent, and only for the interpreter the launched MLServer runs on: a custom or attached server
has its own environment, which the agent cannot see.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass

MLSERVER_VERSION = "1.7.1"


@dataclass(frozen=True, slots=True)
class Implementation:
    """One MLServer runtime: the requirement that picks it, its class, and how to install it."""

    requirement: str
    implementation: str  # "module.Class", as model-settings.json names it
    install: str  # the advice a missing-runtime reason gives

    @property
    def module(self) -> str:
        return self.implementation.split(".", 1)[0]


def _bundled(requirement: str, implementation: str) -> Implementation:
    # A dependency of modelplane: missing only from a broken or hand-made environment.
    return Implementation(
        requirement, implementation, f"pip install mlserver-{requirement}=={MLSERVER_VERSION}"
    )


def _extra(requirement: str, implementation: str) -> Implementation:
    return Implementation(requirement, implementation, f"pip install 'modelplane[{requirement}]'")


# In the order a model's requirements are matched against; the first match wins.
IMPLEMENTATIONS: tuple[Implementation, ...] = (
    _bundled("sklearn", "mlserver_sklearn.SKLearnModel"),
    _bundled("xgboost", "mlserver_xgboost.XGBoostModel"),
    _bundled("lightgbm", "mlserver_lightgbm.LightGBMModel"),
    _extra("mlflow", "mlserver_mlflow.MLflowRuntime"),
    # mlserver-huggingface 1.7.1 imports optimum 1.x, which needs transformers<5, which needs
    # huggingface_hub<1; modelplane's Hub fetcher needs huggingface_hub 2. pip installs it with
    # transformers 5 anyway, and its import fails: so no extra, and advice that says so.
    Implementation(
        "huggingface",
        "mlserver_huggingface.HuggingFaceRuntime",
        f"mlserver-huggingface=={MLSERVER_VERSION} cannot share modelplane's environment (it needs "
        "transformers<5, hence huggingface_hub<1): serve it with a custom ServerConfig whose "
        "mlserver has an environment of its own",
    ),
)

_BY_REQUIREMENT = {i.requirement: i for i in IMPLEMENTATIONS}
_BY_MODULE = {i.module: i for i in IMPLEMENTATIONS}


def implementation_for(requirements: Iterable[str]) -> Implementation | None:
    """The runtime the first requirement naming one picks (None when none does)."""
    for requirement in requirements:
        found = _BY_REQUIREMENT.get(requirement.strip().lower())
        if found:
            return found
    return None


def installed_modules() -> frozenset[str]:
    """The known runtimes' modules this interpreter can import."""
    return frozenset(i.module for i in IMPLEMENTATIONS if _importable(i.module))


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken package, or a module without a spec
        return False


def missing_reason(implementation: str, installed: frozenset[str]) -> str:
    """Why ``implementation`` cannot load ("" when it can, or when it is not one we know:
    custom model code may ship inside the artifact, where only MLServer finds it)."""
    known = _BY_MODULE.get(implementation.split(".", 1)[0])
    if known is None or known.module in installed:
        return ""
    return f"the {known.requirement} runtime ({known.implementation}) is not installed: {known.install}"

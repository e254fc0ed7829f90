"""The checked form of a Seldon Core v1 SeldonDeployment (what ``seldon_manifest`` reads a
manifest into): its vocabulary (protocols, node types, built-in implementations, annotations)
and frozen dataclasses for the deployment, its predictors, their pods and graph nodes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

API_VERSIONS: Final = (
    "machinelearning.seldon.io/v1",
    "machinelearning.seldon.io/v1alpha2",
    "machinelearning.seldon.io/v1alpha3",
)
KIND: Final = "SeldonDeployment"

PROTOCOLS: Final = ("seldon", "tensorflow", "kfserving", "v2")
TRANSPORTS: Final = ("rest", "grpc")
SERVER_TYPES: Final = ("rpc", "kafka")
UNIT_TYPES: Final = ("UNKNOWN_TYPE", "ROUTER", "COMBINER", "MODEL", "TRANSFORMER", "OUTPUT_TRANSFORMER")
METHODS: Final = ("TRANSFORM_INPUT", "TRANSFORM_OUTPUT", "ROUTE", "AGGREGATE", "SEND_FEEDBACK")
PARAMETER_TYPES: Final = ("INT", "FLOAT", "DOUBLE", "STRING", "BOOL")

# Implementations the executor runs itself (not prepackaged servers).
SIMPLE_MODEL: Final = "SIMPLE_MODEL"
SIMPLE_ROUTER: Final = "SIMPLE_ROUTER"
RANDOM_ABTEST: Final = "RANDOM_ABTEST"
AVERAGE_COMBINER: Final = "AVERAGE_COMBINER"
UNKNOWN_IMPLEMENTATION: Final = "UNKNOWN_IMPLEMENTATION"
BUILT_IN: Final = frozenset(
    {SIMPLE_MODEL, SIMPLE_ROUTER, RANDOM_ABTEST, AVERAGE_COMBINER, UNKNOWN_IMPLEMENTATION}
)

HUGGINGFACE_SERVER: Final = "HUGGINGFACE_SERVER"
# Prepackaged servers that cannot speak the tensorflow protocol (the webhook's list).
NO_TENSORFLOW_PROTOCOL: Final = frozenset(
    {"SKLEARN_SERVER", "XGBOOST_SERVER", "MLFLOW_SERVER", HUGGINGFACE_SERVER}
)

NO_ENGINE_ANNOTATION: Final = "seldon.io/no-engine"
REST_TIMEOUT_ANNOTATION: Final = "seldon.io/rest-timeout"
GRPC_TIMEOUT_ANNOTATION: Final = "seldon.io/grpc-timeout"


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    value: str
    type: str


@dataclass(frozen=True, slots=True)
class Unit:
    """One graph node (Seldon's PredictiveUnit) after Seldon's defaulting.

    ``path`` is where it was written (``spec.predictors[0].graph.children[1]``)."""

    path: str
    name: str
    type: str
    implementation: str
    methods: tuple[str, ...] = ()
    children: tuple[Unit, ...] = ()
    parameters: tuple[Parameter, ...] = ()
    model_uri: str = ""
    secret_name: str = ""
    logger_mode: str = ""

    @property
    def prepackaged(self) -> bool:
        return self.implementation not in BUILT_IN

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    def walk(self) -> tuple[Unit, ...]:
        """This node and every node below it, depth first (Seldon's GetPredictiveUnitList)."""
        return (self, *(u for child in self.children for u in child.walk()))


@dataclass(frozen=True, slots=True)
class Scaling:
    """An HPA or KEDA section: replicas between ``minimum`` and ``maximum`` (0 = unbounded)."""

    path: str
    source: str
    minimum: int
    maximum: int
    metrics: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Component:
    """One componentSpecs entry: a pod, its containers, and how many of it."""

    index: int
    pod_name: str
    containers: tuple[str, ...]
    # Container name -> memory (bytes) its resources ask for (requests, else limits).
    memory: Mapping[str, int]
    replicas: int | None
    scaling: Scaling | None


@dataclass(frozen=True, slots=True)
class Predictor:
    index: int
    name: str
    graph: Unit
    components: tuple[Component, ...]
    replicas: int | None
    traffic: int
    shadow: bool
    has_explainer: bool

    @property
    def path(self) -> str:
        return f"spec.predictors[{self.index}]"

    def component_of(self, unit_name: str) -> Component | None:
        """The pod that runs ``unit_name``: the one listing its container, else the first
        (Seldon appends a prepackaged server's container to componentSpecs[0])."""
        for component in self.components:
            if unit_name in component.containers:
                return component
        return self.components[0] if self.components else None


@dataclass(frozen=True, slots=True)
class Deployment:
    name: str
    protocol: str
    transport: str
    server_type: str
    replicas: int | None
    predictors: tuple[Predictor, ...]
    # Seconds from seldon.io/rest-timeout (else grpc-timeout); 0 when neither is set.
    timeout_seconds: float = 0.0

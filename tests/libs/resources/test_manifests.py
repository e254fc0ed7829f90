"""Manifest parsing: native and Seldon v2 formats, and errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.local_uris import resolve_relative_storage
from modelplane.libs.resources.manifests import parse_manifest, to_manifest
from modelplane.libs.resources.types import LoadBalancing, Model, PrefixHashOptions, Server, ServerConfig


def model_doc(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "iris"},
        "spec": {"storageUri": "file:///models/iris", **spec},
    }


def test_seldon_model_is_accepted_unchanged_with_fields_we_do_not_act_on() -> None:
    """A Seldon v2 Model, extra Seldon fields included, translates to the native model."""
    doc = {
        "apiVersion": "mlops.seldon.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "iris", "namespace": "seldon-mesh"},
        "spec": {
            "storageUri": "gs://seldon-models/scv2/samples/mlserver_1.3.5/iris-sklearn",
            "requirements": ["sklearn"],
            "memory": "100Ki",
            "dedicated": False,
            "parameters": [{"name": "a", "value": "1"}],
        },
    }
    model = parse_manifest(doc)
    assert isinstance(model, Model)
    assert model.spec.requirements == ("sklearn",)
    assert model.spec.memory_bytes == 100 * 1024
    assert model.spec.parameters == {"a": "1"}
    assert model.meta.imported_from == "mlops.seldon.io/v1alpha1/Model"


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    [
        ({"kind": "Model"}, "apiVersion", "required"),
        ({"apiVersion": "v1", "kind": "Model"}, "apiVersion", "unknown apiVersion"),
        ({"apiVersion": "modelplane.io/v1alpha1", "kind": "Pod"}, "kind", "unknown kind"),
        ({**model_doc(), "spec": {}}, "spec.storageUri", "required"),
        ({**model_doc(), "metadata": {"name": "Iris_1"}}, "metadata.name", "not a valid name"),
        (model_doc(replicas=-1), "spec.replicas", ">= 0"),
        (model_doc(replicas=1, minReplicas=2), "spec.replicas", "below minReplicas"),
        (model_doc(memory="lots"), "spec.memory", "memory quantity"),
        (model_doc(storageURI="x"), "spec.storageURI", "unknown field"),
        (model_doc(loadBalancing={"strategy": "Random"}), "spec.loadBalancing.strategy", "one of"),
        (
            model_doc(loadBalancing={"prefixHash": {"meanLoadFactor": 90}}),
            "spec.loadBalancing.prefixHash.meanLoadFactor",
            ">= 100",
        ),
        (
            model_doc(loadBalancing={"prefixHash": {"replication": 0}}),
            "spec.loadBalancing.prefixHash.replication",
            ">= 1",
        ),
        (model_doc(loadBalancing={"stratgy": "LeastLoad"}), "spec.loadBalancing.stratgy", "unknown field"),
        (model_doc(timeoutSeconds=0), "spec.timeoutSeconds", "> 0"),
    ],
)
def test_bad_manifests_name_the_field(doc: dict[str, Any], field: str, words: str) -> None:
    """Each invalid manifest raises InvalidError naming the offending field and the reason."""
    with pytest.raises(InvalidError) as err:
        parse_manifest(doc)
    assert err.value.field == field
    assert words in str(err.value)


def test_native_round_trip_through_to_manifest() -> None:
    """to_manifest renders what parse_manifest reads back to the same resource."""
    for doc in (
        model_doc(requirements=["sklearn"], memory="1Mi", replicas=2, maxReplicas=3, secretName="s3-creds"),
        model_doc(loadBalancing={"strategy": "LeastLoad"}),
        model_doc(loadBalancing={"strategy": "PrefixHash", "prefixHash": {"prefixCharLength": 40}}),
        {
            "apiVersion": "modelplane.io/v1alpha1",
            "kind": "Server",
            "metadata": {"name": "small"},
            "spec": {"serverConfig": "mlserver", "extraCapabilities": ["custom-cap"], "replicas": 1},
        },
        {
            "apiVersion": "modelplane.io/v1alpha1",
            "kind": "ServerConfig",
            "metadata": {"name": "mine"},
            "spec": {"runtime": "custom", "command": ["srv", "--port", "{http_port}"], "memory": "2Gi"},
        },
    ):
        resource = parse_manifest(doc)
        assert parse_manifest(to_manifest(resource)) == resource


def test_seldon_server_config_reads_runtime_capabilities_and_memory_from_pod_spec() -> None:
    """A Seldon ServerConfig's pod template yields its runtime, capabilities and memory."""
    doc = {
        "apiVersion": "mlops.seldon.io/v1alpha1",
        "kind": "ServerConfig",
        "metadata": {"name": "triton"},
        "spec": {
            "podSpec": {
                "containers": [
                    {
                        "name": "agent",
                        "env": [
                            {"name": "SELDON_SERVER_CAPABILITIES", "value": "triton,onnx"},
                            {"name": "SELDON_OVERCOMMIT_PERCENTAGE", "value": "10"},
                        ],
                    },
                    {
                        "name": "triton",
                        "image": "nvcr.io/nvidia/tritonserver:23.03-py3",
                        "resources": {"requests": {"memory": "1Gi"}},
                    },
                ]
            }
        },
    }
    config = parse_manifest(doc)
    assert isinstance(config, ServerConfig)
    assert config.spec.runtime == "triton"
    assert config.spec.capabilities == ("triton", "onnx")
    assert config.spec.overcommit_percent == 10
    assert config.spec.memory_bytes == 1 << 30


def test_seldon_server_translates() -> None:
    """A Seldon Server keeps its config reference, capabilities and scaling bounds."""
    server = parse_manifest(
        {
            "apiVersion": "mlops.seldon.io/v1alpha1",
            "kind": "Server",
            "metadata": {"name": "mlserver-custom"},
            "spec": {
                "serverConfig": "mlserver",
                "extraCapabilities": ["custom-cap"],
                "replicas": 2,
                "maxReplicas": 4,
            },
        }
    )
    assert isinstance(server, Server)
    assert server.spec.extra_capabilities == ("custom-cap",)
    assert (server.spec.replicas, server.spec.max_replicas) == (2, 4)


def test_relative_storage_uri_resolves_against_the_manifest_folder() -> None:
    """Relative local URIs become absolute file:// URIs; remote and absolute ones are untouched."""
    assert resolve_relative_storage(model_doc(storageUri="./model"), "/srv/x")["spec"]["storageUri"] == (
        "file:///srv/x/model"
    )
    for uri in ("s3://bucket/iris", "file:///abs/iris", "/abs/iris"):
        assert resolve_relative_storage(model_doc(storageUri=uri), "/srv/x")["spec"]["storageUri"] == uri


def test_load_balancing_defaults_to_round_robin_and_reads_kubeai_fields() -> None:
    """No loadBalancing -> RoundRobin; KubeAI's prefixHash fields fill in, the rest keep KubeAI's defaults."""
    plain = parse_manifest(model_doc())
    assert isinstance(plain, Model)
    assert plain.spec.load_balancing == LoadBalancing("RoundRobin")
    assert "loadBalancing" not in to_manifest(plain)["spec"]
    doc = model_doc(loadBalancing={"strategy": "PrefixHash", "prefixHash": {"meanLoadFactor": 150}})
    model = parse_manifest(doc)
    assert isinstance(model, Model)
    assert model.spec.load_balancing == LoadBalancing(
        "PrefixHash", PrefixHashOptions(mean_load_factor_percent=150, replication=256, prefix_char_length=100)
    )


def test_load_balancing_is_read_from_seldon_models_too() -> None:
    """A Seldon-form Model may carry loadBalancing (a modelplane addition) and it is honoured."""
    doc = {**model_doc(loadBalancing={"strategy": "LeastLoad"}), "apiVersion": "mlops.seldon.io/v1alpha1"}
    model = parse_manifest(doc)
    assert isinstance(model, Model)
    assert model.spec.load_balancing.strategy == "LeastLoad"


def test_timeout_seconds_is_read_and_written_back() -> None:
    """A Model's timeoutSeconds reaches its spec and its manifest; absent means the gateway default."""
    model = parse_manifest(model_doc(timeoutSeconds=2.5))
    assert isinstance(model, Model)
    assert model.spec.timeout_seconds == 2.5
    assert to_manifest(model)["spec"]["timeoutSeconds"] == 2.5
    plain = parse_manifest(model_doc())
    assert isinstance(plain, Model)
    assert plain.spec.timeout_seconds == 0.0
    assert "timeoutSeconds" not in to_manifest(plain)["spec"]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"replicas": 2**31}, "spec.replicas"),
        ({"maxReplicas": 2**40}, "spec.maxReplicas"),
        ({"memory": "9999999999Pi"}, "spec.memory"),
        ({"memory": 2**64}, "spec.memory"),
        ({"autoscaling": {"targetRequests": float("nan")}}, "spec.autoscaling.targetRequests"),
        ({"autoscaling": {"scaleDownDelaySeconds": float("inf")}}, "spec.autoscaling.scaleDownDelaySeconds"),
        ({"timeoutSeconds": float("nan")}, "spec.timeoutSeconds"),
    ],
)
def test_numbers_beyond_their_wire_types_are_refused_naming_the_field(
    spec: dict[str, object], field: str
) -> None:
    """Whole numbers past int32/int64 and NaN or infinite numbers are InvalidError naming the
    field, never a failure when the resource is stored (the api's property tests found one)."""
    doc = {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "m"},
        "spec": {"storageUri": "s3://b/m", "requirements": ["sklearn"], **spec},
    }
    with pytest.raises(InvalidError) as caught:
        parse_manifest(doc)
    assert caught.value.field == field

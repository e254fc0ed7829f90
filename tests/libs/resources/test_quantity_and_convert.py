"""Memory quantities and the protobuf round trip of every resource kind."""

from __future__ import annotations

import pytest

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources import convert
from modelplane.libs.resources.defaults import builtin_server_configs, default_server
from modelplane.libs.resources.quantity import format_bytes, parse_bytes
from modelplane.libs.resources.types import (
    LoadBalancing,
    Meta,
    Model,
    ModelSpec,
    PrefixHashOptions,
    Resource,
    ServerConfigSpec,
    ServerSpec,
    effective_capabilities,
)
from modelplane.proto import resources_pb2


@pytest.mark.parametrize(
    ("text", "expected"),
    [("100Ki", 102400), ("1Mi", 1 << 20), ("1G", 10**9), ("1.5Gi", 3 << 29), (512, 512), ("", 0), (None, 0)],
)
def test_parse_bytes(text: str | int | None, expected: int) -> None:
    """Kubernetes quantities parse to bytes."""
    assert parse_bytes(text, "spec.memory") == expected


def test_parse_bytes_rejects_garbage_naming_the_field() -> None:
    """A malformed quantity is an InvalidError for that field."""
    with pytest.raises(InvalidError) as err:
        parse_bytes("10 parsecs", "spec.memory")
    assert err.value.field == "spec.memory"


def test_format_bytes_is_exact() -> None:
    """Formatting picks the largest exact binary unit."""
    assert [format_bytes(v) for v in (1 << 30, 100 * 1024, 1000)] == ["1Gi", "100Ki", "1000"]


def test_every_kind_round_trips_through_protobuf() -> None:
    """convert.resource_to_pb and resource_from_pb are inverse for every kind."""
    model = Model(
        meta=Meta(name="iris", generation=3, labels={"team": "a"}),
        spec=ModelSpec(
            storage_uri="s3://b/iris",
            requirements=("sklearn",),
            memory_bytes=10,
            replicas=2,
            parameters={"k": "v"},
            load_balancing=LoadBalancing("PrefixHash", PrefixHashOptions(150, 64, 20)),
        ),
    )
    resources: tuple[Resource, ...] = (model, default_server(), *builtin_server_configs())
    for resource in resources:
        assert convert.resource_from_pb(convert.resource_to_pb(resource)) == resource


def test_capabilities_replace_then_extend() -> None:
    """Server.capabilities replaces the config's list and extraCapabilities adds to it (Seldon rules)."""
    config = ServerConfigSpec(capabilities=("mlserver", "sklearn"))
    assert effective_capabilities(ServerSpec("c", extra_capabilities=("custom",)), config) == (
        "mlserver",
        "sklearn",
        "custom",
    )
    assert effective_capabilities(
        ServerSpec("c", capabilities=("only",), extra_capabilities=(" x ",)), config
    ) == (
        "only",
        "x",
    )


def test_scaling_only_change_keeps_the_version() -> None:
    """Replicas changes do not make a new version; a new URI does."""
    base = ModelSpec(storage_uri="a", replicas=1)
    assert base.same_version_as(ModelSpec(storage_uri="a", replicas=3, max_replicas=5))
    assert not base.same_version_as(ModelSpec(storage_uri="b"))


def test_load_balancing_change_keeps_the_version() -> None:
    """loadBalancing is routing only: changing it makes no new version."""
    base = ModelSpec(storage_uri="a")
    assert base.same_version_as(ModelSpec(storage_uri="a", load_balancing=LoadBalancing("LeastLoad")))


def test_unset_load_balancing_in_protobuf_reads_as_defaults() -> None:
    """Records written before loadBalancing existed read back as RoundRobin with KubeAI's defaults."""
    spec = convert.model_spec_from_pb(resources_pb2.ModelSpec(storage_uri="a"))
    assert spec.load_balancing == LoadBalancing()

"""A Model's ``autoscaling`` block: parsed, checked, printed back and carried in protobuf."""

from __future__ import annotations

from typing import Any

import pytest

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources import convert
from modelplane.libs.resources.manifests import parse_manifest, to_manifest
from modelplane.libs.resources.types import Autoscaling, Model


def model(autoscaling: dict[str, Any] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"storageUri": "file:///m", "minReplicas": 0, "maxReplicas": 4}
    if autoscaling is not None:
        spec["autoscaling"] = autoscaling
    return {"apiVersion": "modelplane.io/v1alpha1", "kind": "Model", "metadata": {"name": "m"}, "spec": spec}


def test_defaults_are_kubeais() -> None:
    """An empty block turns autoscaling on with KubeAI's defaults; no block leaves it off."""
    parsed = parse_manifest(model({}))
    assert isinstance(parsed, Model)
    assert parsed.spec.autoscaling == Autoscaling(target_requests=100, scale_down_delay_seconds=30)
    plain = parse_manifest(model(None))
    assert isinstance(plain, Model)
    assert plain.spec.autoscaling is None


def test_round_trips_through_manifest_and_protobuf() -> None:
    """Every field survives to_manifest and protobuf and back; absence stays absence."""
    for block in (
        {"targetRequests": 2, "scaleDownDelaySeconds": 5, "scaleMetric": "rps", "disabled": True},
        None,
    ):
        parsed = parse_manifest(model(block))
        assert isinstance(parsed, Model)
        assert parse_manifest(to_manifest(parsed)) == parsed
        assert convert.model_from_pb(convert.model_to_pb(parsed)) == parsed


@pytest.mark.parametrize(
    ("block", "field"),
    [
        ({"targetRequests": 0}, "spec.autoscaling.targetRequests"),
        ({"scaleDownDelaySeconds": -1}, "spec.autoscaling.scaleDownDelaySeconds"),
        ({"scaleMetric": "cpu"}, "spec.autoscaling.scaleMetric"),
        ({"scaleTarget": -2}, "spec.autoscaling.scaleTarget"),
        ({"scaleTarget": 2, "targetRequests": 3}, "spec.autoscaling.scaleTarget"),
    ],
)
def test_bad_values_name_the_field(block: dict[str, Any], field: str) -> None:
    """Each bad value is refused with the field it came from."""
    with pytest.raises(InvalidError) as refused:
        parse_manifest(model(block))
    assert refused.value.field == field


def test_kserves_scale_target_and_metric() -> None:
    """KServe's ``scaleMetric: rps`` with ``scaleTarget: 50`` sizes the model at 50 requests per
    second per replica; the same number under both names is accepted."""
    parsed = parse_manifest(model({"scaleMetric": "rps", "scaleTarget": 50}))
    assert isinstance(parsed, Model)
    assert parsed.spec.autoscaling == Autoscaling(target_requests=50, metric="rps")
    both = parse_manifest(model({"scaleTarget": 5, "targetRequests": 5}))
    assert isinstance(both, Model)
    assert both.spec.autoscaling is not None
    assert both.spec.autoscaling.target_requests == 5

"""The gateway's route table: templates, decoded parameters, 404 vs 405."""

from __future__ import annotations

import pytest

from modelplane.libs.http1.router import Match, MethodNotAllowed, Router


def _router() -> Router[str]:
    router: Router[str] = Router()
    router.add("GET", "/v2", "server")
    router.add("GET", "/v2/models/{model}", "metadata")
    router.add("POST", "/v2/models/{model}/infer", "infer")
    router.add("POST", "/v2/models/{model}/versions/{version}/infer", "infer_version")
    router.add("GET", "/v1/models/{model}", "v1_ready")
    router.add("POST", "/v1/models/{model}:predict", "v1_predict")
    return router


def test_literal_and_parameters_match() -> None:
    """A template's parameters come back by name, with the template that matched."""
    found = _router().match("POST", "/v2/models/iris/versions/3/infer")
    assert found == Match(
        "infer_version", {"model": "iris", "version": "3"}, "/v2/models/{model}/versions/{version}/infer"
    )
    assert _router().match("GET", "/v2") == Match("server", {}, "/v2")


def test_parameters_are_percent_decoded() -> None:
    """An encoded segment is matched and returned decoded; an encoded slash stays in the segment."""
    found = _router().match("POST", "/v2/models/my%20model/infer")
    assert isinstance(found, Match)
    assert found.params == {"model": "my model"}
    found = _router().match("GET", "/v2/models/a%2Fb")
    assert isinstance(found, Match)
    assert found.params == {"model": "a/b"}


def test_suffix_parameter() -> None:
    """``{model}:predict`` takes the segment without its verb; the bare verb is not a model."""
    found = _router().match("POST", "/v1/models/iris:predict")
    assert isinstance(found, Match)
    assert (found.endpoint, found.params) == ("v1_predict", {"model": "iris"})
    assert not isinstance(_router().match("POST", "/v1/models/:predict"), Match)


def test_unknown_path_is_none_and_wrong_method_lists_allowed() -> None:
    """No template -> None (404); a template without the method -> MethodNotAllowed (405)."""
    router = _router()
    assert router.match("GET", "/v3/models") is None
    assert router.match("GET", "/v2/models//infer") is None
    assert router.match("GET", "/v2/models/iris/infer") == MethodNotAllowed(("POST",))


def test_head_falls_back_to_get() -> None:
    """HEAD is answered by the GET endpoint (the server sends no body)."""
    found = _router().match("HEAD", "/v2/models/iris")
    assert isinstance(found, Match)
    assert found.endpoint == "metadata"


def test_duplicate_route_is_refused() -> None:
    """Registering one method and template twice is a programming error."""
    router = _router()
    with pytest.raises(ValueError, match="twice"):
        router.add("GET", "/v2/models/{other}", "again")

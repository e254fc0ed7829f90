"""HuggingFaceFetcher: strict hf:// parsing and clear errors when the hub cannot be reached."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelplane.libs.embedded_nats import free_port
from modelplane.libs.errors import InvalidError, NotFoundError, RetryableError
from modelplane.services.storage.fetchers.base import FetchTarget, NoProgress
from modelplane.services.storage.fetchers.huggingface import HfModelRef, HuggingFaceFetcher
from tests.helpers.http_server import FileServer


def target(uri: str, credentials: dict[str, str] | None = None) -> FetchTarget:
    return FetchTarget(uri=uri, scheme="hf", secret_name="hf-secret", credentials=credentials or {})


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("hf://meta-llama/Llama-3.2-1B", HfModelRef("meta-llama", "Llama-3.2-1B")),
        ("hf://org/model:main", HfModelRef("org", "model", "main")),
        ("hf://org/model.v2_x:v1.0", HfModelRef("org", "model.v2_x", "v1.0")),
        ("hf://org/m:refs/pr/1", HfModelRef("org", "m", "refs/pr/1")),
        (
            "hf://org/m:0123456789abcdef0123456789abcdef01234567",
            HfModelRef("org", "m", "0123456789abcdef0123456789abcdef01234567"),
        ),
    ],
)
def test_valid_uris_parse(uri: str, expected: HfModelRef) -> None:
    """hf://owner/model[:revision] gives owner, model and the optional revision."""
    assert HfModelRef.parse(uri) == expected


@pytest.mark.parametrize(
    "uri",
    [
        "hf://",
        "hf://model-only",
        "hf://owner/",
        "hf:///model",
        "hf://owner/model/extra",
        "hf://owner/model:",
        "hf://owner/model:rev:again",
        "hf://owner/../model",
        "hf://owner/model:../../x",
        "hf://-owner/model",
        "hf://own er/model",
        "huggingface://owner/model",
    ],
)
def test_malformed_uris_are_invalid(uri: str) -> None:
    """Anything but hf://owner/model[:revision] is an InvalidError naming spec.storageUri."""
    with pytest.raises(InvalidError) as caught:
        HfModelRef.parse(uri)
    assert caught.value.field == "spec.storageUri"
    assert "hf://owner/model[:revision]" in str(caught.value)


async def test_closed_endpoint_is_retryable_without_hanging(tmp_path: Path) -> None:
    """A hub that cannot be reached gives RetryableError naming the URI, for identity and download."""
    endpoint = f"http://127.0.0.1:{free_port()}"
    t = target("hf://org/model", {"HF_ENDPOINT": endpoint, "HF_TOKEN": "hf_secret_value"})
    fetcher = HuggingFaceFetcher(timeout=5)
    with pytest.raises(RetryableError) as caught:
        await fetcher.identity(t)
    assert "hf://org/model" in str(caught.value)
    assert endpoint in str(caught.value)
    assert "hf_secret_value" not in str(caught.value)
    with pytest.raises(RetryableError):
        await fetcher.download(t, tmp_path, NoProgress())


async def test_offline_mode_is_retryable() -> None:
    """HF_HUB_OFFLINE set for the model gives a RetryableError saying so, without any request."""
    t = target("hf://org/model", {"HF_HUB_OFFLINE": "1"})
    with pytest.raises(RetryableError, match="HF_HUB_OFFLINE"):
        await HuggingFaceFetcher().identity(t)


@pytest.fixture
def empty_hub(tmp_path: Path) -> Iterator[FileServer]:
    """An HTTP server that answers 404 to every hub API path."""
    server = FileServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_unknown_model_is_not_found(empty_hub: FileServer) -> None:
    """A hub that answers 404 for the model gives NotFoundError naming it."""
    t = target("hf://org/missing-model:main", {"HF_ENDPOINT": empty_hub.url})
    with pytest.raises(NotFoundError, match="org/missing-model"):
        await HuggingFaceFetcher(timeout=5).identity(t)
    assert empty_hub.count("/api/models/org/missing-model/revision/main") == 1

"""The HTTP fetcher connects to no address in a blocked network: literal, resolved, or redirected to.

Only loopback is ever contacted: the "blocked" addresses are loopback ones the test puts on the
blocked list (127.0.0.2, or everything ``localhost`` resolves to), so the tests prove the check
on the resolved address without sending a packet towards a real metadata service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from modelplane.libs.egress import DEFAULT_BLOCKED_NETWORKS, EgressPolicy, EgressRefused, parse_networks
from modelplane.libs.embedded_nats import free_port
from modelplane.libs.errors import NotFoundError, PermanentError
from modelplane.services.storage.app import App
from modelplane.services.storage.fetchers.base import FetchTarget
from modelplane.services.storage.fetchers.http import HttpFetcher
from modelplane.services.storage.fetchers.huggingface import HuggingFaceFetcher
from modelplane.services.storage.settings import StorageSettings
from tests.helpers.http_server import FileServer
from tests.helpers.progress import RecordingProgress

# A loopback address that is not 127.0.0.1: blocking it leaves the allowed server reachable.
BLOCKED_HOST = "127.0.0.2"


def serve(root: Path, host: str) -> FileServer:
    root.mkdir(exist_ok=True)
    (root / "model.joblib").write_bytes(b"j" * 100)
    return FileServer(root, host)


@pytest.fixture
def allowed(tmp_path: Path) -> Iterator[FileServer]:
    server = serve(tmp_path / "allowed", "127.0.0.1")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def blocked(tmp_path: Path) -> Iterator[FileServer]:
    server = serve(tmp_path / "blocked", BLOCKED_HOST)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def redirector(blocked: FileServer) -> AsyncIterator[str]:
    """A real server on 127.0.0.1 whose every path redirects to the same path on the blocked one."""

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"{blocked.url}{request.path}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def target(uri: str) -> FetchTarget:
    return FetchTarget(uri=uri, scheme="http", artifact_version="v1")


def fetcher(blocked_networks: str) -> HttpFetcher:
    return HttpFetcher(egress=EgressPolicy.parse(blocked_networks))


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    path = tmp_path / "cache" / "entry"
    path.mkdir(parents=True)
    return path


async def test_a_blocked_literal_address_is_refused_before_anything_is_sent(
    blocked: FileServer, dest: Path
) -> None:
    """identity and download of a URL naming a blocked IP fail permanently, naming spec.storageUri."""
    uri = f"{blocked.url}/model.joblib?X-Amz-Signature=presigned-secret-value"
    http = fetcher(f"{BLOCKED_HOST}/32")
    with pytest.raises(EgressRefused) as by_head:
        await http.identity(target(uri))
    with pytest.raises(EgressRefused) as by_get:
        await http.download(target(uri), dest, RecordingProgress())
    for caught in (by_head, by_get):
        assert isinstance(caught.value, PermanentError)
        assert caught.value.field == "spec.storageUri"
        assert f"{BLOCKED_HOST}/32" in caught.value.message
        assert "presigned-secret-value" not in str(caught.value)
    assert blocked.count("/model.joblib", "HEAD") == blocked.count("/model.joblib") == 0


async def test_a_name_resolving_into_a_blocked_network_is_refused(allowed: FileServer, dest: Path) -> None:
    """The check is on the resolved address: localhost is refused when loopback is blocked."""
    uri = f"http://localhost:{allowed.port}/model.joblib"
    with pytest.raises(EgressRefused) as caught:
        await fetcher("127.0.0.0/8,::1/128").download(target(uri), dest, RecordingProgress())
    assert "localhost resolves to" in caught.value.message
    assert allowed.count("/model.joblib") == 0


async def test_a_redirect_into_a_blocked_network_is_refused(
    redirector: str, blocked: FileServer, dest: Path
) -> None:
    """An allowed server redirecting to a blocked address: refused before the blocked one is asked."""
    uri = f"{redirector}/model.joblib"
    http = fetcher(f"{BLOCKED_HOST}/32")
    with pytest.raises(EgressRefused):
        await http.identity(target(uri))
    with pytest.raises(EgressRefused) as caught:
        await http.download(target(uri), dest, RecordingProgress())
    assert BLOCKED_HOST in caught.value.message
    assert blocked.count("/model.joblib", "HEAD") == blocked.count("/model.joblib") == 0


async def test_the_same_redirect_is_followed_when_nothing_blocks_it(
    redirector: str, blocked: FileServer, dest: Path
) -> None:
    """Control for the test above: with an empty list the redirect is followed and downloaded."""
    await fetcher("").download(target(f"{redirector}/model.joblib"), dest, RecordingProgress())
    assert (dest / "model.joblib").read_bytes() == b"j" * 100
    assert blocked.count("/model.joblib") == 1


async def test_the_default_allows_loopback(allowed: FileServer, dest: Path) -> None:
    """Local MinIO and emulators keep working: the default blocks link-local, not loopback."""
    http = HttpFetcher()
    for host in ("127.0.0.1", "localhost"):
        await http.download(target(f"http://{host}:{allowed.port}/model.joblib"), dest, RecordingProgress())
        assert (dest / "model.joblib").read_bytes() == b"j" * 100


@pytest.fixture
def hub_policy() -> Iterator[None]:
    """huggingface_hub's client is per process: give the next tests the default policy back."""
    yield
    HuggingFaceFetcher()


async def test_an_hf_endpoint_resolving_into_a_blocked_network_is_refused(
    allowed: FileServer, hub_policy: None
) -> None:
    """HF_ENDPOINT=http://localhost:... with loopback blocked: a permanent error naming the hf:// URI."""
    hub = f"http://localhost:{allowed.port}"
    t = FetchTarget(uri="hf://org/model", scheme="hf", credentials={"HF_ENDPOINT": hub})
    with pytest.raises(EgressRefused) as caught:
        await HuggingFaceFetcher(timeout=5, egress=EgressPolicy.parse("127.0.0.0/8,::1/128")).identity(t)
    assert caught.value.field == "spec.storageUri"
    assert caught.value.message.startswith("hf://org/model may not be fetched: ")
    assert "localhost resolves to" in caught.value.message
    # Control: with the default policy the same hub is reached (and has no such model).
    with pytest.raises(NotFoundError):
        await HuggingFaceFetcher(timeout=5).identity(t)


@pytest.mark.parametrize(
    "address",
    ["169.254.169.254", "fe80::1", "0.0.0.0", "::ffff:169.254.169.254", "fd00:ec2::254", "100.100.100.200"],
)
def test_the_default_blocks_metadata_addresses(address: str) -> None:
    """Link-local (IPv4, IPv6, IPv4-mapped), 0.0.0.0/8 and the known metadata addresses are blocked."""
    policy = EgressPolicy.parse(DEFAULT_BLOCKED_NETWORKS)
    assert policy.blocking(address) is not None
    with pytest.raises(EgressRefused):
        policy.check_address("http://meta.example/latest", "meta.example", address)


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.0.0.5", "192.168.1.10", "93.184.216.34"])
def test_the_default_allows_loopback_private_and_public_addresses(address: str) -> None:
    assert EgressPolicy.parse(DEFAULT_BLOCKED_NETWORKS).blocking(address) is None


def test_an_ipv4_list_also_covers_the_mapped_ipv6_form() -> None:
    """::ffff:10.1.2.3 is 10.1.2.3: an operator's IPv4 list needs no IPv6 twin."""
    assert EgressPolicy.parse("10.0.0.0/8").blocking("::ffff:10.1.2.3") is not None


def test_a_bad_network_setting_names_the_item(monkeypatch: pytest.MonkeyPatch) -> None:
    """MODELPLANE_STORAGE_BLOCKED_NETWORKS with a non-CIDR item fails at start, naming it."""
    with pytest.raises(ValueError, match="'not-a-net'"):
        parse_networks("169.254.0.0/16, not-a-net")
    monkeypatch.setenv("MODELPLANE_STORAGE_BLOCKED_NETWORKS", "10.0.0.0/8,nope")
    with pytest.raises(ValueError, match="'nope'"):
        StorageSettings()
    monkeypatch.setenv("MODELPLANE_STORAGE_BLOCKED_NETWORKS", "10.0.0.0/8")
    assert StorageSettings().egress_policy().blocking("10.9.9.9") is not None


async def test_the_storage_service_fetches_under_its_setting(
    blocked: FileServer, tmp_path: Path, dest: Path, monkeypatch: pytest.MonkeyPatch, hub_policy: None
) -> None:
    """MODELPLANE_STORAGE_BLOCKED_NETWORKS reaches the http fetcher the storage service builds."""
    monkeypatch.setenv("MODELPLANE_STORAGE_BLOCKED_NETWORKS", f"{BLOCKED_HOST}/32")
    monkeypatch.setenv("MODELPLANE_STORAGE_CACHE_DIR", str(tmp_path / "service-cache"))
    app = App(StorageSettings())
    t = app.registry.target(f"{blocked.url}/model.joblib")
    _, remote = app.registry.fetcher_for(t)
    assert remote is not None
    with pytest.raises(EgressRefused):
        await remote.download(t, dest, RecordingProgress())
    assert blocked.count("/model.joblib") == 0

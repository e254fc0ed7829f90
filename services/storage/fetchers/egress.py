"""The egress policy (``libs.egress``) where the HTTP and Hugging Face fetchers connect.

aiohttp resolves a request's host in one place, ``TCPConnector._resolve_host``, and connects only
to the addresses it returns: for a name through the resolver (and its DNS cache), for a literal
IP directly, and again for every redirect hop. Checking those addresses there means the check
sees what will actually be connected to, so a name that resolves to 169.254.169.254, or a
redirect from an allowed server to a blocked address, is refused before a single byte is sent.
A custom resolver alone would not do: aiohttp never asks the resolver about a literal IP.

``_resolve_host`` is aiohttp's private method (stable through 3.x); the fetcher's tests connect
through this connector to a blocked loopback address, so a rename in aiohttp fails them rather
than silently dropping the check.

huggingface_hub connects through httpx (one shared client per process): there the check sits in
the network backend of the client's connection pool (``GuardedHubBackend``), which every request
and every redirect of the hub client goes through.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
import httpcore2
import httpx2
from aiohttp.abc import ResolveResult
from huggingface_hub import set_client_factory

# The hub's own request hook (offline mode, request ids); private, but the client it builds by
# default has it and ours must behave the same.
from huggingface_hub.utils._http import hf_request_event_hook

from modelplane.libs.egress import EgressPolicy

if TYPE_CHECKING:
    from aiohttp.tracing import Trace


class GuardedConnector(aiohttp.TCPConnector):
    """A TCPConnector that refuses (``EgressRefused``) to connect to a blocked address.

    ``uri`` is the storageUri the session fetches, named in the refusal (shown redacted).
    """

    def __init__(self, policy: EgressPolicy, uri: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._policy = policy
        self._uri = uri

    async def _resolve_host(
        self, host: str, port: int, traces: Sequence[Trace] | None = None
    ) -> list[ResolveResult]:
        hosts = await super()._resolve_host(host, port, traces=traces)
        # One blocked address refuses the name: connecting to its other addresses would make
        # the outcome depend on which one answers first.
        for entry in hosts:
            self._policy.check_address(self._uri, host, entry["host"])
        return hosts


class GuardedHubBackend(httpcore2.SyncBackend):
    """huggingface_hub's network backend: resolves a host itself, checks every address, then
    connects to a checked address (never resolving the name a second time, which a DNS answer
    that changes between two look-ups could exploit). TLS still verifies the host's name: httpcore
    passes the origin's host as server_hostname, whatever address the socket reached."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore2.ConnectError(str(exc)) from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            self._policy.check_address(f"https://{host}:{port}", host, address)
        last: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore2.ConnectError as exc:
                last = exc
        raise last or httpcore2.ConnectError(f"{host} resolved to no address")


def install_hub_egress(policy: EgressPolicy) -> None:
    """Make every huggingface_hub request of this process connect through ``GuardedHubBackend``.

    huggingface_hub shares one httpx client per process (``set_client_factory``), so the policy
    is process-wide: the storage service builds one HuggingFaceFetcher with its one policy.
    Proxies from the environment (HTTPS_PROXY) are not used by this client: a proxy would make
    the connection the policy is about, out of its sight.
    """

    def client() -> httpx2.Client:
        transport = httpx2.HTTPTransport(trust_env=False)
        # httpx's transport takes no network backend, its pool does: swap the pool for one with
        # the default TLS context (system trust store) and the guarded backend.
        transport._pool = httpcore2.ConnectionPool(
            ssl_context=httpx2.create_ssl_context(trust_env=False),
            network_backend=GuardedHubBackend(policy),
        )
        return httpx2.Client(
            transport=transport,
            event_hooks={"request": [hf_request_event_hook]},
            follow_redirects=True,
            timeout=None,
            trust_env=False,
        )

    set_client_factory(client)

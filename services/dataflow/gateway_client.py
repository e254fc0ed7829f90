"""The dataflow worker's calls to models, through the gateway, over pooled keep-alive HTTP/1.1.

Steps call their models through the gateway rather than replicas directly, so a pipeline's calls
get the same routing, balancing, held requests (a model scaled to zero) and tracing as any
client's. Built on ``libs.http1.client.HttpClient``: one pool per host:port, so the gateway (and
each ``serviceUrl`` host of an inference graph) keeps a set of warm connections.

An ``https://`` gateway (``modelplane up --tls-cert``) is called through aiohttp with a client
SSL context trusting ``ca`` (else the system's store): libs/http1's client speaks plain TCP only.
Its pool also keeps connections warm (closing idle ones after 30 s, before the gateway's 75 s).

Failures become ``StepCallError`` with the status the request's caller finally sees: the model's
own status and ``{"error": ...}`` text when it answered, 502 when nothing answered or the answer
broke off, 504 when it took longer than ``timeout``.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import orjson

from modelplane.libs.errors import InvalidError
from modelplane.libs.http1.client import HttpClient, UpstreamConnectError, UpstreamProtocolError
from modelplane.libs.tls import client_ssl_context
from modelplane.services.dataflow.errors import StepCallError

# Trace context headers forwarded on ``infer`` (W3C trace context, what the gateway reads).
_TRACE_HEADERS = ("traceparent", "tracestate")
_JSON = "application/json"
# An error text longer than this is cut (a model may answer a whole HTML page).
_MAX_ERROR_TEXT = 2000
# Seconds an idle TLS connection to the gateway stays pooled: less than the gateway's keep-alive
# (libs/http1 limits, 75 s), so the client, not the server, closes it and no call is sent on a
# connection the server is closing.
_TLS_IDLE_SECONDS = 30.0
# Headers aiohttp writes itself for the body it sends (as libs/http1's client does).
_FRAMING_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class GatewayClient:
    """Model calls through the gateway at ``base_url``; ``timeout`` bounds each call (seconds).

    ``ca`` (a PEM bundle) is trusted for an ``https://`` ``base_url``."""

    def __init__(
        self, base_url: str, *, timeout: float, token: str | None = None, ca: Path | None = None
    ) -> None:
        self._tls: _TlsGateway | None = None
        if urlsplit(base_url).scheme == "https":
            address, prefix = _split_http_url(base_url, "gateway_url", scheme="https")
            self._tls = _TlsGateway(address, _gateway_ssl_context(ca), timeout)
        elif ca is not None:
            raise ValueError(f"gateway_ca is set but gateway_url {base_url!r} is not an https:// URL")
        else:
            address, prefix = _split_http_url(base_url, "gateway_url")
        # The worker's own token (role inference) for a gateway that requires auth: sent to the
        # gateway only, never to an inference graph's serviceUrl hosts.
        self._auth = {"authorization": f"Bearer {token}"} if token else {}
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self._address = address
        self._prefix = prefix.rstrip("/")
        self._timeout = timeout
        self._http = HttpClient()

    async def infer(
        self, model: str, request: dict[str, Any], *, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """A V2 inference: the model's response, or ``StepCallError`` when it failed."""
        call_headers = {"content-type": _JSON}
        if headers:
            for name in _TRACE_HEADERS:
                value = headers.get(name)
                if value:
                    call_headers[name] = value
        call_headers.update(self._auth)
        status, body = await self._gateway_post(
            model, self._v2_target(model), orjson.dumps(request), call_headers
        )
        if status != 200:
            raise StepCallError(model, status, error_text(body))
        try:
            response = orjson.loads(body)
        except orjson.JSONDecodeError:
            response = None
        if not isinstance(response, dict):
            raise StepCallError(model, 502, "answered 200 with a body that is not a JSON object")
        return response

    async def call_model(self, model: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """GraphCaller: a V2 body (one with ``inputs``) goes to ``/v2/models/{model}/infer``, any
        other JSON to KServe V1's ``/v1/models/{model}:predict``. Raises ``StepCallError`` only
        when nothing was answered."""
        target = self._v2_target(model) if _is_v2_request(body) else self._v1_target(model)
        sent = _with_json_type(headers)
        if self._auth:
            sent = {k: v for k, v in sent.items() if k.lower() != "authorization"} | self._auth
        return await self._gateway_post(model, target, body, sent)

    async def call_url(self, url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """GraphCaller: POST ``body`` to an ``http://`` URL; ``StepCallError`` when nothing answered."""
        try:
            address, target = _split_http_url(url, "serviceUrl")
        except ValueError as exc:
            raise StepCallError(url, 502, str(exc)) from None
        return await self._post(url, address, target, body, _with_json_type(headers))

    async def close(self) -> None:
        """Close the pooled connections. Idempotent."""
        await self._http.close()
        if self._tls is not None:
            await self._tls.close()

    # ---- internals ------------------------------------------------------------------------------
    def _v2_target(self, model: str) -> str:
        return f"{self._prefix}/v2/models/{quote(model, safe='')}/infer"

    def _v1_target(self, model: str) -> str:
        return f"{self._prefix}/v1/models/{quote(model, safe='')}:predict"

    async def _gateway_post(
        self, model: str, target: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, bytes]:
        if self._tls is not None:
            return await self._tls.post(model, target, body, headers)
        return await self._post(model, self._address, target, body, headers)

    async def _post(
        self, target_name: str, address: str, target: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, bytes]:
        try:
            reply = await self._http.request(
                "POST", address, target, headers=headers, body=body, timeout=self._timeout
            )
        except TimeoutError:
            raise StepCallError(target_name, 504, f"no answer within {self._timeout:g} s") from None
        except (UpstreamConnectError, UpstreamProtocolError) as exc:
            raise StepCallError(target_name, 502, str(exc)) from None
        return reply.status, reply.body


class _TlsGateway:
    """POSTs to an https:// gateway over aiohttp's pooled TLS connections; failures map as
    ``GatewayClient._post`` maps them (502 nothing or a broken answer, 504 too slow)."""

    def __init__(self, address: str, context: ssl.SSLContext, timeout: float) -> None:
        self._base = f"https://{address}"
        self._context = context
        self._timeout = timeout
        # Made at the first call: an aiohttp session belongs to the running event loop.
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    async def post(
        self, model: str, target: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, bytes]:
        if self._closed:
            raise StepCallError(model, 502, "the gateway client is closed")
        if self._session is None:
            # limit=0: as many connections as calls in flight, as libs/http1's pool allows.
            connector = aiohttp.TCPConnector(ssl=self._context, limit=0, keepalive_timeout=_TLS_IDLE_SECONDS)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        try:
            async with self._session.post(
                self._base + target,
                data=body,
                headers={k: v for k, v in headers.items() if k.lower() not in _FRAMING_HEADERS},
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as resp:
                return resp.status, await resp.read()
        except TimeoutError:
            raise StepCallError(model, 504, f"no answer within {self._timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise StepCallError(model, 502, f"{self._base}: {exc}") from None

    async def close(self) -> None:
        """Close the pooled connections. Idempotent."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _gateway_ssl_context(ca: Path | None) -> ssl.SSLContext:
    try:
        return client_ssl_context(ca)
    except InvalidError as exc:
        raise ValueError(f"gateway_ca: {exc}") from None


def error_text(body: bytes) -> str:
    """The text of an error answer: its ``{"error": ...}`` message, else the body itself."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and "error" in parsed:
        error = parsed["error"]
        text = error if isinstance(error, str) else orjson.dumps(error).decode()
    else:
        text = body.decode("utf-8", "replace").strip() or "(empty body)"
    return text if len(text) <= _MAX_ERROR_TEXT else text[:_MAX_ERROR_TEXT] + "..."


def _is_v2_request(body: bytes) -> bool:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(parsed, dict) and "inputs" in parsed


def _with_json_type(headers: Mapping[str, str]) -> dict[str, str]:
    out = dict(headers)
    if not any(name.lower() == "content-type" for name in out):
        out["content-type"] = _JSON
    return out


def _split_http_url(url: str, what: str, scheme: str = "http") -> tuple[str, str]:
    """``(host:port, path?query)`` of an ``http://`` URL (or ``scheme``); ``ValueError`` naming
    ``what`` otherwise."""
    parts = urlsplit(url)
    if parts.scheme != scheme or not parts.hostname:
        if what == "gateway_url":
            raise ValueError(f"{what} {url!r} is not an http:// or https:// URL")
        raise ValueError(f"{what} {url!r} is not an http:// URL (graph calls speak plain HTTP/1.1)")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"{what} {url!r} has an invalid port") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    return f"{host}:{port}", target

"""The dataflow worker's calls to models, through the gateway, over pooled keep-alive HTTP/1.1.

Steps call their models through the gateway rather than replicas directly, so a pipeline's calls
get the same routing, balancing, held requests (a model scaled to zero) and tracing as any
client's. Built on ``libs.http1.client.HttpClient``: one pool per host:port, so the gateway (and
each ``serviceUrl`` host of an inference graph) keeps a set of warm connections.

Failures become ``StepCallError`` with the status the request's caller finally sees: the model's
own status and ``{"error": ...}`` text when it answered, 502 when nothing answered or the answer
broke off, 504 when it took longer than ``timeout``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from modelplane.libs.http1.client import HttpClient, UpstreamConnectError, UpstreamProtocolError
from modelplane.services.dataflow.errors import StepCallError

# Trace context headers forwarded on ``infer`` (W3C trace context, what the gateway reads).
_TRACE_HEADERS = ("traceparent", "tracestate")
_JSON = "application/json"
# An error text longer than this is cut (a model may answer a whole HTML page).
_MAX_ERROR_TEXT = 2000


class GatewayClient:
    """Model calls through the gateway at ``base_url``; ``timeout`` bounds each call (seconds)."""

    def __init__(self, base_url: str, *, timeout: float, token: str | None = None) -> None:
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
        status, body = await self._post(
            model, self._address, self._v2_target(model), orjson.dumps(request), call_headers
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
        return await self._post(model, self._address, target, body, sent)

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

    # ---- internals ------------------------------------------------------------------------------
    def _v2_target(self, model: str) -> str:
        return f"{self._prefix}/v2/models/{quote(model, safe='')}/infer"

    def _v1_target(self, model: str) -> str:
        return f"{self._prefix}/v1/models/{quote(model, safe='')}:predict"

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


def _split_http_url(url: str, what: str) -> tuple[str, str]:
    """``(host:port, path?query)`` of an ``http://`` URL; ``ValueError`` naming ``what`` otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"{what} {url!r} is not an http:// URL (the dataflow speaks plain HTTP/1.1)")
    try:
        port = parts.port or 80
    except ValueError:
        raise ValueError(f"{what} {url!r} has an invalid port") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    return f"{host}:{port}", target

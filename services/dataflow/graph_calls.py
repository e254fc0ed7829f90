"""How inference-graph steps reach their models: through the gateway, V2 answers chained as V2
requests.

KServe passes a Sequence step's ``$response`` to the next step as it is; between V2 models a
response (``outputs``) is not a request (``inputs``), so a V2 answer sent on to a model becomes
a V2 request whose inputs are that answer's outputs (names, shapes, data and parameters kept).
Anything else (V1 bodies, custom JSON) goes as it came.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import orjson


class ModelCaller(Protocol):
    async def call_model(self, model: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]: ...

    async def call_url(self, url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]: ...


def as_v2_request(body: bytes) -> bytes:
    """``body``, or the V2 request made of it when it is a V2 response."""
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if not isinstance(parsed, dict) or "inputs" in parsed or not isinstance(parsed.get("outputs"), list):
        return body
    request: dict[str, Any] = {"inputs": parsed["outputs"]}
    if "id" in parsed:
        request["id"] = parsed["id"]
    if isinstance(parsed.get("parameters"), dict):
        request["parameters"] = parsed["parameters"]
    return orjson.dumps(request)


class GraphCalls:
    """The GraphCaller of the dataflow worker."""

    def __init__(self, client: ModelCaller) -> None:
        self._client = client

    async def call_model(self, model: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        return await self._client.call_model(model, as_v2_request(body), headers)

    async def call_url(self, url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        return await self._client.call_url(url, body, headers)

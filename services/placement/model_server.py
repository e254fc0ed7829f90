"""The V2 health and model-repository API of the model server, over one aiohttp session.

Errors are translated here: a refused connection is RetryableError, a model the server rejects is
PermanentError carrying the server's own ``error`` message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from modelplane.libs.errors import DeadlineError, PermanentError, RetryableError

_PROBE_TIMEOUT = aiohttp.ClientTimeout(total=2.0)


@dataclass(frozen=True, slots=True)
class RepositoryEntry:
    name: str
    state: str
    reason: str = ""


class ModelServerClient:
    """Talks to one model server at ``http://<endpoint>``."""

    def __init__(self, session: aiohttp.ClientSession, endpoint: str, load_timeout: float) -> None:
        self._session = session
        self._base = f"http://{endpoint}"
        self._load_timeout = aiohttp.ClientTimeout(total=load_timeout)

    async def ready(self) -> bool:
        try:
            async with self._session.get(f"{self._base}/v2/health/ready", timeout=_PROBE_TIMEOUT) as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def index(self) -> list[RepositoryEntry]:
        body = await self._post("/v2/repository/index", expect_json=True)
        entries = body if isinstance(body, list) else []
        return [
            RepositoryEntry(
                name=str(item.get("name", "")),
                state=str(item.get("state", "")),
                reason=str(item.get("reason", "") or ""),
            )
            for item in entries
            if isinstance(item, dict)
        ]

    async def load(self, name: str) -> None:
        await self._post(f"/v2/repository/models/{name}/load")

    async def unload(self, name: str) -> bool:
        """Unload ``name``; False when the server did not have it (which is as good as unloaded)."""
        try:
            await self._post(f"/v2/repository/models/{name}/unload")
        except _NotFound:
            return False
        return True

    async def _post(self, path: str, *, expect_json: bool = False) -> Any:
        url = f"{self._base}{path}"
        try:
            async with self._session.post(url, json={}, timeout=self._load_timeout) as resp:
                text = await resp.text()
                if resp.status == 404:
                    raise _NotFound(_error_message(text, resp.status))
                if resp.status >= 400:
                    raise PermanentError(_error_message(text, resp.status))
                if expect_json:
                    return await resp.json(content_type=None)
                return None
        except TimeoutError as exc:
            raise DeadlineError(f"the model server did not answer {path} in time") from exc
        except aiohttp.ClientError as exc:
            raise RetryableError(f"cannot reach the model server at {self._base}: {exc}") from exc


class _NotFound(PermanentError):
    pass


def _error_message(text: str, status: int) -> str:
    """The server's own ``{"error": ...}`` message, else its raw body."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        return str(body["error"])
    return text.strip() or f"HTTP {status}"

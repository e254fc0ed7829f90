"""Cross-origin requests to the gateway: refused unless ``MODELPLANE_GATEWAY_CORS_ORIGINS`` lists them.

Why: a web page the user visits may send requests to a gateway on 127.0.0.1 from the user's
browser (a POST with a "simple" content type needs no preflight), and read nothing but still
run inference, fill held requests or probe models. Browsers put the page's ``Origin`` on such
requests; non-browser clients send none. So: a request without ``Origin``, or whose ``Origin``
is the gateway's own (``http(s)://<Host>``), is served; one from a listed origin is served with
the CORS headers that let the page read the answer, and its preflight (``OPTIONS`` with
``Access-Control-Request-Method``) is answered; any other origin gets 403 and no CORS header.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

import orjson

from modelplane.libs.http1.messages import HttpRequest, HttpResponse, Response

# Seconds a browser may cache a preflight's answer (browsers cap it at 2 h or less anyway).
PREFLIGHT_MAX_AGE: Final = 600
_METHODS: Final = "GET, POST, OPTIONS"


class CorsPolicy:
    """The origins (``scheme://host[:port]``, or ``*``) allowed to call from a browser."""

    def __init__(self, origins: Iterable[str]) -> None:
        self._origins = frozenset(o.strip().rstrip("/") for o in origins if o.strip())
        self._any = "*" in self._origins

    def _listed(self, origin: str) -> bool:
        return self._any or origin in self._origins

    @staticmethod
    def _own(headers: Mapping[str, str], origin: str) -> bool:
        host = headers.get("host")
        return host is not None and origin in (f"http://{host}", f"https://{host}")

    def refusal(self, request: HttpRequest) -> HttpResponse | None:
        """403 for a browser request from an origin neither the gateway's own nor listed."""
        return self.refusal_for(request.headers)

    def refusal_for(self, headers: Mapping[str, str]) -> HttpResponse | None:
        """``refusal`` from a request's headers alone (asked before its body is read)."""
        origin = headers.get("origin")
        if origin is None or self._own(headers, origin) or self._listed(origin.rstrip("/")):
            return None
        body = orjson.dumps(
            {
                "error": f"origin {origin} may not call this gateway: cross-origin requests are refused "
                "unless MODELPLANE_GATEWAY_CORS_ORIGINS lists the origin"
            }
        )
        return HttpResponse(403, body, {"content-type": "application/json"})

    @staticmethod
    def is_preflight(request: HttpRequest) -> bool:
        return (
            request.method == "OPTIONS"
            and "origin" in request.headers
            and "access-control-request-method" in request.headers
        )

    def preflight(self, request: HttpRequest) -> HttpResponse:
        """The answer to an allowed origin's preflight (``refusal`` ran first)."""
        headers = self._allow(request)
        headers["access-control-allow-methods"] = _METHODS
        asked = request.headers.get("access-control-request-headers")
        if asked:
            headers["access-control-allow-headers"] = asked
        headers["access-control-max-age"] = str(PREFLIGHT_MAX_AGE)
        return HttpResponse(204, b"", headers)

    def decorate(self, request: HttpRequest, response: Response) -> None:
        """Add the CORS headers to an answer for a listed origin (nothing for anyone else)."""
        origin = request.headers.get("origin")
        if origin is not None and self._listed(origin.rstrip("/")):
            response.headers.update(self._allow(request))

    @staticmethod
    def _allow(request: HttpRequest) -> dict[str, str]:
        # The origin itself, not "*": answers may depend on the caller's Authorization header.
        return {
            "access-control-allow-origin": request.headers.get("origin") or "",
            "access-control-expose-headers": "x-request-id, x-seldon-route, retry-after",
            "vary": "origin",
        }

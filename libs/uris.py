"""URIs as they may be shown: without the parts that carry credentials.

A storageUri may carry a secret in two places: userinfo (``https://user:password@host/...``)
and the query string (an S3/GCS presigned URL's ``X-Amz-Signature``, an Azure SAS token's
``sig``). ``redact_uri`` keeps scheme, host and path, which is what tells an operator which
artifact is meant, and replaces the rest; ``redact_in`` does the same to every occurrence of one
URI (or its query string) inside a message an SDK or a server wrote.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

REDACTED = "REDACTED"


def redact_uri(uri: str) -> str:
    """``uri`` without userinfo (dropped), query string and fragment (replaced by a marker)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    if not parts.scheme or not parts.netloc:
        return uri
    netloc = parts.netloc
    if "@" in netloc:
        netloc = netloc.rsplit("@", 1)[1]
    query = REDACTED if parts.query else ""
    fragment = REDACTED if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def redact_in(text: str, uri: str) -> str:
    """``text`` with ``uri`` shown redacted, and its query string and password removed wherever they appear."""
    shown = redact_uri(uri)
    if shown == uri:
        return text
    text = text.replace(uri, shown)
    try:
        parts = urlsplit(uri)
    except ValueError:
        return text
    for secret in (parts.query, parts.fragment, parts.password or "", parts.username or ""):
        # Short values (a "v=1" query) are not worth the false hits; they carry no secret.
        if len(secret) >= 8:
            text = text.replace(secret, REDACTED)
    return text

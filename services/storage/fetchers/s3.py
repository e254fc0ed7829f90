"""``s3://bucket/key-or-prefix`` URIs through boto3, configured like KServe's storage initializer.

Configuration comes from the model's secret (``FetchTarget.credentials``) first and the process
environment second, under the names KServe and Seldon use:

- keys: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN. Keys in the secret are used
  as a set (never mixed with a session token from the environment); without keys in the secret,
  botocore's own chain runs (environment, shared files, web identity, instance role);
- endpoint: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, S3_ENDPOINT (KServe's, may lack a scheme:
  USE_SSL / S3_USE_HTTPS = "0"/"false" then means http); a custom endpoint uses path-style
  addressing unless S3_USER_VIRTUAL_BUCKET is true (MinIO and the emulators need path style);
- region: AWS_REGION, AWS_DEFAULT_REGION; S3_VERIFY_SSL = "0"/"false" turns TLS checks off;
- anonymous: AWS_NO_SIGN_REQUEST or awsAnonymousCredential true, or no credentials anywhere,
  sends unsigned requests (public buckets).

Clients are built with an explicit botocore ``Config`` (``os.environ`` is only read) and kept
per resolved configuration (``S3Options``): building one loads the service model and costs
~0.15 s, as much as downloading 20 MiB, and boto3 clients are safe to share between threads.

A URI whose key exists as an object is a single file (``dest/<base name>``); otherwise it is a
folder and the objects under ``<prefix>/`` keep their relative paths (chosen, checked and
digested by the bucket helpers in objects.py, as for GCS and Azure). Blocking boto3 calls run in
threads. The download runs under ``objects.ThreadedDownload`` like the GCS and Azure
ones: boto3's progress callbacks are handed to the event loop before they reach ``Progress``, and
once the awaiting task is cancelled the next callback raises inside s3transfer, which stops every
part of the transfer and removes its temporary file.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from modelplane.libs.errors import InvalidError, ModelplaneError, NotFoundError, RetryableError
from modelplane.services.storage.fetchers.base import FetchTarget, Progress
from modelplane.services.storage.fetchers.objects import (
    Cancelled,
    RemoteObject,
    ThreadedDownload,
    identity_of,
    select_objects,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")
AddressingStyle = Literal["auto", "virtual", "path"]

S3_PREFIX = "s3://"
# Seconds; a stalled endpoint must fail the fetch (and let it be retried), not hang it.
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 60
# Error codes that mean "these credentials may not do this": the user must fix the secret.
DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
    }
)
MISSING_CODES = frozenset({"NoSuchBucket", "NoSuchKey", "NotFound", "404"})
TRANSIENT_CODES = frozenset(
    {"InternalError", "RequestTimeout", "ServiceUnavailable", "SlowDown", "Throttling"}
)
_FALSE = ("0", "false", "no", "off")
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True, slots=True)
class S3Location:
    """Where an ``s3://`` URI points: a bucket and a key or key prefix ("" = whole bucket)."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        if not uri.startswith(S3_PREFIX):
            raise InvalidError(f"{uri!r} is not an s3:// URI", field="spec.storageUri")
        bucket, _, key = uri[len(S3_PREFIX) :].partition("/")
        if not bucket:
            raise InvalidError(f"{uri!r} names no bucket", field="spec.storageUri")
        return cls(bucket=bucket, key=key)


@dataclass(frozen=True, slots=True)
class S3Options:
    """The resolved client settings for one target (credential values kept out of repr)."""

    endpoint_url: str | None = None
    region: str | None = None
    verify: bool | None = None
    anonymous: bool = False
    addressing_style: AddressingStyle = "auto"
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    @classmethod
    def resolve(cls, credentials: Mapping[str, str], environ: Mapping[str, str] | None = None) -> S3Options:
        env = os.environ if environ is None else environ

        def get(*names: str) -> str | None:
            for name in names:
                value = credentials.get(name) or env.get(name)
                if value:
                    return value
            return None

        use_ssl = (get("USE_SSL", "S3_USE_HTTPS") or "1").lower() not in _FALSE
        endpoint = get("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "S3_ENDPOINT")
        if endpoint and "://" not in endpoint:
            endpoint = ("https://" if use_ssl else "http://") + endpoint
        verify_raw = get("S3_VERIFY_SSL")
        virtual = (get("S3_USER_VIRTUAL_BUCKET") or "").lower() in _TRUE
        anonymous = any(
            (get(name) or "").lower() in _TRUE for name in ("AWS_NO_SIGN_REQUEST", "awsAnonymousCredential")
        )
        # Keys from the secret travel together; otherwise botocore's chain finds them.
        from_secret = "AWS_ACCESS_KEY_ID" in credentials
        return cls(
            endpoint_url=endpoint,
            region=get("AWS_REGION", "AWS_DEFAULT_REGION"),
            verify=False if verify_raw is not None and verify_raw.lower() in _FALSE else None,
            anonymous=anonymous,
            addressing_style="virtual" if virtual else ("path" if endpoint else "auto"),
            access_key_id=credentials.get("AWS_ACCESS_KEY_ID") if from_secret else None,
            secret_access_key=credentials.get("AWS_SECRET_ACCESS_KEY") if from_secret else None,
            session_token=credentials.get("AWS_SESSION_TOKEN") if from_secret else None,
        )


class S3Fetcher:
    """Downloads one object or every object under a prefix from S3 or an S3-compatible store."""

    schemes: tuple[str, ...] = ("s3",)
    in_place = False

    def __init__(self, *, max_concurrency: int = 10) -> None:
        # boto3's defaults (8 MiB parts, 10 threads), i.e. what ``aws s3 cp`` does.
        self._transfer = TransferConfig(max_concurrency=max_concurrency)
        self._clients = _ClientFactory()

    def describe(self) -> str:
        return "s3"

    async def identity(self, target: FetchTarget) -> str:
        location = S3Location.parse(target.uri)
        return identity_of(await _run(target, self._list, target, location))

    async def download(self, target: FetchTarget, dest: Path, progress: Progress) -> None:
        location = S3Location.parse(target.uri)
        objects = await _run(target, self._list, target, location)
        plan = [(o, dest / o.relative) for o in objects]
        progress.total(sum(o.size for o in objects))
        work = functools.partial(
            _download_all, self._clients, _options(target), location.bucket, plan, self._transfer
        )
        await _mapped(target, ThreadedDownload(progress).run(work))

    def _list(self, target: FetchTarget, location: S3Location) -> list[RemoteObject]:
        client = self._clients.client(_options(target))
        try:
            return _list_artifact(client, location, target.uri)
        finally:
            client.close()


def _options(target: FetchTarget) -> S3Options:
    return S3Options.resolve(target.credentials)


class _ClientFactory:
    """Builds clients from one cached boto3 session per resolved options (thread-safe).

    A session's first client loads the S3 service model (~0.15 s); later ones reuse it (~10 ms).
    Each call still gets its own client, so a download can close what it opened without
    touching another download's connections. Sessions are not thread-safe: one lock guards them.
    """

    def __init__(self, limit: int = 16) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._sessions: OrderedDict[S3Options, boto3.session.Session] = OrderedDict()

    def client(self, options: S3Options) -> S3Client:
        with self._lock:
            session = self._sessions.get(options)
            if session is None:
                session = self._sessions[options] = _session(options)
                while len(self._sessions) > self._limit:
                    self._sessions.popitem(last=False)
            self._sessions.move_to_end(options)
            return _client(options, session)


def _session(options: S3Options) -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id=options.access_key_id,
        aws_secret_access_key=options.secret_access_key,
        aws_session_token=options.session_token,
        region_name=options.region,
    )


def _client(options: S3Options, session: boto3.session.Session | None = None) -> S3Client:
    session = session if session is not None else _session(options)
    anonymous = options.anonymous or (options.access_key_id is None and session.get_credentials() is None)
    config = Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"mode": "standard", "max_attempts": 3},
        s3={"addressing_style": options.addressing_style},
        signature_version=UNSIGNED if anonymous else None,
    )
    return session.client("s3", endpoint_url=options.endpoint_url, verify=options.verify, config=config)


def _list_artifact(client: S3Client, location: S3Location, uri: str) -> list[RemoteObject]:
    """The objects of the artifact (blocking): the object the key names, else those under it."""
    listing: list[tuple[str, int, str]] = []
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=location.key)
        for page in pages:
            for item in page.get("Contents", []):
                listing.append((item["Key"], item["Size"], item["ETag"].strip('"')))
    except ClientError as exc:
        # Credentials that may read an object but not list the bucket still fetch one file.
        if _code(exc) in DENIED_CODES and location.key and not location.key.endswith("/"):
            try:
                head = client.head_object(Bucket=location.bucket, Key=location.key)
            except ClientError:
                raise exc from None
            listing = [(location.key, head["ContentLength"], head["ETag"].strip('"'))]
        else:
            raise
    # A key that names an object exactly is that one file, even when other keys extend it.
    exact = [entry for entry in listing if location.key and entry[0] == location.key]
    return select_objects(uri, location.key, exact or listing)


def _download_all(
    clients: _ClientFactory,
    options: S3Options,
    bucket: str,
    plan: list[tuple[RemoteObject, Path]],
    transfer: TransferConfig,
    bridge: ThreadedDownload,
) -> None:
    """Download every object of ``plan`` (blocking; runs in ``bridge``'s worker thread)."""
    client = clients.client(options)
    # A transfer stopped mid-stream abandons its GetObject responses unread, their connections
    # open; keep them (the client is this download's own) to close when the transfer is over.
    bodies: list[Any] = []

    def keep_body(parsed: dict[str, Any], **_: Any) -> None:
        if parsed.get("Body") is not None:
            bodies.append(parsed["Body"])

    client.meta.events.register("after-call.s3.GetObject", keep_body)
    try:
        for obj, path in plan:
            if bridge.stopped:
                raise Cancelled
            path.parent.mkdir(parents=True, exist_ok=True)
            # boto3 calls Callback from its transfer threads with each chunk's size (negative when
            # it restarts a part); bridge.advance raises Cancelled there once we were cancelled.
            client.download_file(bucket, obj.name, str(path), Callback=bridge.advance, Config=transfer)
            # Done with this object: its responses were read to the end.
            bodies.clear()
    finally:
        for body in bodies:
            body.close()
        client.close()


async def _run(target: FetchTarget, fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking boto3 step in a thread and turn its failures into libs.errors types."""
    return await _mapped(target, asyncio.to_thread(fn, *args))


async def _mapped(target: FetchTarget, step: Awaitable[T]) -> T:
    """Await ``step`` (boto3 work in a thread), turning its failures into libs.errors types."""
    try:
        return await step
    except ModelplaneError:
        raise
    except ClientError as exc:
        raise _client_error(target, exc) from None
    except ParamValidationError as exc:
        raise InvalidError(
            f"{target.uri} is not a valid S3 location: {exc}", field="spec.storageUri"
        ) from None
    except (BotoCoreError, Boto3Error) as exc:
        raise RetryableError(
            f"could not reach S3 for {target.uri}: {type(exc).__name__}", delay=5.0
        ) from None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _client_error(target: FetchTarget, exc: ClientError) -> ModelplaneError:
    code = _code(exc)
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    if code in DENIED_CODES or status in (401, 403):
        source = (
            f"credentials from secret {target.secret_name!r}"
            if target.secret_name
            else "no secret set; credentials from the environment or anonymous"
        )
        return InvalidError(
            f"access to {target.uri} was denied: {code or status} ({source})",
            field="spec.storageUri",
        )
    if code in MISSING_CODES or status == 404:
        return NotFoundError(f"{target.uri} does not exist: {code or status}", field="spec.storageUri")
    if code in TRANSIENT_CODES or status >= 500 or status == 429:
        return RetryableError(f"S3 failed for {target.uri}: {code or status}", delay=5.0)
    return InvalidError(f"S3 refused {target.uri}: {code or status}", field="spec.storageUri")

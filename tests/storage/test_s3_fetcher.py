"""S3Fetcher against a real moto S3 server: layouts, credentials, anonymous access, errors."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelplane.libs.errors import InvalidError, NotFoundError
from modelplane.services.storage.fetchers.base import FetchTarget
from modelplane.services.storage.fetchers.s3 import S3Fetcher, S3Location, S3Options
from tests.helpers.progress import RecordingProgress
from tests.helpers.s3_emulator import S3Emulator, running_s3


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Emulator]:
    with running_s3() as emulator:
        yield emulator


@pytest.fixture
def bucket(s3: S3Emulator) -> str:
    name = f"models-{uuid.uuid4().hex[:12]}"
    client = s3.s3()
    client.create_bucket(Bucket=name)
    client.put_object(Bucket=name, Key="iris/model-settings.json", Body=b'{"name": "iris"}')
    client.put_object(Bucket=name, Key="iris/model.joblib", Body=b"x" * 1000)
    client.put_object(Bucket=name, Key="iris/sub/deep/weights.bin", Body=b"w" * 10)
    # A sibling whose name starts with the same characters must not leak into "iris".
    client.put_object(Bucket=name, Key="iris2/other.bin", Body=b"o")
    client.put_object(Bucket=name, Key="single/model.onnx", Body=b"onnx-bytes")
    return name


def target(uri: str, credentials: dict[str, str], secret: str = "") -> FetchTarget:
    return FetchTarget(uri=uri, scheme="s3", secret_name=secret, credentials=credentials)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


async def test_prefix_downloads_nested_files_with_relative_paths(
    s3: S3Emulator, bucket: str, tmp_path: Path
) -> None:
    """A prefix becomes a folder: every object under prefix/ keeps its path, siblings are left out."""
    progress = RecordingProgress()
    await S3Fetcher().download(target(f"s3://{bucket}/iris", s3.credentials()), tmp_path, progress)
    assert files(tmp_path) == {
        "model-settings.json": b'{"name": "iris"}',
        "model.joblib": b"x" * 1000,
        "sub/deep/weights.bin": b"w" * 10,
    }
    assert s3.download_count(bucket, "iris/model.joblib") == 1
    assert progress.totals == [1026]
    assert progress.done == 1026


async def test_single_object_lands_under_its_base_name(s3: S3Emulator, bucket: str, tmp_path: Path) -> None:
    """A key naming one object downloads just that object as dest/<base name>."""
    uri = f"s3://{bucket}/single/model.onnx"
    await S3Fetcher().download(target(uri, s3.credentials()), tmp_path, RecordingProgress())
    assert files(tmp_path) == {"model.onnx": b"onnx-bytes"}


async def test_identity_changes_when_content_changes(s3: S3Emulator, bucket: str) -> None:
    """The identity is stable while nothing changes and differs after an object is rewritten."""
    fetcher = S3Fetcher()
    t = target(f"s3://{bucket}/iris/", s3.credentials())
    first = await fetcher.identity(t)
    assert await fetcher.identity(t) == first
    s3.s3().put_object(Bucket=bucket, Key="iris/model.joblib", Body=b"y" * 1000)
    assert await fetcher.identity(t) != first


async def test_identity_does_not_download(s3: S3Emulator, bucket: str) -> None:
    """identity() only lists: no object is read."""
    await S3Fetcher().identity(target(f"s3://{bucket}/iris", s3.credentials()))
    assert s3.get_count(bucket, "iris/model.joblib") == 0
    assert s3.download_count(bucket, "iris/model.joblib") == 0


async def test_missing_prefix_is_not_found(s3: S3Emulator, bucket: str, tmp_path: Path) -> None:
    """A key or prefix that matches nothing is a NotFoundError naming the URI."""
    t = target(f"s3://{bucket}/nothing-here", s3.credentials())
    with pytest.raises(NotFoundError, match="nothing-here"):
        await S3Fetcher().identity(t)
    with pytest.raises(NotFoundError):
        await S3Fetcher().download(t, tmp_path, RecordingProgress())


async def test_missing_bucket_is_not_found(s3: S3Emulator) -> None:
    """A bucket that does not exist is a NotFoundError."""
    with pytest.raises(NotFoundError, match="NoSuchBucket"):
        await S3Fetcher().identity(target("s3://no-such-bucket-here/x", s3.credentials()))


async def test_anonymous_access_sends_unsigned_requests(s3: S3Emulator, bucket: str, tmp_path: Path) -> None:
    """AWS_NO_SIGN_REQUEST fetches a public bucket without signing any request."""
    public_read = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            }
        ],
    }
    client = s3.s3()
    client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(public_read))
    # moto checks unsigned HEADs against the object ACL only (not the policy), so mark them too.
    for key in ("iris/model-settings.json", "iris/model.joblib", "iris/sub/deep/weights.bin"):
        client.put_object_acl(Bucket=bucket, Key=key, ACL="public-read")
    creds = {"AWS_ENDPOINT_URL": s3.endpoint_url, "AWS_NO_SIGN_REQUEST": "true"}
    before = s3.unsigned_count()
    await S3Fetcher().download(target(f"s3://{bucket}/iris", creds), tmp_path, RecordingProgress())
    assert "model.joblib" in files(tmp_path)
    # One list plus one GET per object (3), at least; none of them signed.
    assert s3.unsigned_count() - before >= 4


async def test_iam_credentials_pass_when_auth_is_enforced(
    s3: S3Emulator, bucket: str, tmp_path: Path
) -> None:
    """With moto checking signatures, the keys of a real IAM user download the artifact."""
    key_id, secret = s3.iam_credentials(f"reader-{uuid.uuid4().hex[:8]}")
    creds = {**s3.credentials(), "AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret}
    with s3.require_auth():
        await S3Fetcher().download(target(f"s3://{bucket}/iris", creds), tmp_path, RecordingProgress())
    assert "model.joblib" in files(tmp_path)


@pytest.mark.parametrize(
    ("wrong", "code"),
    [("secret", "SignatureDoesNotMatch"), ("key_id", "InvalidAccessKeyId")],
)
async def test_wrong_credentials_are_a_clear_error_without_the_secret(
    s3: S3Emulator, bucket: str, tmp_path: Path, wrong: str, code: str
) -> None:
    """Wrong keys give InvalidError naming the URI, the AWS code and the secret, never the value."""
    key_id, secret = s3.iam_credentials(f"reader-{uuid.uuid4().hex[:8]}")
    bad_secret = "definitely-wrong-secret-value" if wrong == "secret" else secret
    bad_key_id = "AKIAWRONGWRONGWRONG1" if wrong == "key_id" else key_id
    creds = {
        **s3.credentials(),
        "AWS_ACCESS_KEY_ID": bad_key_id,
        "AWS_SECRET_ACCESS_KEY": bad_secret,
    }
    uri = f"s3://{bucket}/iris"
    with s3.require_auth(), pytest.raises(InvalidError) as caught:
        await S3Fetcher().download(target(uri, creds, "team-s3"), tmp_path, RecordingProgress())
    message = str(caught.value)
    assert f"access to {uri} was denied: {code}" in message
    assert "team-s3" in message
    assert bad_secret not in message
    assert secret not in message
    assert files(tmp_path) == {}


async def test_key_escaping_the_destination_is_rejected(s3: S3Emulator, bucket: str, tmp_path: Path) -> None:
    """An object key with '..' under the prefix cannot write outside the destination."""
    s3.s3().put_object(Bucket=bucket, Key="evil/../../escape.txt", Body=b"boom")
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(InvalidError, match="outside the target directory"):
        await S3Fetcher().download(target(f"s3://{bucket}/evil", s3.credentials()), dest, RecordingProgress())
    assert not (tmp_path / "escape.txt").exists()


def test_uri_without_bucket_is_invalid() -> None:
    """s3:// with no bucket is an InvalidError naming spec.storageUri."""
    with pytest.raises(InvalidError) as caught:
        S3Location.parse("s3:///key")
    assert caught.value.field == "spec.storageUri"


def test_options_follow_kserve_environment_names() -> None:
    """S3_ENDPOINT without scheme + USE_SSL=0 means http; S3_VERIFY_SSL=0 turns verification off."""
    opts = S3Options.resolve({}, {"S3_ENDPOINT": "minio:9000", "USE_SSL": "0", "S3_VERIFY_SSL": "0"})
    assert opts.endpoint_url == "http://minio:9000"
    assert opts.verify is False
    assert opts.addressing_style == "path"
    assert S3Options.resolve({}, {"S3_ENDPOINT": "minio:9000"}).endpoint_url == "https://minio:9000"


def test_secret_keys_are_not_mixed_with_environment_token() -> None:
    """Keys from the secret travel together; a session token in the environment is not added."""
    opts = S3Options.resolve(
        {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "s"},
        {"AWS_SESSION_TOKEN": "env-token", "AWS_REGION": "eu-west-1"},
    )
    assert (opts.access_key_id, opts.secret_access_key, opts.session_token) == ("id", "s", None)
    assert opts.region == "eu-west-1"
    assert "s'" not in repr(opts)
    assert "id'" not in repr(opts)


async def test_large_object_counts_as_one_download(s3: S3Emulator, bucket: str, tmp_path: Path) -> None:
    """A multipart (ranged) download is counted once by the emulator and reports every byte."""
    size = 9 * 1024 * 1024  # above boto3's 8 MiB multipart threshold
    s3.s3().put_object(Bucket=bucket, Key="big/weights.bin", Body=b"b" * size)
    progress = RecordingProgress()
    await S3Fetcher().download(target(f"s3://{bucket}/big", s3.credentials()), tmp_path, progress)
    assert (tmp_path / "weights.bin").stat().st_size == size
    assert s3.get_count(bucket, "big/weights.bin") > 1
    assert s3.download_count(bucket, "big/weights.bin") == 1
    assert progress.done == size

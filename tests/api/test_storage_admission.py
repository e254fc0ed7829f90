"""A Model's storageUri and secretName cannot reach the host: checked at apply time (REST and gRPC)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct

from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.proto import control_pb2, control_pb2_grpc
from modelplane.services.api.app import App
from modelplane.services.api.settings import ApiSettings
from tests.helpers.auth import ADMIN, bearer, grpc_metadata


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """The folder `up` was started from; it holds the state dir, as `.` holds `.modelplane`."""
    folder = tmp_path / "work"
    (folder / ".modelplane" / "secrets").mkdir(parents=True)
    (folder / ".modelplane" / "secrets" / "s3.env").write_text("AWS_SECRET_ACCESS_KEY=xyz\n")
    (folder / ".modelplane" / "models" / "iris").mkdir(parents=True)
    (folder / "models" / "iris").mkdir(parents=True)
    return folder


@dataclass(frozen=True)
class Api:
    """The running api and an admin token for it (paths are refused whatever the role)."""

    app: App
    token: str

    @property
    def http_url(self) -> str:
        return self.app.http_url

    @property
    def grpc_address(self) -> str:
        return self.app.grpc_address


@pytest.fixture
async def api(nats_server: EmbeddedNats, work: Path) -> AsyncIterator[Api]:
    # What `up` passes: its working folder and <state dir>/models are the allowed roots.
    settings = ApiSettings(
        nats_url=nats_server.url,
        grpc_port=0,
        http_port=0,
        state_dir=work / ".modelplane",
        storage_local_roots=os.pathsep.join([str(work), str(work / ".modelplane" / "models")]),
    )
    app = App(settings)
    await app.start()
    try:
        _, token = await app.handler.create_token(ADMIN, "admin", "test-admin")
        yield Api(app, token)
    finally:
        await app.close()


def model(uri: str, secret: str = "") -> dict[str, object]:
    spec: dict[str, object] = {"storageUri": uri, "requirements": ["sklearn"]}
    if secret:
        spec["secretName"] = secret
    return {"apiVersion": "modelplane.io/v1alpha1", "kind": "Model", "metadata": {"name": "m"}, "spec": spec}


async def apply(api: Api, doc: dict[str, object]) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession(base_url=api.http_url, headers=bearer(api.token)) as http,
        http.post("/v1/apply", data=json.dumps(doc), headers={"Content-Type": "application/json"}) as resp,
    ):
        return resp.status, (await resp.json()).get("error", "")


async def stored(api: Api) -> bool:
    async with (
        aiohttp.ClientSession(base_url=api.http_url, headers=bearer(api.token)) as http,
        http.get("/v1/models/m") as resp,
    ):
        return resp.status == 200


@pytest.mark.parametrize(
    "uri",
    ["/etc", "file:///etc/passwd", "/", "{work}/.modelplane/secrets", "file://{work}/.modelplane/secrets/s3.env",
     "{work}/.modelplane", "{work}/.modelplane/models/../auth", "{work}/../", "pvc://claim/../other"],
)  # fmt: skip
async def test_host_paths_are_refused(api: Api, work: Path, uri: str) -> None:
    """/etc, the state dir and its secrets are 400 naming spec.storageUri, and nothing is stored."""
    status, error = await apply(api, model(uri.format(work=work)))
    assert status == 400
    assert error.startswith("spec.storageUri: ")
    assert not await stored(api)


@pytest.mark.parametrize(
    "uri", ["{work}/models/iris", "file://{work}/.modelplane/models/iris", "s3://b/iris"]
)
async def test_allowed_roots_are_accepted(api: Api, work: Path, uri: str) -> None:
    """A folder under the working folder or <state dir>/models (and any remote URI) is accepted."""
    status, error = await apply(api, model(uri.format(work=work)))
    assert (status, error) == (200, "")


async def test_a_symlink_out_of_a_root_is_refused(api: Api, work: Path) -> None:
    """A path inside an allowed root that is a symlink to /etc or into the state dir is refused."""
    (work / "models" / "etc").symlink_to("/etc")
    (work / "models" / "secrets").symlink_to(work / ".modelplane" / "secrets")
    for link in ("etc", "secrets"):
        status, error = await apply(api, model(f"file://{work}/models/{link}"))
        assert status == 400
        assert error.startswith("spec.storageUri: ")
    assert not await stored(api)


@pytest.mark.parametrize("secret", ["../auth/admin", "a/b", "/etc/passwd", ".."])
async def test_secret_names_cannot_walk_out_of_the_secrets_folder(api: Api, work: Path, secret: str) -> None:
    """A secretName with '/' or '..' is 400 naming spec.secretName."""
    status, error = await apply(api, model("s3://b/iris", secret))
    assert status == 400
    assert error.startswith("spec.secretName: ")


async def test_grpc_apply_is_invalid_argument(api: Api) -> None:
    """The gRPC Apply answers INVALID_ARGUMENT naming spec.storageUri."""
    manifest = json_format.ParseDict(model("/etc"), Struct())
    async with grpc.aio.insecure_channel(api.grpc_address) as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Apply(
                control_pb2.ApplyRequest(manifest=manifest), timeout=10, metadata=grpc_metadata(api.token)
            )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "spec.storageUri" in (caught.value.details() or "")


@pytest.mark.parametrize(
    "uri",
    ["http://169.254.169.254/latest/meta-data/iam/security-credentials/",
     "https://[fe80::1]/model.joblib", "http://[::ffff:169.254.169.254]/latest", "http://0.0.0.0:8080/m.tgz",
     "http://[fd00:ec2::254]/latest/meta-data/"],
)  # fmt: skip
async def test_a_literal_ip_in_a_blocked_network_is_refused(api: Api, uri: str) -> None:
    """An http(s) storageUri naming the metadata service's IP is 400 naming spec.storageUri, not stored."""
    status, error = await apply(api, model(f"{uri}?X-Amz-Signature=presigned-secret-value"))
    assert status == 400
    assert error.startswith("spec.storageUri: ")
    assert "MODELPLANE_STORAGE_BLOCKED_NETWORKS" in error
    assert "presigned-secret-value" not in error
    assert not await stored(api)


@pytest.mark.parametrize(
    "uri", ["http://127.0.0.1:9/model.joblib", "https://models.example.com/169.254.169.254"]
)
async def test_loopback_and_names_are_left_to_fetch_time(api: Api, uri: str) -> None:
    """Loopback (local MinIO) is allowed by default; a name is only resolved when it is fetched."""
    status, error = await apply(api, model(uri))
    assert (status, error) == (200, "")

"""`modelplane up --tls-cert/--tls-key` (here through their environment variables): the api
speaks TLS only; `up` applies its defaults, the CLI and a REST client connect with the CA and
the admin token from the state dir, and a plaintext client is refused."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from modelplane.libs.auth.grpc_metadata import bearer_metadata
from modelplane.proto import control_pb2, control_pb2_grpc
from tests.e2e.stack import Ports, UpProcess
from tests.helpers.tls_certs import CertFiles, make_cert


class TlsUp(UpProcess):
    """A stack whose CLI calls use https:// and trust the test's CA."""

    def __init__(self, tmp_path: Path, certs: CertFiles) -> None:
        super().__init__(
            tmp_path / "state",
            Ports(),
            tmp_path / "up.log",
            extra_env={"MODELPLANE_API_TLS_CERT": str(certs.cert), "MODELPLANE_API_TLS_KEY": str(certs.key)},
        )
        self.certs = certs

    @property
    def env(self) -> dict[str, str]:
        return {
            **super().env,
            "MODELPLANE_API_ADDRESS": f"https://127.0.0.1:{self.ports.api_grpc}",
            "MODELPLANE_CA": str(self.certs.ca),
        }


@pytest.fixture
def tls_stack(tmp_path: Path) -> Iterator[TlsUp]:
    up = TlsUp(tmp_path, make_cert(tmp_path / "tls"))
    up.start()
    try:
        up.wait_ready()  # the CLI over TLS sees the default server `up` applied over TLS
        yield up
    finally:
        up.stop()


def test_api_over_tls_end_to_end(tls_stack: TlsUp) -> None:
    """CLI and REST work over TLS with the CA; plaintext and untrusted clients do not."""
    listed = tls_stack.cli("server", "list")
    assert listed.code == 0, listed
    assert "mlserver" in listed.out

    url = f"https://127.0.0.1:{tls_stack.ports.api_http}/v1/servers"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {tls_stack.admin_token}"})
    trusted = ssl.create_default_context(cafile=str(tls_stack.certs.ca))
    with urllib.request.urlopen(request, timeout=30, context=trusted) as resp:
        assert "mlserver" in json.dumps(json.loads(resp.read()))
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(request, timeout=30, context=ssl.create_default_context())
    plain = urllib.request.Request(url.replace("https://", "http://"), headers=request.headers)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(plain, timeout=30)

    # A plaintext gRPC client gets no answer.
    with grpc.insecure_channel(f"127.0.0.1:{tls_stack.ports.api_grpc}") as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.List(
                control_pb2.ListRequest(kind="Server"),
                timeout=10,
                metadata=bearer_metadata(tls_stack.admin_token),
            )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE

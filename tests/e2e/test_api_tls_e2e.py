"""`modelplane up --tls-cert/--tls-key` (here through their environment variables): the api and
the gateway speak TLS only. `up` applies its defaults over TLS; the CLI, REST clients and
tritonclient (HTTP and gRPC) connect with the CA and the admin token from the state dir; the
dataflow workers call the gateway over https for pipeline and graph steps; plaintext clients
are refused on every port."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from modelplane.libs.auth.grpc_metadata import bearer_metadata
from modelplane.proto import control_pb2, control_pb2_grpc
from tests.e2e.stack import BIN, REPO, Ports, UpProcess
from tests.e2e.test_pipelines_e2e import GRAPH, SEQUENCE_GRAPH, apply, outputs_by_name, v2_body
from tests.helpers.tls_certs import CertFiles, make_cert

pytestmark = pytest.mark.e2e

EXAMPLE = REPO / "examples" / "pipeline"
# examples/pipeline/request.json is negative: the router sends it to negate.
EXAMPLE_ANSWER = {"OUTPUT0": [1.0, 3.0]}


class TlsUp(UpProcess):
    """A stack whose CLI calls use https:// and trust the test's CA."""

    def __init__(self, tmp_path: Path, certs: CertFiles) -> None:
        super().__init__(
            tmp_path / "state",
            Ports(),
            tmp_path / "up.log",
            extra_env={
                "MODELPLANE_API_TLS_CERT": str(certs.cert),
                "MODELPLANE_API_TLS_KEY": str(certs.key),
                # Pipeline steps too go dataflow -> gateway (graph steps always do), so both
                # cross the gateway's TLS.
                "MODELPLANE_DATAFLOW_STEP_CALLS": "gateway",
            },
        )
        self.certs = certs

    @property
    def env(self) -> dict[str, str]:
        return {
            **super().env,
            "MODELPLANE_API_ADDRESS": f"https://127.0.0.1:{self.ports.api_grpc}",
            "MODELPLANE_GATEWAY_URL": self.gateway_url,
            "MODELPLANE_CA": str(self.certs.ca),
        }

    @property
    def gateway_url(self) -> str:
        return f"https://127.0.0.1:{self.ports.gateway_http}"


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsUp]:
    tmp_path = tmp_path_factory.mktemp("tls-up")
    up = TlsUp(tmp_path, make_cert(tmp_path / "tls"))
    up.start()
    try:
        up.wait_ready()  # the CLI over TLS sees the default server `up` applied over TLS
        yield up
    finally:
        up.stop()


def post_json(url: str, body: Any, context: ssl.SSLContext, token: str | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=60, context=context) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
    return answer


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The CLI with an environment of the test's choosing (``TlsUp.cli`` uses the stack's)."""
    return subprocess.run(
        [str(BIN / "modelplane"), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


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


def test_gateway_over_tls_end_to_end(tls_stack: TlsUp) -> None:
    """The example pipeline's models, loaded with the CLI over TLS, answer through the https
    gateway to the CLI, tritonclient HTTP and gRPC (with the CA); the pipeline and a graph answer
    through dataflow -> gateway over TLS; the banner says https; plaintext gets no answer."""
    stack = tls_stack
    assert f"inference  REST {stack.gateway_url}" in stack.log_tail(400), stack.log_tail()

    loaded = stack.cli("model", "load", "-f", str(EXAMPLE / "models.yaml"), "--timeout", "180", timeout=210)
    assert loaded.code == 0, f"{loaded}\n{stack.log_tail()}"

    # The CLI: a model, then the example pipeline (steps: dataflow -> gateway over https).
    body = json.dumps(v2_body([1.5, 2.0]))
    answered = stack.cli("model", "infer", "double", body)
    assert answered.code == 0, f"{answered}\n{stack.log_tail()}"
    assert outputs_by_name(json.loads(answered.out)) == {"OUTPUT0": [3.0, 4.0]}, answered.out
    pipeline = stack.cli("pipeline", "load", "-f", str(EXAMPLE / "pipeline.yaml"))
    assert pipeline.code == 0, pipeline
    ready = stack.cli("pipeline", "status", "branch", "-w", "PipelineReady", "--timeout", "120", timeout=150)
    assert ready.code == 0, f"{ready}\n{stack.log_tail()}"
    answered = stack.cli("pipeline", "infer", "branch", "-f", str(EXAMPLE / "request.json"))
    assert answered.code == 0, f"{answered}\n{stack.log_tail()}"
    assert outputs_by_name(json.loads(answered.out)) == EXAMPLE_ANSWER, answered.out

    # MODELPLANE_CA alone selects TLS: plain addresses (as a user's defaults are) work too.
    plain_addresses = {
        **stack.env,
        "MODELPLANE_API_ADDRESS": f"127.0.0.1:{stack.ports.api_grpc}",
        "MODELPLANE_GATEWAY_URL": f"http://127.0.0.1:{stack.ports.gateway_http}",
    }
    for args in (["model", "list"], ["model", "infer", "double", body]):
        with_ca = run_cli(args, plain_addresses)
        assert with_ca.returncode == 0, with_ca

    # Without the CA the CLI refuses the certificate and says what to pass.
    without_ca = {k: v for k, v in stack.env.items() if k != "MODELPLANE_CA"}
    untrusted = run_cli(["model", "infer", "double", body], without_ca)
    assert untrusted.returncode == 1, untrusted
    assert "pass --ca" in untrusted.stderr, untrusted.stderr

    # A graph: its steps always go dataflow -> gateway.
    apply(stack, stack.state_dir.parent, "graph", GRAPH, SEQUENCE_GRAPH)
    trusted = ssl.create_default_context(cafile=str(stack.certs.ca))
    answer = post_json(f"{stack.gateway_url}/graphs/{GRAPH}", v2_body([1.0, 2.0]), trusted)
    assert outputs_by_name(answer) == {"OUTPUT0": [-2.0, -4.0]}, answer

    # tritonclient over HTTPS, trusting the CA.
    http_client = triton_http.InferenceServerClient(
        url=f"127.0.0.1:{stack.ports.gateway_http}", ssl=True, ssl_options={"ca_certs": str(stack.certs.ca)}
    )
    try:
        inp = triton_http.InferInput("INPUT0", [2], "FP32")
        inp.set_data_from_numpy(np.array([1.5, 2.0], dtype=np.float32))
        result = http_client.infer("double", inputs=[inp])
        assert np.asarray(result.as_numpy("OUTPUT0")).flatten().tolist() == [3.0, 4.0]
    finally:
        http_client.close()

    # tritonclient over gRPC with TLS, trusting the CA.
    grpc_client = triton_grpc.InferenceServerClient(
        url=f"127.0.0.1:{stack.ports.gateway_grpc}", ssl=True, root_certificates=str(stack.certs.ca)
    )
    try:
        inp_grpc = triton_grpc.InferInput("INPUT0", [2], "FP32")
        inp_grpc.set_data_from_numpy(np.array([1.5, 2.0], dtype=np.float32))
        answer_grpc = grpc_client.infer("double", inputs=[inp_grpc])
        assert np.asarray(answer_grpc.as_numpy("OUTPUT0")).flatten().tolist() == [3.0, 4.0]
    finally:
        grpc_client.close()

    # Plaintext on the gateway's ports gets no answer (REST and gRPC).
    plain = f"http://127.0.0.1:{stack.ports.gateway_http}/v2/health/live"
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(plain, timeout=30)
    # (tritonclient's own stubs: its protos clash with ours in one process.)
    plain_grpc = triton_grpc.InferenceServerClient(url=f"127.0.0.1:{stack.ports.gateway_grpc}")
    try:
        with pytest.raises(InferenceServerException) as refused:
            plain_grpc.is_server_live(client_timeout=10)
        assert refused.value.status() == "StatusCode.UNAVAILABLE", refused.value
    finally:
        plain_grpc.close()

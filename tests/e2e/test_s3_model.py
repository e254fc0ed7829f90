"""A model in S3 (the moto emulator) behind a secret: loaded through the CLI onto a real MLServer
replica, answering inference through the gateway; the credentials stay out of status and logs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import UpProcess, wait_until
from tests.e2e.test_scheduling import infer, status
from tests.helpers.iris import build_iris_model
from tests.helpers.s3_emulator import S3Emulator, running_s3

MODEL = """\
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata:
  name: iris-s3
spec:
  storageUri: s3://models/sklearn/iris
  requirements: [sklearn]
  secretName: s3-creds
"""


@pytest.fixture
def s3() -> Iterator[S3Emulator]:
    with running_s3() as emulator:
        yield emulator


def test_model_from_s3_with_a_secret_answers_through_the_gateway(
    stack: UpProcess, tmp_path: Path, s3: S3Emulator
) -> None:
    """s3:// + spec.secretName: fetched with the secret's keys, loaded, served; secret never shown."""
    iris = build_iris_model(tmp_path / "iris")
    client = s3.s3()
    client.create_bucket(Bucket="models")
    for file in sorted(p for p in iris.path.rglob("*") if p.is_file()):
        client.upload_file(str(file), "models", f"sklearn/iris/{file.relative_to(iris.path).as_posix()}")
    secrets = stack.state_dir / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    creds = s3.credentials()
    (secrets / "s3-creds.env").write_text("".join(f"{k}={v}\n" for k, v in creds.items()))

    manifest = tmp_path / "model.yaml"
    manifest.write_text(MODEL)
    done = stack.cli("model", "load", "-f", str(manifest))
    assert done.code == 0, done
    wait_until(
        lambda: status(stack, "model", "iris-s3").get("state") == "ModelAvailable", 90, "iris-s3 Available"
    )
    assert infer(stack, "iris-s3", iris) == iris.expected[:3].tolist()
    assert s3.download_count("models", "sklearn/iris/model.joblib") == 1
    shown = json.dumps(status(stack, "model", "iris-s3")) + stack.log_tail(5000)
    assert creds["AWS_SECRET_ACCESS_KEY"] not in shown

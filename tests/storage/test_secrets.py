"""SecretStore: .env files and Kubernetes-style folders, the default secret, errors without values."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelplane.libs.errors import InvalidError, NotFoundError
from modelplane.services.storage.secrets import SecretStore

VALUE = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


async def test_env_file(tmp_path: Path) -> None:
    """<name>.env: KEY=VALUE lines, comments, blank lines, export and quotes."""
    (tmp_path / "s3-creds.env").write_text(
        "# AWS credentials\n"
        "AWS_ACCESS_KEY_ID=AKIAEXAMPLE\n"
        "\n"
        f"export AWS_SECRET_ACCESS_KEY='{VALUE}'\n"
        'AWS_ENDPOINT_URL="http://127.0.0.1:5000"\n'
    )
    creds = await SecretStore(tmp_path).resolve("s3-creds")
    assert dict(creds) == {
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": VALUE,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
    }


async def test_kubernetes_secret_volume_layout(tmp_path: Path) -> None:
    """<name>/<KEY> files (a mounted Secret) are read; ..data internals are skipped; one newline trimmed."""
    folder = tmp_path / "azure"
    (folder / "..2026_11_01").mkdir(parents=True)
    (folder / "..2026_11_01" / "AZ_CLIENT_SECRET").write_text("hidden")
    (folder / "AZ_CLIENT_SECRET").write_text(f"{VALUE}\n")
    (folder / "AZURE_STORAGE_ACCESS_KEY").write_text("key==")
    creds = await SecretStore(tmp_path).resolve("azure")
    assert dict(creds) == {"AZ_CLIENT_SECRET": VALUE, "AZURE_STORAGE_ACCESS_KEY": "key=="}


async def test_gcp_key_file_becomes_application_credentials(tmp_path: Path) -> None:
    """A gcloud-application-credentials.json key file sets GOOGLE_APPLICATION_CREDENTIALS to its path."""
    (tmp_path / "gcp").mkdir()
    (tmp_path / "gcp" / "gcloud-application-credentials.json").write_text("{}")
    creds = await SecretStore(tmp_path).resolve("gcp")
    assert dict(creds) == {
        "GOOGLE_APPLICATION_CREDENTIALS": str(
            (tmp_path / "gcp" / "gcloud-application-credentials.json").resolve()
        )
    }


async def test_default_secret_is_used_when_none_is_named(tmp_path: Path) -> None:
    """An empty secret name falls back to default_secret_name; without a default there are none."""
    (tmp_path / "default.env").write_text("HF_TOKEN=hf_x\n")
    assert dict(await SecretStore(tmp_path, "default").resolve("")) == {"HF_TOKEN": "hf_x"}
    assert dict(await SecretStore(tmp_path).resolve("")) == {}


async def test_named_secret_wins_over_the_default(tmp_path: Path) -> None:
    """A model's own secret is used even when a default is configured."""
    (tmp_path / "default.env").write_text("HF_TOKEN=default\n")
    (tmp_path / "mine.env").write_text("HF_TOKEN=mine\n")
    assert dict(await SecretStore(tmp_path, "default").resolve("mine")) == {"HF_TOKEN": "mine"}


async def test_unknown_secret_is_not_found_on_secret_name(tmp_path: Path) -> None:
    """A secret that does not exist is a NotFoundError on spec.secretName naming it."""
    with pytest.raises(NotFoundError) as caught:
        await SecretStore(tmp_path).resolve("nope")
    assert caught.value.field == "spec.secretName"
    assert caught.value.message == "secret nope not found"


async def test_path_like_names_are_rejected(tmp_path: Path) -> None:
    """A secret name cannot reach outside the secrets directory."""
    with pytest.raises(InvalidError) as caught:
        await SecretStore(tmp_path / "secrets").resolve("../etc")
    assert caught.value.field == "spec.secretName"


async def test_values_never_appear_in_repr_or_errors(tmp_path: Path) -> None:
    """Neither the credentials' repr nor a parse error of the secret file shows a value."""
    (tmp_path / "ok.env").write_text(f"AWS_SECRET_ACCESS_KEY={VALUE}\n")
    creds = await SecretStore(tmp_path).resolve("ok")
    assert VALUE not in repr(creds)
    assert VALUE not in str(creds)
    assert "AWS_SECRET_ACCESS_KEY" in repr(creds)
    (tmp_path / "bad.env").write_text(f"AWS_ACCESS_KEY_ID=x\n{VALUE}\n")
    with pytest.raises(InvalidError) as caught:
        await SecretStore(tmp_path).resolve("bad")
    assert VALUE not in str(caught.value)
    assert "line 2" in str(caught.value)

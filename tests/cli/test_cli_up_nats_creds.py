"""`modelplane up --nats-creds`: an unusable credentials file is a usage error (exit 2), not a crash."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from modelplane.cli.main import cli


def test_world_readable_credentials_are_refused_before_anything_starts(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.write_text("ops:s3cret\n")
    creds.chmod(0o644)
    result = CliRunner().invoke(
        cli,
        [
            "up",
            "--state-dir",
            str(tmp_path / "state"),
            "--nats-url",
            "nats://127.0.0.1:1",
            "--nats-creds",
            str(creds),
        ],
    )
    assert result.exit_code == 2
    assert "--nats-creds" in result.output
    assert "accessible to other users" in result.output
    assert "s3cret" not in result.output
    assert not (tmp_path / "state").exists()

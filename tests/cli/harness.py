"""Running the `modelplane` CLI from async tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from click.testing import CliRunner, Result

from modelplane.cli.main import cli


@dataclass
class Cli:
    """Runs `modelplane ...` with CliRunner in a worker thread (the api serves on this test's loop)."""

    api_address: str
    # Sent as MODELPLANE_TOKEN (a test's own env may override it, or unset it with "").
    token: str = ""

    async def __call__(self, *args: str, input: str | None = None, **env: str) -> Result:
        runner = CliRunner()
        full_env = {"MODELPLANE_API_ADDRESS": self.api_address, "MODELPLANE_TOKEN": self.token, **env}
        return await asyncio.to_thread(runner.invoke, cli, list(args), input=input, env=full_env)

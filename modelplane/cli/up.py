"""`modelplane up`: start the whole stack locally in the foreground; Ctrl-C stops it cleanly."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import click
import structlog

from modelplane.libs import logs
from modelplane.libs.errors import InvalidError, ModelplaneError
from modelplane.libs.nats_credentials import load_credentials
from modelplane.up.stack import Stack, UpOptions

__all__ = ["up"]

log = structlog.get_logger(__name__)


@click.command()
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".modelplane"),
    envvar="MODELPLANE_STATE_DIR",
    show_default=True,
    help="Where NATS data, model repositories and logs live.",
)
@click.option(
    "--nats-url", envvar="MODELPLANE_NATS_URL", help="Use this NATS server instead of an embedded one."
)
@click.option(
    "--nats-creds",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="MODELPLANE_NATS_CREDS",
    help="Credentials for --nats-url: a NATS .creds file or a 'user:password' file (mode 0600). "
    "The embedded server ignores it: it generates one user per service.",
)
@click.option("--nats-port", type=int, default=4222, show_default=True, envvar="MODELPLANE_UP_NATS_PORT")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="MODELPLANE_UP_HOST")
@click.option("--api-port", type=int, default=9004, show_default=True, envvar="MODELPLANE_API_GRPC_PORT")
@click.option("--api-http-port", type=int, default=9080, show_default=True, envvar="MODELPLANE_API_HTTP_PORT")
@click.option(
    "--gateway-port", type=int, default=9000, show_default=True, envvar="MODELPLANE_GATEWAY_HTTP_PORT"
)
@click.option(
    "--gateway-grpc-port", type=int, default=9001, show_default=True, envvar="MODELPLANE_GATEWAY_GRPC_PORT"
)
@click.option(
    "--autoscaler-metrics-port",
    type=int,
    default=9010,
    show_default=True,
    envvar="MODELPLANE_AUTOSCALER_METRICS_PORT",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="MODELPLANE_API_TLS_CERT",
    help="PEM certificate: serve the api and the gateway (gRPC and REST) over TLS only; clients pass --ca.",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="MODELPLANE_API_TLS_KEY",
    help="PEM private key of --tls-cert.",
)
def up(
    state_dir: Path,
    nats_url: str | None,
    nats_creds: Path | None,
    nats_port: int,
    host: str,
    api_port: int,
    api_http_port: int,
    gateway_port: int,
    gateway_grpc_port: int,
    autoscaler_metrics_port: int,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """Start NATS, every service and a local MLServer replica; stop them all on Ctrl-C."""
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    logs.configure("up")
    if nats_creds is not None:
        try:
            load_credentials(nats_creds)
        except InvalidError as exc:
            raise click.BadParameter(str(exc), param_hint="--nats-creds") from exc
    options = UpOptions(
        state_dir=state_dir.resolve(),
        nats_url=nats_url,
        nats_creds=nats_creds.resolve() if nats_creds is not None else None,
        nats_port=nats_port,
        host=host,
        api_grpc_port=api_port,
        api_http_port=api_http_port,
        gateway_http_port=gateway_port,
        gateway_grpc_port=gateway_grpc_port,
        autoscaler_metrics_port=autoscaler_metrics_port,
        tls_cert=tls_cert.resolve() if tls_cert else None,
        tls_key=tls_key.resolve() if tls_key else None,
    )
    code = asyncio.run(_run(options))
    sys.exit(code)


async def _run(options: UpOptions) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGHUP too: closing the terminal should stop everything in order, like Ctrl-C.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    stack = Stack(options)
    try:
        starting = asyncio.ensure_future(stack.start())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            stopped.cancel()
            return 130
        stopped.cancel()
        starting.result()
        click.echo(stack.banner(), err=True)
        await stop.wait()
        return 0
    except ModelplaneError as exc:
        click.echo(f"modelplane up: {exc}", err=True)
        return 1
    finally:
        click.echo("stopping modelplane...", err=True)
        await stack.close()

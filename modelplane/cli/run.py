"""`modelplane run <service>`: run one service in the foreground (what `up` and Kubernetes do)."""

from __future__ import annotations

import importlib
import sys

import click

from modelplane.libs import logs, service, telemetry
from modelplane.libs.errors import ModelplaneError

SERVICES = ("api", "scheduler", "placement", "storage", "gateway", "status", "dataflow", "autoscaler")


@click.command()
@click.argument("name", type=click.Choice(SERVICES))
def run(name: str) -> None:
    """Run one service until SIGINT/SIGTERM (settings come from MODELPLANE_<SERVICE>_* variables)."""
    logs.configure(name)
    app_module = importlib.import_module(f"modelplane.services.{name}.app")
    try:
        app = app_module.create()
    except Exception as exc:  # settings validation: one clear line, exit 2
        raise click.UsageError(f"invalid settings for {name}: {exc}") from exc
    # Every service traces (spans are exported when OTEL_EXPORTER_OTLP_ENDPOINT is set).
    telemetry.setup_tracing(f"modelplane-{name}")
    try:
        # A service may ask for its own event loop implementation (the gateway runs on uvloop).
        loop_factory = getattr(app, "loop_factory", None)
        service.run(app, shutdown_timeout=app.shutdown_timeout, loop_factory=loop_factory)
    except ModelplaneError as exc:  # e.g. NATS unreachable: one line, not a traceback
        click.echo(f"modelplane run {name}: {exc}", err=True)
        sys.exit(1)
    finally:
        telemetry.shutdown_tracing()

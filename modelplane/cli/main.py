"""Entry point of the `modelplane` command: the click group and the commands that run processes.

Exit codes: 0 success, 1 failure, 2 usage or validation error; always one line saying why.
Resource commands live in their own modules and are registered here.
"""

from __future__ import annotations

import importlib

import click

from modelplane.cli.run import run


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modelplane")
def cli() -> None:
    """modelplane: deploy models onto model servers and serve them over the Open Inference Protocol."""


cli.add_command(run)

# Each module defines click commands/groups named in its __all__ and is imported lazily so a
# command's dependencies load only when the CLI starts.
_COMMAND_MODULES = ("modelplane.cli.up", "modelplane.cli.resources")


def _register() -> None:
    for module_name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        for name in getattr(module, "__all__", ()):
            cli.add_command(getattr(module, name))


_register()


def main() -> None:
    cli(prog_name="modelplane")

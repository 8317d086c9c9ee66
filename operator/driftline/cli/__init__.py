"""The `driftline` command.

Subcommands live in their own modules and are imported only when invoked, so that
`driftline crds` does not pay for onnxruntime or scipy, and a subcommand module that
fails to import breaks only itself.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

# name -> "module:attribute" of a click command or group
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "crds": ("driftline.cli.crds:crds", "Generate or check the CustomResourceDefinitions."),
    "validate": ("driftline.cli.validate:validate", "Validate manifests against the CRDs."),
    "apiserver": (
        "driftline.apiserver.cli:apiserver",
        "Run the local Kubernetes API on loopback.",
    ),
    "operator": ("driftline.cli.run_operator:operator", "Run the operator (kopf)."),
    "profile": ("driftline.cli.drift:profile", "Build a reference profile from training data."),
    "drift": ("driftline.cli.drift:drift", "Evaluate drift offline against a profile."),
    "sandbox": (
        "driftline.sandbox.cli:sandbox",
        "Run Driftline end to end on this machine (no Kubernetes, no Docker).",
    ),
    "rollout": (
        "driftline.cli.rollout:rollout",
        "See and steer a rollout: status, promote, abort, ...",
    ),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target[0].split(":")
        command: Any = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target[0]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(package_name="driftline")
def main() -> None:
    """Driftline: serve ONNX models on Kubernetes, roll them out safely, watch them for drift."""

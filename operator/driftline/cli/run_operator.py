"""`driftline operator`: the same as `python -m driftline.operator`, with its own name in
the usage line."""

from __future__ import annotations

import sys

import click


@click.command(
    context_settings={
        "ignore_unknown_options": True,
        "allow_extra_args": True,
        "help_option_names": [],
    },
    add_help_option=False,
)
@click.pass_context
def operator(ctx: click.Context) -> None:
    """Run the Driftline operator (options: driftline operator --help)."""
    from driftline.operator import PROG, main

    sys.exit(main(ctx.args, prog=PROG))

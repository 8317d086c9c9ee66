"""`driftline crds`: write, check or summarise the generated CustomResourceDefinitions."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from driftline.api.crdgen import all_crds, render_yaml


def stale_files(directory: Path) -> list[str]:
    """Names of CRD files in `directory` that differ from what the models generate."""
    stale = []
    for name, document in all_crds().items():
        path = directory / name
        if not path.exists() or path.read_text() != render_yaml(document):
            stale.append(name)
    return stale


# --check given without a directory: check --output-dir (./crds unless given)
_SAME_AS_OUTPUT = "\0output-dir"


def _check(directory: Path) -> None:
    names = list(all_crds())
    if not directory.is_dir() or not any((directory / name).exists() for name in names):
        what = "no directory" if not directory.is_dir() else "no Driftline CRD files in"
        where = "" if directory.is_absolute() else f" (in {Path.cwd()})"
        raise click.UsageError(
            f"{what} {directory}{where}: --check compares the crds/ directory of "
            "a Driftline checkout with the CRDs this driftline generates; run it in the "
            "repository, or name the directory: driftline crds --check DIR"
        )
    stale = stale_files(directory)
    if stale:
        click.echo(
            f"out of date in {directory}: {', '.join(stale)}; run `driftline crds`", err=True
        )
        sys.exit(1)
    click.echo(f"{directory}: up to date")


@click.command()
@click.option(
    "--output-dir",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("crds"),
    show_default=True,
    help="Where the CRD files live.",
)
@click.option(
    "--check",
    "check_dir",
    is_flag=False,
    flag_value=_SAME_AS_OUTPUT,
    default=None,
    metavar="[DIR]",
    help="Write nothing; exit 1 when the CRD files in DIR (default: --output-dir, ./crds) "
    "differ from what this driftline's models generate.",
)
@click.option("--summary", is_flag=True, help="Print a table of the resources instead of writing.")
def crds(output_dir: Path, check_dir: str | None, summary: bool) -> None:
    """Generate crds/*.yaml from the pydantic models in driftline.api."""
    if summary:
        _print_summary()
        return
    if check_dir is not None:
        directory = output_dir if check_dir == _SAME_AS_OUTPUT else Path(check_dir)
        _check(directory)
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, document in all_crds().items():
        (output_dir / name).write_text(render_yaml(document))
        click.echo(f"wrote {output_dir / name}")


def _print_summary() -> None:
    rows = [("KIND", "SHORT", "PLURAL", "RULES", "COLUMNS", "SUBRESOURCES")]
    for document in all_crds().values():
        spec = document["spec"]
        version = spec["versions"][0]
        schema = render_yaml(version["schema"])
        rows.append(
            (
                spec["names"]["kind"],
                ",".join(spec["names"]["shortNames"]),
                f"{spec['names']['plural']}.{spec['group']}",
                str(schema.count("rule: ")),
                ",".join(c["name"].lower() for c in version["additionalPrinterColumns"]),
                ",".join(version["subresources"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )

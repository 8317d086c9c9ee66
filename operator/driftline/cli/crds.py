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


@click.command()
@click.option(
    "--output-dir",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("crds"),
    show_default=True,
    help="Where the CRD files live.",
)
@click.option("--check", is_flag=True, help="Exit 1 when the files differ from the models.")
@click.option("--summary", is_flag=True, help="Print a table of the resources instead of writing.")
def crds(output_dir: Path, check: bool, summary: bool) -> None:
    """Generate crds/*.yaml from the pydantic models in driftline.api."""
    if summary:
        _print_summary()
        return
    if check:
        stale = stale_files(output_dir)
        if stale:
            click.echo(
                f"out of date in {output_dir}: {', '.join(stale)}; run `driftline crds`", err=True
            )
            sys.exit(1)
        click.echo(f"{output_dir}: up to date")
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

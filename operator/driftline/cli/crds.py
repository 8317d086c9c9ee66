"""`driftline crds`: write, check or summarise the generated CustomResourceDefinitions.

In a checkout they are written twice: to crds/ (the plain CRDs, Driftline's only) and to
the Helm chart's crds/ (charts/driftline/crds: Driftline's and kopf's peering CRDs), so
neither copy is ever edited by hand and `--check` fails when either is out of date."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from driftline.api.crdgen import all_crds, render_yaml
from driftline.api.kopfpeering import peering_crds

Documents = dict[str, dict[str, Any]]

DEFAULT_CHART = Path("charts/driftline")


def chart_crds() -> Documents:
    """What a Helm chart's crds/ holds: Driftline's CRDs and kopf's peering CRDs."""
    return {**all_crds(), **peering_crds()}


def is_chart_crds(directory: Path) -> bool:
    """Whether `directory` is the crds/ folder of a Helm chart."""
    return directory.name == "crds" and (directory.parent / "Chart.yaml").is_file()


def documents_for(directory: Path) -> Documents:
    return chart_crds() if is_chart_crds(directory) else all_crds()


def stale_files(directory: Path, documents: Documents | None = None) -> list[str]:
    """Names of CRD files in `directory` that differ from what the models generate
    (missing ones included); in a chart's crds/ also YAML files nothing generates."""
    documents = documents_for(directory) if documents is None else documents
    stale = []
    for name, document in documents.items():
        path = directory / name
        if not path.exists() or path.read_text() != render_yaml(document):
            stale.append(name)
    if is_chart_crds(directory):
        extra = sorted(p.name for p in directory.glob("*.yaml") if p.name not in documents)
        stale += [f"{name} (not generated: remove it)" for name in extra]
    return stale


# --check given without a directory: check --output-dir (./crds unless given)
_SAME_AS_OUTPUT = "\0output-dir"


def _check(directory: Path) -> bool:
    """Report on one directory; whether it is up to date."""
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
        return False
    click.echo(f"{directory}: up to date")
    return True


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
@click.option(
    "--chart",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_CHART,
    show_default=True,
    help="The Helm chart whose crds/ is written (and checked) too, when it exists there.",
)
@click.option("--summary", is_flag=True, help="Print a table of the resources instead of writing.")
def crds(output_dir: Path, check_dir: str | None, chart: Path, summary: bool) -> None:
    """Generate crds/*.yaml (and the chart's crds/) from the pydantic models in driftline.api."""
    if summary:
        _print_summary()
        return
    chart_dir = chart / "crds" if (chart / "Chart.yaml").is_file() else None
    if check_dir is not None:
        if check_dir == _SAME_AS_OUTPUT:
            directories = [output_dir, *([chart_dir] if chart_dir else [])]
        else:
            directories = [Path(check_dir)]
        # every directory is reported before the exit status says whether all were current
        if not all([_check(directory) for directory in directories]):
            sys.exit(1)
        return
    _write(output_dir, all_crds())
    if chart_dir is not None:
        _write(chart_dir, chart_crds())


def _write(directory: Path, documents: Documents) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, document in documents.items():
        (directory / name).write_text(render_yaml(document))
        click.echo(f"wrote {directory / name}")


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

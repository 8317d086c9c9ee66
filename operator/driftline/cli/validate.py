"""`driftline validate`: check manifests offline, with the API server's messages."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from pydantic import ValidationError

from driftline.api.manifests import check_manifest, load_documents, parse, rejection


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Validate Driftline manifests against the generated CRDs (schema and CEL rules)."""
    failed = 0
    for path in files:
        for document in load_documents(path):
            name = f"{path}: {document.get('kind')}/{document.get('metadata', {}).get('name', '?')}"
            stored, errors = check_manifest(document)
            if errors:
                failed += 1
                click.echo(f"INVALID {name}: {rejection(document, errors)}")
                continue
            try:
                parse(stored)
            except ValidationError as error:
                failed += 1
                click.echo(f"INVALID {name}: {error}")
                continue
            click.echo(f"valid   {name}")
    sys.exit(1 if failed else 0)

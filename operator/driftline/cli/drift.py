"""`driftline profile` and `driftline drift evaluate`: the engine, offline.

Thin wrappers: reading files and printing is here, every decision is in
`driftline_serving.drift`.
"""

from __future__ import annotations

from pathlib import Path

import click

# The drift engine is the data plane's (numpy, scipy, pyarrow): installed by the
# `serving` extra, not by a plain `pip install driftline`. `driftline.cli` imports this
# module only when `driftline profile` or `driftline drift` runs, so the other commands
# work without the extra and these two say what is missing.
try:
    from tqdm import tqdm

    from driftline_serving.drift import profile as profiles
    from driftline_serving.drift import readers, report
    from driftline_serving.drift.config import ConfigError, DriftConfig
    from driftline_serving.drift.engine import evaluate as evaluate_window
    from driftline_serving.drift.schema import Correction, SchemaError, load_schema
except ModuleNotFoundError as missing:
    raise click.ClickException(
        f"`driftline profile` and `driftline drift` need the drift engine, which needs "
        f"{missing.name}: install the serving extra, pip install 'driftline[serving]'"
    ) from missing

# exit statuses of `driftline drift evaluate` (1: bad input, 2: usage, as click uses them)
EXIT_DRIFTED = 3
EXIT_NOT_CHECKED = 4


@click.command()
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--schema",
    "schema_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON list of {name, type} with type numeric or categorical.",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Profile file to write.",
)
@click.option(
    "--format",
    "file_format",
    type=click.Choice(readers.FORMATS),
    default=None,
    help="Data format; by default from the file name.",
)
@click.option("--prediction-column", default=None, help="Column with the model's predicted class.")
@click.option("--confidence-column", default=None, help="Column with the model's top score.")
@click.option(
    "--exact-cap",
    default=65536,
    show_default=True,
    type=click.IntRange(min=2),
    help="Values per numeric feature kept exactly; past it, a bounded-error summary.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the row sample.")
@click.option(
    "--chunk-rows",
    default=readers.DEFAULT_CHUNK_ROWS,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rows read at a time.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def profile(
    data: Path,
    schema_path: Path,
    output: Path,
    file_format: str | None,
    prediction_column: str | None,
    confidence_column: str | None,
    exact_cap: int,
    seed: int,
    chunk_rows: int,
    quiet: bool,
) -> None:
    """Build a reference profile of DATA (CSV, Parquet or NPZ) and print its sha256.

    The sha256 is printed alone on standard output, as 64 hexadecimal characters: the
    value of the ModelVersion's spec.reference.sha256.
    """
    try:
        schema = load_schema(schema_path)
        builder = profiles.ProfileBuilder(schema, exact_cap=exact_cap, seed=seed)
        columns = list(schema.names)
        for extra in (prediction_column, confidence_column):
            if extra and extra not in columns:
                columns.append(extra)
        # a total (rows, or bytes of CSV) from metadata, so the bar has a percentage and
        # the time left
        size = readers.extent(data, file_format)
        types = {f.name: f.type.value for f in schema.features}
        with tqdm(
            total=size.total,
            unit=size.unit,
            unit_scale=size.unit == "B",
            unit_divisor=1024 if size.unit == "B" else 1000,
            disable=quiet,
            desc="profile",
        ) as bar:
            chunks = readers.read_chunks(
                data, columns, chunk_rows, file_format, types, progress=bar.update
            )
            for chunk in chunks:
                builder.add(
                    chunk,
                    predictions=chunk[prediction_column] if prediction_column else None,
                    confidences=chunk[confidence_column] if confidence_column else None,
                )
        built = builder.finish()
        digest = profiles.save_profile(built, output)
    except (SchemaError, readers.ReadError, profiles.ProfileError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"wrote {output}: {built.rows} rows, {len(schema.features)} features; its sha256 "
        "(a ModelVersion's spec.reference.sha256) follows",
        err=True,
    )
    # bare hex, as spec.reference.sha256 takes it: `sha256=$(driftline profile ...)`
    click.echo(digest)


@click.group()
def drift() -> None:
    """Evaluate drift offline against a reference profile."""


@drift.command("evaluate")
@click.argument("window", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--profile",
    "profile_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Reference profile.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--format",
    "file_format",
    type=click.Choice(readers.FORMATS),
    default=None,
    help="Window format; by default from the file name.",
)
@click.option("--significance", default=0.05, show_default=True, type=float)
@click.option(
    "--correction",
    type=click.Choice([c.value for c in Correction]),
    default=Correction.BENJAMINI_HOCHBERG.value,
    show_default=True,
)
@click.option("--min-samples", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--prediction-column", default=None, help="Column with the model's predicted class.")
@click.option("--confidence-column", default=None, help="Column with the model's top score.")
@click.option(
    "--fail-on-drift",
    is_flag=True,
    help=f"Exit with status {EXIT_DRIFTED} when the dataset drifted (by the features and "
    "the multivariate check that could be checked).",
)
@click.option(
    "--fail-on-unchecked",
    is_flag=True,
    help=f"Exit with status {EXIT_NOT_CHECKED} when a check that was due got no verdict "
    "(a feature with no column or too few valid values, the multivariate check, a "
    f"window too small); drift takes precedence ({EXIT_DRIFTED}).",
)
def evaluate(
    window: Path,
    profile_path: Path,
    as_json: bool,
    file_format: str | None,
    significance: float,
    correction: str,
    min_samples: int,
    prediction_column: str | None,
    confidence_column: str | None,
    fail_on_drift: bool,
    fail_on_unchecked: bool,
) -> None:
    """Compare WINDOW (CSV, Parquet or NPZ) with the reference profile.

    Column types come from the profile; a value that cannot be used is counted, never
    fatal. What could not be checked is listed, with the reason, in the table and the
    JSON (notChecked). Exit status: 0 done; 1 unreadable profile or window; 2 usage;
    3 drifted (with --fail-on-drift); 4 not everything checked (with --fail-on-unchecked).
    """
    try:
        reference = profiles.load_profile(profile_path)
        config = DriftConfig(
            significance=significance, correction=Correction(correction), min_samples=min_samples
        )
        types = {f.name: f.type.value for f in reference.schema.features}
        for name, profiled in ((prediction_column, "categorical"), (confidence_column, "numeric")):
            if name:
                types.setdefault(name, profiled)
        window_read = readers.read_window(window, types, file_format=file_format)
    except (profiles.ProfileError, readers.ReadError, ConfigError) as error:
        raise click.ClickException(str(error)) from None
    columns = window_read.columns
    for option, name, in_profile in (
        ("--prediction-column", prediction_column, reference.prediction is not None),
        ("--confidence-column", confidence_column, reference.confidence is not None),
    ):
        if name and not in_profile:
            raise click.ClickException(
                f"{option} {name}: the profile {profile_path} has no distribution for it "
                f"(build the profile with {option})"
            )
        if name and name not in columns:
            raise click.ClickException(f"{option} {name}: {window} has no such column")
    result = evaluate_window(
        reference,
        columns,
        config,
        predictions=columns.get(prediction_column) if prediction_column else None,
        confidences=columns.get(confidence_column) if confidence_column else None,
        invalid_rows=window_read.invalid_rows,
    )
    click.echo(report.to_json(result) if as_json else report.to_table(result))
    if fail_on_drift and result.dataset_drifted:
        raise SystemExit(EXIT_DRIFTED)
    if fail_on_unchecked and not result.complete:
        raise SystemExit(EXIT_NOT_CHECKED)

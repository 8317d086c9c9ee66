"""Retrain the churn model on a labelled window and report it to Driftline.

The program a DriftPolicy's retraining Job runs (see README.md), following the contract
in driftline.api.retraining:

1. reads the DRIFTLINE_* environment and the context file (the drifted version, the
   trigger, the drift summary) and the labelled data (--data: a CSV with the model's
   features and `churned`);
2. trains a logistic regression in numpy on a seeded split and measures accuracy, auc
   and log loss on the held-out rest;
3. exports it as ONNX (checked in onnxruntime against the numpy model) and builds the
   reference profile of the training rows with `driftline profile`;
4. uploads both under DRIFTLINE_OUTPUT_URI (s3://bucket/prefix/, or file:///dir/ for a
   local run) and writes the RetrainingResult, with their sha256, to the termination
   message file (DRIFTLINE_TERMINATION_LOG, default /dev/termination-log).

On any failure it prints the reason to stderr, exits 1 and writes no result: the
operator then sees a failed retraining, never a half-made model version.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import churn_model
import numpy as np
from churn_data import CATEGORICAL, FEATURES, LABEL
from numpy.typing import NDArray

from driftline.api import retraining as contract
from driftline_serving.artifacts import ArtifactError, fetch_artifact, parse_artifact_uri

MODEL_FILE = "model.onnx"
PROFILE_FILE = "reference.dlprofile"
# `driftline` exactly as its console script runs it, with this interpreter
DRIFTLINE_CLI = [
    sys.executable,
    "-c",
    "import sys; from driftline.cli import main; sys.exit(main())",
]


class RetrainError(RuntimeError):
    """The run cannot produce a model; the message says why."""


@dataclass(frozen=True)
class Settings:
    data: str
    output_uri: str
    published_uri: str  # where the serving pods will read what is written to output_uri
    termination_log: Path
    context_file: Path | None
    holdout: float
    seed: int
    epochs: int
    version: str | None
    fail: bool


def settings_from(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    output_uri = environ.get(contract.ENV_OUTPUT_URI, "").strip()
    if not output_uri:
        raise RetrainError(
            f"{contract.ENV_OUTPUT_URI} is not set: it names where the new model goes "
            "(s3://bucket/prefix/, or file:///dir/ for a local run)"
        )
    scheme = urllib.parse.urlsplit(output_uri).scheme
    if scheme not in ("s3", "file"):
        raise RetrainError(
            f"{contract.ENV_OUTPUT_URI}={output_uri!r}: expected an s3:// or file:// prefix"
        )
    published = args.published_uri or (output_uri if scheme == "s3" else "")
    if not published:
        raise RetrainError(
            f"{contract.ENV_OUTPUT_URI} is a file:// prefix, which serving pods cannot read: "
            "pass --published-uri, the http(s):// or s3:// prefix where that folder is served"
        )
    if not 0.0 < args.holdout < 1.0:
        raise RetrainError(f"--holdout must be between 0 and 1, got {args.holdout}")
    context = environ.get(contract.ENV_CONTEXT_FILE)
    return Settings(
        data=args.data,
        output_uri=output_uri,
        published_uri=published,
        termination_log=Path(
            environ.get(contract.ENV_TERMINATION_LOG) or contract.TERMINATION_MESSAGE_PATH
        ),
        context_file=Path(context) if context else None,
        holdout=args.holdout,
        seed=args.seed,
        epochs=args.epochs,
        version=args.version,
        fail=args.fail,
    )


def read_context(path: Path | None) -> dict[str, Any]:
    """The context file's JSON object; empty when the run was given none (a local run)."""
    if path is None:
        return {}
    try:
        document = json.loads(path.read_text())
    except OSError as error:
        raise RetrainError(f"cannot read the context file {path}: {error.strerror}") from None
    except ValueError as error:
        raise RetrainError(f"the context file {path} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise RetrainError(f"the context file {path} is not a JSON object")
    return document


def read_table(path: Path, source: str) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """The features (in FEATURES order) and labels of a CSV; RetrainError naming the cell."""
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in (*FEATURES, LABEL) if c not in (reader.fieldnames or [])]
            if missing:
                raise RetrainError(f"{source} has no column {', '.join(missing)}")
            rows: list[list[float]] = []
            labels: list[int] = []
            for line, record in enumerate(reader, start=2):
                try:
                    rows.append([float(record[name]) for name in FEATURES])
                    labels.append(int(record[LABEL]))
                except (TypeError, ValueError):
                    raise RetrainError(
                        f"{source} line {line}: every feature must be a number and "
                        f"{LABEL} 0 or 1, got {dict(record)}"
                    ) from None
    except OSError as error:
        raise RetrainError(f"cannot read {source}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise RetrainError(f"{source} is not a text CSV file") from None
    if not rows:
        raise RetrainError(f"{source} has no data rows")
    return np.array(rows, dtype=np.float64), np.array(labels, dtype=np.int64)


def split(rows: int, holdout: float, seed: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Row indices for training and for the held-out evaluation, shuffled by `seed`."""
    order = np.random.default_rng(seed).permutation(rows)
    held = max(1, round(rows * holdout))
    if rows - held < 2:
        raise RetrainError(f"{rows} rows are too few to train and hold some out")
    return order[held:], order[:held]


def check_in_onnxruntime(
    model_bytes: bytes, model: churn_model.ChurnModel, table: NDArray[np.float64]
) -> None:
    """The exported graph computes what the numpy model does, in the runtime that serves it."""
    import onnxruntime  # the serving runtime; imported here, only this check needs it

    session = onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    (served,) = session.run(
        [churn_model.OUTPUT_NAME], {churn_model.INPUT_NAME: table.astype(np.float32)}
    )
    expected = churn_model.churn_probability(model, table)
    worst = float(np.abs(served[:, 1] - expected).max())
    if worst > 1e-4:
        raise RetrainError(f"the ONNX model differs from the trained model by up to {worst:.2e}")


def build_profile(table: NDArray[np.float64], churn: NDArray[np.float64], workdir: Path) -> Path:
    """The reference profile of the training rows, with the model's outputs on them."""
    schema = workdir / "schema.json"
    schema.write_text(
        json.dumps(
            [
                {"name": n, "type": "categorical" if n in CATEGORICAL else "numeric"}
                for n in FEATURES
            ]
        )
    )
    data = workdir / "training.csv"
    with data.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*FEATURES, "prediction", "confidence"])
        for row, probability in zip(table, churn, strict=True):
            writer.writerow(
                [
                    *(
                        int(v) if n in CATEGORICAL else repr(float(v))
                        for n, v in zip(FEATURES, row, strict=True)
                    ),
                    int(probability >= 0.5),
                    repr(float(max(probability, 1 - probability))),
                ]
            )
    profile = workdir / PROFILE_FILE
    command = [
        *DRIFTLINE_CLI,
        "profile",
        str(data),
        "--schema",
        str(schema),
        "--output",
        str(profile),
        "--prediction-column",
        "prediction",
        "--confidence-column",
        "confidence",
        "--quiet",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RetrainError(f"driftline profile failed: {done.stderr.strip()}")
    return profile


def upload(data: bytes, output_uri: str, name: str) -> None:
    """Write `data` as `name` under the output prefix (file:// or s3://)."""
    parsed = urllib.parse.urlsplit(output_uri)
    if parsed.scheme == "file":
        folder = Path(urllib.parse.unquote(parsed.path))
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # written beside and renamed, so a reader never sees half a file
            partial = folder / f".partial-{name}"
            partial.write_bytes(data)
            os.replace(partial, folder / name)
        except OSError as error:
            raise RetrainError(
                f"cannot write {name} to {output_uri}: {error.strerror or error}"
            ) from None
        return
    _upload_s3(data, parsed.netloc, f"{parsed.path.strip('/')}/{name}".lstrip("/"))


def _upload_s3(data: bytes, bucket: str, key: str) -> None:
    uri = f"s3://{bucket}/{key}"
    try:
        import obstore
        from obstore.exceptions import BaseError
        from obstore.store import S3Store
    except ImportError:
        raise RetrainError(
            f"cannot upload {uri}: S3 needs obstore (pip install 'driftline[s3]')"
        ) from None
    # Credentials, region and endpoint from the standard AWS_* environment (the Job's
    # Secret), as driftline_serving.artifacts reads them.
    options: dict[str, Any] = {}
    if os.environ.get("AWS_ALLOW_HTTP", "").lower() == "true":
        options["allow_http"] = True
    try:
        obstore.put(S3Store(bucket, client_options=options), key, data)  # type: ignore[arg-type]
    except FileNotFoundError:  # obstore raises the built-in one for a 404
        raise RetrainError(f"cannot upload {uri}: no such bucket") from None
    except (BaseError, OSError) as error:
        # obstore's messages span many lines of context; the first says what failed
        text = str(error).strip()
        summary = text.splitlines()[0][:300] if text else type(error).__name__
        raise RetrainError(f"cannot upload {uri}: {summary}") from None


def join(prefix: str, name: str) -> str:
    return f"{prefix.rstrip('/')}/{name}"


def result_message(
    published_uri: str,
    model_sha256: str,
    profile_sha256: str,
    metrics: dict[str, float],
    version: str | None,
) -> str:
    """The termination message, checked as the operator will read it."""
    result: dict[str, Any] = {
        "artifact": {"uri": join(published_uri, MODEL_FILE), "sha256": model_sha256},
        "reference": {"uri": join(published_uri, PROFILE_FILE), "sha256": profile_sha256},
        "metrics": metrics,
    }
    if version:
        result["version"] = version
    message = json.dumps(result, separators=(",", ":"))
    try:
        contract.parse_result(message)
    except contract.MalformedResult as error:
        raise RetrainError(f"the result would be refused by the operator: {error}") from None
    if len(message.encode()) > contract.TERMINATION_MESSAGE_LIMIT:
        raise RetrainError(
            f"the result is {len(message.encode())} bytes, more than the "
            f"{contract.TERMINATION_MESSAGE_LIMIT} Kubernetes keeps"
        )
    return message


def retrain(settings: Settings, environ: Mapping[str, str]) -> str:
    """Train, export, profile and upload; the termination message to write."""
    context = read_context(settings.context_file)
    drifted = (
        environ.get(contract.ENV_SERVING_VERSION) or context.get("servingVersion") or "unknown"
    )
    trigger = environ.get(contract.ENV_TRIGGER) or context.get("trigger") or "a local run"
    log(
        f"retraining {environ.get(contract.ENV_MODEL, 'churn')} (drifted version {drifted}, {trigger})"
    )
    with tempfile.TemporaryDirectory(prefix="retrain-") as work:
        workdir = Path(work)
        try:
            location = parse_artifact_uri(settings.data)
            fetched = fetch_artifact(settings.data, workdir / "data")
        except ArtifactError as error:
            raise RetrainError(f"cannot read the training data: {error}") from None
        table, labels = read_table(fetched.path, settings.data)
        log(f"read {len(table)} labelled rows from {settings.data} ({location.scheme})")
        if settings.fail:
            raise RetrainError("--fail: stopping as asked, before training")
        training, held_out = split(len(table), settings.holdout, settings.seed)
        try:
            model = churn_model.train(table[training], labels[training], epochs=settings.epochs)
            metrics = churn_model.metrics(
                churn_model.churn_probability(model, table[held_out]), labels[held_out]
            )
        except ValueError as error:
            raise RetrainError(f"cannot train on {settings.data}: {error}") from None
        log(f"trained on {len(training)} rows; held-out {len(held_out)} rows: {metrics}")
        model_bytes = churn_model.to_onnx(model).SerializeToString()
        check_in_onnxruntime(model_bytes, model, table[held_out])
        profile = build_profile(
            table[training], churn_model.churn_probability(model, table[training]), workdir
        )
        profile_bytes = profile.read_bytes()
    message = result_message(
        settings.published_uri,
        hashlib.sha256(model_bytes).hexdigest(),
        hashlib.sha256(profile_bytes).hexdigest(),
        metrics,
        settings.version,
    )
    upload(model_bytes, settings.output_uri, MODEL_FILE)
    upload(profile_bytes, settings.output_uri, PROFILE_FILE)
    log(f"uploaded {MODEL_FILE} and {PROFILE_FILE} to {settings.output_uri}")
    return message


def write_termination_message(path: Path, message: str) -> None:
    try:
        path.write_text(message)
    except OSError as error:
        raise RetrainError(
            f"cannot write the result to {path}: {error.strerror or error}"
        ) from None


def log(line: str) -> None:
    print(f"retrain: {line}", file=sys.stderr, flush=True)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        required=True,
        help="labelled CSV (the features and churned): a path, file://, https:// or s3:// URI",
    )
    parser.add_argument(
        "--published-uri",
        default="",
        help="the http(s):// or s3:// prefix the serving pods read the output from "
        f"(default: {contract.ENV_OUTPUT_URI} when it is s3://)",
    )
    parser.add_argument("--holdout", type=float, default=0.2, help="fraction held out")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split")
    parser.add_argument("--epochs", type=int, default=400, help="gradient descent steps")
    parser.add_argument("--version", default=None, help="version label of the new model")
    parser.add_argument(
        "--fail", action="store_true", help="fail after reading the data (to try failure paths)"
    )
    return parser


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = parser().parse_args(argv)
    environ = os.environ if environ is None else environ
    try:
        settings = settings_from(args, environ)
        message = retrain(settings, environ)
        write_termination_message(settings.termination_log, message)
    except RetrainError as error:
        print(f"retrain: error: {error}", file=sys.stderr, flush=True)
        return 1
    log(f"wrote the result to {settings.termination_log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

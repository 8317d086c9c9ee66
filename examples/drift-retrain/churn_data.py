"""A synthetic churn table with the features the example's ModelVersions declare.

`shift` moves the customers and what makes them churn from the world the first model
was trained on (0) to the drifted one (1): a competitor's cheaper plans bring in new
month-to-month customers who call support more, and price (not contract length) now
decides who leaves. So a model trained at shift 0 is wrong in a way that retraining
on a drifted window can fix, and the drift sidecar sees the input drift too.

Categorical features are small integer codes, because the serving tensor is FP32 and
the drift sidecar reads the features from it: contract 0 month-to-month, 1 one-year,
2 two-year; payment_method 0 bank transfer, 1 credit card, 2 electronic check, 3 mailed
check.

    python churn_data.py --rows 4000 --shift 1 --seed 2 -o recent-window.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

# The ModelVersion's features, in the order of the model's input tensor's columns.
FEATURES = (
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "support_calls",
    "contract",
    "payment_method",
)
CATEGORICAL = {"contract": 3, "payment_method": 4}  # feature -> number of codes
LABEL = "churned"


def generate(rows: int, shift: float, seed: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """`rows` customers (columns in FEATURES order) and whether each churned (0 or 1)."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    if not 0.0 <= shift <= 1.0:
        raise ValueError(f"shift must be between 0 and 1, got {shift}")
    rng = np.random.default_rng(seed)
    contract_mix = (1 - shift) * np.array([0.45, 0.30, 0.25]) + shift * np.array([0.70, 0.20, 0.10])
    contract = rng.choice(3, size=rows, p=contract_mix)
    payment = rng.choice(4, size=rows, p=[0.25, 0.25, 0.35, 0.15])
    # newer customers after the shift: shorter tenure, longer for longer contracts
    tenure = np.clip(rng.gamma(2.0, 14.0 - 6.0 * shift, size=rows) + 10.0 * contract, 0, 72)
    tenure = np.round(tenure)
    monthly = np.clip(rng.normal(65.0 + 8.0 * shift, 22.0, size=rows), 18.0, 120.0).round(2)
    total = (tenure * monthly * rng.uniform(0.9, 1.1, size=rows)).round(2)
    support_calls = rng.poisson(1.2 + 1.8 * shift, size=rows).astype(np.float64)

    # What drives churn: before, contract length and tenure; after, price above all,
    # while support calls go from a warning sign to a sign of a customer being looked after.
    before = (
        -0.6
        + 1.6 * (contract == 0)
        - 1.2 * (contract == 2)
        - 0.05 * (tenure - 20.0)
        + 0.01 * (monthly - 65.0)
        + 0.5 * (support_calls - 1.2)
        + 0.4 * (payment == 2)
    )
    after = (
        -0.4
        + 0.10 * (monthly - 70.0)
        - 0.4 * (support_calls - 3.0)
        - 0.01 * (tenure - 15.0)
        + 0.4 * (payment == 2)
    )
    logit = (1 - shift) * before + shift * after
    churned = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    table = np.column_stack([tenure, monthly, total, support_calls, contract, payment])
    return table.astype(np.float64), churned


def write_csv(path: Path, table: NDArray[np.float64], churned: NDArray[np.int64]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*FEATURES, LABEL])
        for row, label in zip(table, churned, strict=True):
            cells = [_cell(name, value) for name, value in zip(FEATURES, row, strict=True)]
            writer.writerow([*cells, int(label)])


def _cell(name: str, value: float) -> str:
    # whole-number columns as integers, so the CSV reads as the data it is
    if name in CATEGORICAL or name in ("tenure_months", "support_calls"):
        return str(int(value))
    return f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--shift", type=float, default=0.0, help="0: as trained; 1: drifted")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, required=True, help="CSV file to write")
    args = parser.parse_args(argv)
    try:
        table, churned = generate(args.rows, args.shift, args.seed)
    except ValueError as error:
        parser.error(str(error))
    write_csv(args.output, table, churned)
    print(
        f"wrote {args.output}: {args.rows} rows, churn rate {churned.mean():.3f}", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

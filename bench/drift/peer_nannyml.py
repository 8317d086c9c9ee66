"""NannyML on clean chunks and on a correlation change whose marginals stay the same.

Run with the drift-nannyml venv's python (create it with `python venvs.py drift-nannyml`):
    .bench-venvs/drift-nannyml/bin/python bench/drift/peer_nannyml.py

Reference: 20 000 clean rows (seed 1). Analysis: 100 clean chunks of 1 000 rows (seed 2),
then 50 chunks of 1 000 rows in which normal_2 is correlated with normal_1 (rho 0.5,
seed 3). Chunk size 1 000, NannyML's default thresholds: mean +- 3 sd of the metric over
the reference's own chunks, the rows it was fitted on (chi-square: p < 0.05 per chunk).
Measures the share of chunks alerted by DataReconstructionDriftCalculator (PCA
reconstruction error on the 40 numeric features; with its mean error on clean and on
correlation-change chunks), and for UnivariateDriftCalculator, with its default methods
and with KS / chi-square, the share of (chunk, feature) pairs alerted per method and the
share of chunks with any alert. Prints one JSON object.
"""

from __future__ import annotations

import json
import time

import data as bench_data
import nannyml as nml
import numpy as np
import pandas as pd
from numpy.typing import NDArray

CHUNK = 1000
CLEAN_CHUNKS = 100
CORRELATED_CHUNKS = 50
RHO = 0.5


def frame(columns: dict[str, NDArray]) -> pd.DataFrame:
    df = pd.DataFrame({n: columns[n] for n in bench_data.FEATURES})
    # integer columns count as continuous to NannyML; categorical ones must say so
    return df.astype({c: "category" for c in bench_data.CATEGORICAL})


def alerts(result: nml.base.AbstractResult) -> pd.DataFrame:
    """The analysis chunks' alert columns, one column per (feature, method) or metric."""
    df = result.filter(period="analysis").to_df()
    return df.loc[:, [c for c in df.columns if c[-1] == "alert"]].astype(bool)


def rates(flags: pd.DataFrame, clean: slice, changed: slice) -> dict[str, float]:
    return {
        "clean_pairs": float(flags.iloc[clean].to_numpy().mean()),
        "clean_chunks_any": float(flags.iloc[clean].any(axis=1).mean()),
        "correlated_pairs": float(flags.iloc[changed].to_numpy().mean()),
        "correlated_chunks_any": float(flags.iloc[changed].any(axis=1).mean()),
    }


def univariate(
    reference: pd.DataFrame, analysis: pd.DataFrame, **methods: list[str]
) -> dict[str, dict[str, float]]:
    calculator = nml.UnivariateDriftCalculator(
        column_names=bench_data.FEATURES, chunk_size=CHUNK, **methods
    ).fit(reference)
    flags = alerts(calculator.calculate(analysis))
    clean, changed = slice(0, CLEAN_CHUNKS), slice(CLEAN_CHUNKS, None)
    out: dict[str, dict[str, float]] = {}
    for kind, names in (
        ("continuous", bench_data.NUMERIC),
        ("categorical", bench_data.CATEGORICAL),
    ):
        part = flags.loc[:, [c for c in flags.columns if c[0] in names]]
        for method in sorted({c[1] for c in part.columns}):
            columns = [c for c in part.columns if c[1] == method]
            out[f"{kind}:{method}"] = rates(part[columns], clean, changed)
    out["all"] = rates(flags, clean, changed)
    return out


def main() -> None:
    nml.disable_usage_logging()
    start = time.perf_counter()
    reference = frame(bench_data.draw(np.random.default_rng(1), 20_000))
    analysis = pd.concat(
        [
            frame(bench_data.draw(np.random.default_rng(2), CLEAN_CHUNKS * CHUNK)),
            frame(bench_data.correlated(np.random.default_rng(3), CORRELATED_CHUNKS * CHUNK, RHO)),
        ],
        ignore_index=True,
    )

    reconstruction = nml.DataReconstructionDriftCalculator(
        column_names=bench_data.NUMERIC, chunk_size=CHUNK
    ).fit(reference)
    result = reconstruction.calculate(analysis).filter(period="analysis").to_df()
    assert len(result) == CLEAN_CHUNKS + CORRELATED_CHUNKS
    alerted = result[("reconstruction_error", "alert")].to_numpy(dtype=bool)
    error = result[("reconstruction_error", "value")].to_numpy(dtype=float)
    upper = float(reconstruction.upper_threshold_value or np.inf)

    report = {
        "tool": "nannyml",
        "version": nml.__version__,
        "chunk_size": CHUNK,
        "reference_rows": len(reference),
        "clean_chunks": CLEAN_CHUNKS,
        "correlated_chunks": CORRELATED_CHUNKS,
        "rho": RHO,
        "reconstruction": {
            "pca_components": int(reconstruction._pca.n_components_),
            "thresholds": [float(reconstruction.lower_threshold_value or 0), upper],
            "clean_mean_error": float(error[:CLEAN_CHUNKS].mean()),
            "correlated_mean_error": float(error[CLEAN_CHUNKS:].mean()),
            "clean_chunks_alerted": float(alerted[:CLEAN_CHUNKS].mean()),
            "correlated_chunks_alerted": float(alerted[CLEAN_CHUNKS:].mean()),
        },
        "univariate_default": univariate(reference, analysis),
        "univariate_ks_chi2": univariate(
            reference,
            analysis,
            continuous_methods=["kolmogorov_smirnov"],
            categorical_methods=["chi2"],
        ),
        "seconds": round(time.perf_counter() - start, 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

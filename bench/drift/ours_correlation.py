"""This engine on the data of peer_nannyml.py: the same reference, clean chunks and
correlation-change chunks, drawn with the same seeds, evaluated window by window with
the DriftPolicy defaults. Run with the project's .venv python:

    .venv/bin/python bench/drift/ours_correlation.py

Prints one JSON object: the share of clean chunks with any alarm (the dataset verdict),
the share of (clean chunk, feature) pairs flagged, and the share of chunks the
multivariate check flagged, clean and with normal_1 and normal_2 correlated (rho 0.5).
"""

from __future__ import annotations

import json
import time

import data as bench_data
import numpy as np
from numpy.typing import NDArray

from driftline_serving.drift import evaluate
from driftline_serving.drift.profile import build_profile
from driftline_serving.drift.schema import Schema

CHUNK = 1000
CLEAN_CHUNKS = 100
CORRELATED_CHUNKS = 50
RHO = 0.5


def chunks(columns: dict[str, NDArray], count: int) -> list[dict[str, NDArray]]:
    return [{n: v[i * CHUNK : (i + 1) * CHUNK] for n, v in columns.items()} for i in range(count)]


def main() -> None:
    start = time.perf_counter()
    schema = Schema.of([(f["name"], f["type"]) for f in bench_data.schema()])
    profile = build_profile(schema, [bench_data.draw(np.random.default_rng(1), 20_000)])
    clean = [
        evaluate(profile, w)
        for w in chunks(
            bench_data.draw(np.random.default_rng(2), CLEAN_CHUNKS * CHUNK), CLEAN_CHUNKS
        )
    ]
    changed = [
        evaluate(profile, w)
        for w in chunks(
            bench_data.correlated(np.random.default_rng(3), CORRELATED_CHUNKS * CHUNK, RHO),
            CORRELATED_CHUNKS,
        )
    ]
    report = {
        "tool": "driftline",
        "chunk_size": CHUNK,
        "reference_rows": 20_000,
        "clean_chunks": CLEAN_CHUNKS,
        "correlated_chunks": CORRELATED_CHUNKS,
        "rho": RHO,
        "clean_chunks_any_alarm": float(np.mean([r.dataset_drifted for r in clean])),
        "clean_pairs_flagged": float(
            np.mean([r.drifted_features / len(r.features) for r in clean])
        ),
        "multivariate_clean_flagged": float(
            np.mean([bool(r.multivariate and r.multivariate.drifted) for r in clean])
        ),
        "multivariate_correlated_flagged": float(
            np.mean([bool(r.multivariate and r.multivariate.drifted) for r in changed])
        ),
        "named_pair_when_flagged": sorted(
            {
                "/".join(r.multivariate.pair)
                for r in changed
                if r.multivariate and r.multivariate.drifted
            }
        ),
        "seconds": round(time.perf_counter() - start, 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Profile build at scale: write 1M rows x 100 features (90 numeric, 10 categorical) as
Parquet in row groups, then time `driftline profile` on it in a child process and read
the child's peak memory. Run with the project's .venv python: build_big.py DIR."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROWS = 1_000_000
NUMERIC = 90
CATEGORICAL = 10


def write(directory: Path) -> tuple[Path, Path]:
    data_path = directory / "big.parquet"
    schema_path = directory / "big-schema.json"
    schema = [{"name": f"x{i}", "type": "numeric"} for i in range(NUMERIC)] + [
        {"name": f"c{i}", "type": "categorical"} for i in range(CATEGORICAL)
    ]
    schema_path.write_text(json.dumps(schema))
    if data_path.exists():
        return data_path, schema_path
    rng = np.random.default_rng(1)
    writer = None
    for _ in range(ROWS // 100_000):
        columns = {f"x{i}": rng.normal(i % 7, 1 + i % 3, 100_000) for i in range(NUMERIC)}
        columns.update({f"c{i}": rng.integers(0, 5 + i, 100_000) for i in range(CATEGORICAL)})
        table = pa.table(columns)
        writer = writer or pq.ParquetWriter(data_path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    return data_path, schema_path


def main() -> None:
    directory = Path(sys.argv[1])
    directory.mkdir(parents=True, exist_ok=True)
    data_path, schema_path = write(directory)
    driftline = Path(sys.executable).parent / "driftline"
    start = time.perf_counter()
    completed = subprocess.run(
        [
            str(driftline),
            "profile",
            str(data_path),
            "--schema",
            str(schema_path),
            "-o",
            str(directory / "big-profile.npz"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    json.dump(
        {
            "rows": ROWS,
            "features": NUMERIC + CATEGORICAL,
            "seconds": seconds,
            "peak_mb": peak_mb,
            "profile_mb": (directory / "big-profile.npz").stat().st_size / 1e6,
            "sha256": completed.stdout.strip(),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()

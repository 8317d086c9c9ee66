"""Chunked readers: bounded chunks, the same values from every format, clear errors."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from driftline_serving.drift.readers import (
    ReadError,
    count_rows,
    extent,
    read_all,
    read_chunks,
    read_window,
)


def test_npz_streams_in_chunks_of_the_asked_size(tmp_path):
    path = tmp_path / "d.npz"
    np.savez_compressed(path, x=np.arange(2500.0), c=np.array(["a", "b"] * 1250))
    chunks = list(read_chunks(path, chunk_rows=1000))
    assert [len(c["x"]) for c in chunks] == [1000, 1000, 500]
    assert np.concatenate([c["x"] for c in chunks]).tolist() == list(range(2500))
    assert chunks[2]["c"][0] == "a"
    assert count_rows(path) == 2500


def test_parquet_nulls_become_nan_and_empty_strings(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"x": pa.array([1, None, 3]), "c": pa.array(["a", None, "b"])}), path)
    data = read_all(path)
    assert np.isnan(data["x"][1]) and data["x"][2] == 3.0
    assert data["c"].tolist() == ["a", "", "b"]
    assert count_rows(path) == 3


def test_npz_with_objects_or_matrices_is_refused(tmp_path):
    objects = tmp_path / "o.npz"
    np.savez(objects, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ReadError, match="Python objects"):
        list(read_chunks(objects))
    matrix = tmp_path / "m.npz"
    np.savez(matrix, x=np.zeros((10, 3)))
    with pytest.raises(ReadError, match="one 1-D array per feature"):
        list(read_chunks(matrix))


def test_npz_arrays_of_different_lengths_are_refused(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros(10), y=np.zeros(11))
    with pytest.raises(ReadError, match="differ in length"):
        list(read_chunks(path))


def test_damaged_files_are_clear_errors(tmp_path):
    for name in ("d.npz", "d.parquet"):
        (tmp_path / name).write_bytes(b"garbage")
        with pytest.raises(ReadError, match="cannot read"):
            list(read_chunks(tmp_path / name))


@pytest.mark.parametrize(
    ("file_format", "unit"), [("csv", "B"), ("parquet", "rows"), ("npz", "rows")]
)
def test_progress_adds_up_to_the_extent_known_up_front(tmp_path, file_format, unit):
    path = tmp_path / f"d.{file_format}"
    x = np.random.default_rng(1).normal(size=300_000)
    if file_format == "npz":
        np.savez(path, x=x)
    elif file_format == "parquet":
        pq.write_table(pa.table({"x": x}), path)
    else:
        path.write_text("x\n" + "\n".join(map(repr, x.tolist())) + "\n")  # > one 4 MB block
    size = extent(path)
    assert size.unit == unit
    assert size.total == (path.stat().st_size if unit == "B" else 300_000)
    reported: list[int] = []
    rows = sum(len(c["x"]) for c in read_chunks(path, chunk_rows=50_000, progress=reported.append))
    assert rows == 300_000
    assert sum(reported) == size.total
    assert len(reported) > 1 and all(amount >= 0 for amount in reported)


def test_window_csv_columns_are_text_until_the_engine_parses_them(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text("x,c,extra\n1.5,3,a\nNA,4,b\nabc,,c\n,5,d\n")
    window = read_window(path, {"x": "numeric", "c": "categorical"})
    assert window.columns["x"].tolist() == ["1.5", "", "abc", ""]  # NA and "" are missing
    assert window.columns["c"].tolist() == ["3", "4", "", "5"]
    assert window.columns["extra"].tolist() == ["a", "b", "c", "d"]
    assert window.invalid_rows == 0

"""Chunked readers: bounded chunks, the same values from every format, clear errors."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from driftline_serving.drift.readers import ReadError, count_rows, read_all, read_chunks


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

"""Profile files: round trip, determinism, no pickle, clear errors."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import numpy as np
import pytest

from driftline_serving.drift import evaluate
from driftline_serving.drift.profile import (
    OTHER_CATEGORY,
    ProfileBuilder,
    ProfileError,
    build_profile,
    from_bytes,
    load_profile,
    save_profile,
    to_bytes,
)
from driftline_serving.drift.schema import Schema, SchemaError

from .conftest import SCHEMA, draw


def test_round_trip_gives_the_same_evaluation(profile, tmp_path):
    path = tmp_path / "ref.npz"
    digest = save_profile(profile, path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = load_profile(path)
    window = draw(np.random.default_rng(3), 1500, shift=0.2)
    assert evaluate(loaded, window).to_dict() == evaluate(profile, window).to_dict()
    assert loaded.rows == profile.rows
    np.testing.assert_array_equal(
        loaded.numeric["normal"].sample.values, profile.numeric["normal"].sample.values
    )


def test_same_data_and_seed_give_the_same_bytes(reference_data):
    first = to_bytes(build_profile(SCHEMA, [reference_data]))
    second = to_bytes(build_profile(SCHEMA, [reference_data]))
    assert first == second


def test_file_holds_no_pickled_objects(profile):
    data = to_bytes(profile)
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        for name in archive.files:
            assert not archive[name].dtype.hasobject
    header = json.loads(np.load(io.BytesIO(data), allow_pickle=False)["header.json"].tobytes())
    assert header["format"] == "driftline-profile" and header["version"] == 1


def test_sketch_profile_records_its_error_bound():
    rng = np.random.default_rng(4)
    schema = Schema.of([("x", "numeric")])
    builder = ProfileBuilder(schema, exact_cap=1024)
    for _ in range(20):
        builder.add({"x": rng.normal(size=5000)})
    profile = builder.finish()
    sample = profile.numeric["x"].sample
    assert sample.count == 100_000
    assert 0 < sample.ecdf_error < (4 * np.log2(100_000 / 1024) + 4) / 1024
    assert from_bytes(to_bytes(profile)).numeric["x"].sample.ecdf_error == sample.ecdf_error


def test_rare_categories_are_pooled_past_the_cap():
    schema = Schema.of([("c", "categorical")])
    builder = ProfileBuilder(schema, max_categories=3)
    builder.add({"c": np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 10 + ["d"] * 5 + ["e"] * 5)})
    categorical = builder.finish().categorical["c"]
    assert categorical.categories == ("a", "b", "c", OTHER_CATEGORY)
    assert categorical.counts.tolist() == [50, 30, 10, 10]


def test_reference_invalid_values_are_counted():
    schema = Schema.of([("x", "numeric"), ("c", "categorical")])
    builder = ProfileBuilder(schema)
    builder.add(
        {"x": np.array([1.0, np.nan, np.inf, 2.0] * 50), "c": np.array(["a", "", "b", "a"] * 50)}
    )
    profile = builder.finish()
    assert profile.numeric["x"].invalid == 100
    assert profile.numeric["x"].sample.count == 100
    assert profile.categorical["c"].invalid == 50


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda data: b"not a zip", "not a driftline profile"),
        (lambda data: data[: len(data) // 2], "not a driftline profile"),
    ],
)
def test_damaged_files_are_refused_clearly(profile, mutate, message):
    with pytest.raises(ProfileError, match=message):
        from_bytes(mutate(to_bytes(profile)))


def _rewrite_header(data: bytes, change) -> bytes:
    arrays = dict(np.load(io.BytesIO(data), allow_pickle=False))
    header = json.loads(arrays["header.json"].tobytes())
    change(header)
    arrays["header.json"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def test_other_format_versions_are_refused(profile):
    data = _rewrite_header(to_bytes(profile), lambda h: h.update(version=99))
    with pytest.raises(ProfileError, match="version 99"):
        from_bytes(data)


def test_incomplete_profile_is_refused(profile):
    data = _rewrite_header(to_bytes(profile), lambda h: h["numeric"].pop("normal"))
    with pytest.raises(ProfileError, match="incomplete"):
        from_bytes(data)


def test_pickled_npz_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, **{"header.json": np.array([{"format": "driftline-profile"}], dtype=object)})
    with pytest.raises(ProfileError):
        load_profile(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ProfileError, match="cannot read profile"):
        load_profile(tmp_path / "nope.npz")


def test_building_needs_every_feature_and_rows():
    builder = ProfileBuilder(SCHEMA)
    with pytest.raises(ProfileError, match="no column for feature"):
        builder.add({"normal": [1.0]})
    with pytest.raises(ProfileError, match="no rows"):
        builder.finish()


def test_schema_errors():
    with pytest.raises(SchemaError, match="twice"):
        Schema.of([("a", "numeric"), ("a", "categorical")])
    with pytest.raises(SchemaError, match="expected 'numeric' or 'categorical'"):
        Schema.from_list([{"name": "a", "type": "text"}])
    with pytest.raises(SchemaError, match="no features"):
        Schema.from_list([])
    assert Schema.from_list({"features": [{"name": "a", "type": "numeric"}]}).numeric == ("a",)


def test_zip_entries_never_use_feature_names_as_paths():
    schema = Schema.of([("../../etc/passwd", "numeric"), ("a/b", "categorical")])
    profile = build_profile(
        schema, [{"../../etc/passwd": np.arange(200.0), "a/b": np.array(["x"] * 200)}]
    )
    names = zipfile.ZipFile(io.BytesIO(to_bytes(profile))).namelist()
    assert all(".." not in n for n in names)
    assert from_bytes(to_bytes(profile)).schema == schema

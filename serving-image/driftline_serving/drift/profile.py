"""Reference profiles: what the tests need from the training data, built once.

A profile holds, per numeric feature, a sorted reference sample (exact up to a cap, a
summary with a proven error bound past it), its decile bin edges and bin frequencies
for PSI and Jensen-Shannon, and its mean and standard deviation; per categorical
feature, a frequency table (the most frequent categories up to a cap, the rest pooled);
the model's output class counts and top-score distribution when given; and the
multivariate model fitted on a uniform sample of reference rows.

File format (version 1): an NPZ archive, read with `allow_pickle=False`, holding plain
numeric and fixed-width string arrays plus `header.json` (a UTF-8 byte array) with the
schema, counts and parameters. Zip entries carry a fixed timestamp, so one input and one
seed give byte-identical files and so the same sha256.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import special

from driftline_serving.drift import multivariate
from driftline_serving.drift.schema import FeatureType, Schema, SchemaError
from driftline_serving.drift.sketches import QuantileSummary, WeightedSample
from driftline_serving.drift.statistical_tests import quantile_grid
from driftline_serving.drift.values import as_float, categorical_column, numeric_column

FloatArray = NDArray[np.float64]

FORMAT = "driftline-profile"
FORMAT_VERSION = 1
PSI_BINS = 10
# Quantiles kept for Wasserstein and the multivariate check's normal scores: both only
# need the quantile function to this resolution, and a small table stays in cache.
QUANTILE_TABLE_SIZE = 1024
OTHER_CATEGORY = "__other__"
PREDICTION = "__prediction__"
CONFIDENCE = "__confidence__"


class ProfileError(ValueError):
    """A profile file that cannot be read, or data a profile cannot be built from."""


@dataclass(frozen=True)
class NumericProfile:
    name: str
    sample: WeightedSample
    mean: float
    std: float
    inner_edges: FloatArray  # PSI/JS bin edges; bins are (-inf, e1], ..., (ek, inf)
    bin_frequencies: FloatArray  # reference share of each bin
    quantile_table: FloatArray  # quantiles at u = (j + 0.5) / QUANTILE_TABLE_SIZE
    invalid: int  # NaN, infinite or unparseable reference values

    def __post_init__(self) -> None:
        # cached: every window needs the reference CDF and quantile function
        object.__setattr__(self, "_cumulative", self.sample.cumulative())
        object.__setattr__(self, "_grid", quantile_grid(self.sample))
        grid = (np.arange(self.quantile_table.size) + 0.5) / max(self.quantile_table.size, 1)
        object.__setattr__(self, "_scores", np.asarray(special.ndtri(grid), dtype=np.float64))

    @property
    def cumulative(self) -> FloatArray:
        value: FloatArray = object.__getattribute__(self, "_cumulative")
        return value

    @property
    def grid(self) -> FloatArray:
        value: FloatArray = object.__getattribute__(self, "_grid")
        return value

    def normal_scores(self, values: FloatArray) -> FloatArray:
        """Phi^-1 of the reference CDF, linear between the quantile table's points.

        The multivariate check applies this same monotone transform to the reference's
        row sample and to each window; outside the table it stays at the end points
        (|z| <= 3.3 for 1024 points).
        """
        scores: FloatArray = object.__getattribute__(self, "_scores")
        if self.quantile_table.size == 0:
            return np.zeros(np.shape(values))
        return np.asarray(np.interp(values, self.quantile_table, scores), dtype=np.float64)


@dataclass(frozen=True)
class CategoricalProfile:
    name: str
    categories: tuple[str, ...]  # may end with OTHER_CATEGORY when capped
    counts: FloatArray
    invalid: int  # missing values

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {c: i for i, c in enumerate(self.categories)})

    @property
    def index(self) -> dict[str, int]:
        value: dict[str, int] = object.__getattribute__(self, "_index")
        return value

    @property
    def pooled_other(self) -> bool:
        return bool(self.categories) and self.categories[-1] == OTHER_CATEGORY


@dataclass(frozen=True)
class Profile:
    schema: Schema
    rows: int
    numeric: Mapping[str, NumericProfile]
    categorical: Mapping[str, CategoricalProfile]
    prediction: CategoricalProfile | None = None
    confidence: NumericProfile | None = None
    multivariate: multivariate.MultivariateModel | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- building


class ProfileBuilder:
    """Streams chunks of columns into a profile; memory does not grow with the row count.

    - numeric: a `QuantileSummary` per feature (exact up to `exact_cap` values);
    - categorical: a running count per category;
    - rows for the multivariate model: bottom-k sampling on a seeded random key per row,
      which is a uniform sample of `row_sample` rows whatever the stream's length.
    """

    def __init__(
        self,
        schema: Schema,
        *,
        exact_cap: int = 65536,
        max_categories: int = 1000,
        row_sample: int = 20000,
        seed: int = 0,
    ) -> None:
        self.schema = schema
        self.exact_cap = exact_cap
        self.max_categories = max_categories
        self.row_sample = row_sample
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._rows = 0
        self._summaries = {name: QuantileSummary(exact_cap) for name in schema.numeric}
        self._numeric_invalid = dict.fromkeys(schema.numeric, 0)
        self._tallies: dict[str, dict[str, int]] = {name: {} for name in schema.categorical}
        self._categorical_invalid = dict.fromkeys(schema.categorical, 0)
        self._prediction_tally: dict[str, int] = {}
        self._prediction_invalid = 0
        self._confidence = QuantileSummary(exact_cap)
        self._confidence_invalid = 0
        self._has_outputs = False
        self._sample_rows = np.empty((0, len(schema.numeric)))
        self._sample_keys = np.empty(0)

    def add(
        self,
        columns: Mapping[str, Any],
        predictions: Any | None = None,
        confidences: Any | None = None,
    ) -> None:
        """Add one chunk: every schema feature as an equally long column."""
        missing = [name for name in self.schema.names if name not in columns]
        if missing:
            raise ProfileError(f"the data has no column for feature(s) {', '.join(missing)}")
        lengths = {name: len(columns[name]) for name in self.schema.names}
        if len(set(lengths.values())) > 1:
            raise ProfileError(f"columns differ in length: {lengths}")
        chunk_rows = next(iter(lengths.values()))
        self._rows += chunk_rows
        raw_numeric = []
        for name in self.schema.numeric:
            values = np.asarray(columns[name])
            column = numeric_column(values)
            self._summaries[name].add(column.finite)
            self._numeric_invalid[name] += column.nan + column.infinite + column.unparseable
            if column.finite.size != chunk_rows:
                values = as_float(values)[0]
            raw_numeric.append(np.asarray(values, dtype=np.float64))
        for name in self.schema.categorical:
            cat = categorical_column(columns[name])
            _merge(self._tallies[name], cat.labels, cat.counts)
            self._categorical_invalid[name] += cat.missing
        if raw_numeric:
            self._sample(np.column_stack(raw_numeric))
        if predictions is not None:
            self._has_outputs = True
            cat = categorical_column(predictions)
            _merge(self._prediction_tally, cat.labels, cat.counts)
            self._prediction_invalid += cat.missing
        if confidences is not None:
            self._has_outputs = True
            column = numeric_column(confidences)
            self._confidence.add(column.finite)
            self._confidence_invalid += column.nan + column.infinite + column.unparseable

    def _sample(self, block: FloatArray) -> None:
        keys = self._rng.random(block.shape[0])
        rows = np.concatenate((self._sample_rows, block))
        all_keys = np.concatenate((self._sample_keys, keys))
        if all_keys.size > self.row_sample:
            keep = np.argpartition(all_keys, self.row_sample - 1)[: self.row_sample]
            keep.sort()
            rows, all_keys = rows[keep], all_keys[keep]
        self._sample_rows, self._sample_keys = rows, all_keys

    def finish(self) -> Profile:
        if self._rows == 0:
            raise ProfileError("the data has no rows")
        numeric = {
            name: _numeric_profile(
                name, self._summaries[name].result(), self._numeric_invalid[name]
            )
            for name in self.schema.numeric
        }
        categorical = {
            name: _categorical_profile(
                name, self._tallies[name], self._categorical_invalid[name], self.max_categories
            )
            for name in self.schema.categorical
        }
        prediction = confidence = None
        if self._prediction_tally:
            prediction = _categorical_profile(
                PREDICTION, self._prediction_tally, self._prediction_invalid, self.max_categories
            )
        if self._confidence.count:
            confidence = _numeric_profile(
                CONFIDENCE, self._confidence.result(), self._confidence_invalid
            )
        return Profile(
            schema=self.schema,
            rows=self._rows,
            numeric=numeric,
            categorical=categorical,
            prediction=prediction,
            confidence=confidence,
            multivariate=self._fit_multivariate(numeric),
            parameters={
                "exact_cap": self.exact_cap,
                "max_categories": self.max_categories,
                "row_sample": self.row_sample,
                "seed": self.seed,
            },
        )

    def _fit_multivariate(
        self, numeric: Mapping[str, NumericProfile]
    ) -> multivariate.MultivariateModel | None:
        # constant features carry no dependence; rows with a missing value are left out
        usable = [i for i, name in enumerate(self.schema.numeric) if numeric[name].std > 0]
        if len(usable) < 2:
            return None
        names = tuple(self.schema.numeric[i] for i in usable)
        rows = self._sample_rows[:, usable]
        rows = rows[np.all(np.isfinite(rows), axis=1)]
        scores = (
            np.column_stack(
                [numeric[name].normal_scores(rows[:, k]) for k, name in enumerate(names)]
            )
            if rows.size
            else np.empty((0, len(names)))
        )
        return multivariate.fit(names, scores)


def _merge(tally: dict[str, int], labels: tuple[str, ...], counts: NDArray[np.int64]) -> None:
    for label, count in zip(labels, counts.tolist(), strict=True):
        tally[label] = tally.get(label, 0) + count


def _numeric_profile(name: str, sample: WeightedSample, invalid: int) -> NumericProfile:
    mean, std = sample.mean_std()
    if sample.values.size:
        probabilities = np.arange(1, PSI_BINS) / PSI_BINS
        # unique: a feature with few distinct values gets fewer, never empty, bins
        edges = np.unique(sample.quantiles(probabilities))
        edges = edges[edges < sample.values[-1]]
        cumulative = sample.cumulative()
        at_edges = sample.cdf(edges, cumulative)
        frequencies = np.diff(np.concatenate(([0.0], at_edges, [1.0])))
        grid = (np.arange(QUANTILE_TABLE_SIZE) + 0.5) / QUANTILE_TABLE_SIZE
        table = sample.quantiles(grid)
    else:
        edges = np.empty(0)
        frequencies = np.ones(1)
        table = np.empty(0)
    return NumericProfile(name, sample, mean, std, edges, frequencies, table, invalid)


def _categorical_profile(
    name: str, tally: Mapping[str, int], invalid: int, max_categories: int
) -> CategoricalProfile:
    # most frequent first, ties by label, so the order (and the file) is deterministic
    ranked = sorted(tally.items(), key=lambda item: (-item[1], item[0]))
    kept = ranked[:max_categories]
    rest = sum(count for _, count in ranked[max_categories:])
    categories = [label for label, _ in kept]
    counts = [float(count) for _, count in kept]
    if rest:
        categories.append(OTHER_CATEGORY)
        counts.append(float(rest))
    return CategoricalProfile(
        name, tuple(categories), np.asarray(counts, dtype=np.float64), invalid
    )


def build_profile(schema: Schema, chunks: Any, *, exact_cap: int = 65536, seed: int = 0) -> Profile:
    """Build from an iterable of column mappings (see `readers.read_chunks`)."""
    builder = ProfileBuilder(schema, exact_cap=exact_cap, seed=seed)
    for chunk in chunks:
        builder.add(chunk)
    return builder.finish()


# ---------------------------------------------------------------------------- file format


def to_bytes(profile: Profile) -> bytes:
    arrays: dict[str, NDArray[Any]] = {}
    header: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "schema": profile.schema.to_list(),
        "rows": profile.rows,
        "parameters": dict(profile.parameters),
        "numeric": {},
        "categorical": {},
    }
    # entries are keyed by position: feature names are free text, never archive paths
    for index, (name, numeric) in enumerate(profile.numeric.items()):
        header["numeric"][name] = _numeric_header(numeric, arrays, f"numeric/{index}")
    for index, (name, categorical) in enumerate(profile.categorical.items()):
        header["categorical"][name] = _categorical_header(
            categorical, arrays, f"categorical/{index}"
        )
    if profile.prediction is not None:
        header["prediction"] = _categorical_header(profile.prediction, arrays, "prediction")
    if profile.confidence is not None:
        header["confidence"] = _numeric_header(profile.confidence, arrays, "confidence")
    if profile.multivariate is not None:
        model = profile.multivariate
        header["multivariate"] = {
            "features": list(model.features),
            "sample_rows": model.sample_rows,
        }
        arrays["multivariate/correlation"] = model.correlation
        arrays["multivariate/psi_variance"] = model.psi_variance
    arrays["header.json"] = np.frombuffer(
        json.dumps(header, sort_keys=True).encode("utf-8"), dtype=np.uint8
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as entry:
                np.lib.format.write_array(
                    entry, np.ascontiguousarray(arrays[key]), allow_pickle=False
                )
    return buffer.getvalue()


def _numeric_header(
    profile: NumericProfile, arrays: dict[str, NDArray[Any]], key: str
) -> dict[str, Any]:
    arrays[f"{key}/values"] = profile.sample.values
    if not profile.sample.exact:
        arrays[f"{key}/weights"] = profile.sample.weights
    arrays[f"{key}/edges"] = profile.inner_edges
    arrays[f"{key}/bin_frequencies"] = profile.bin_frequencies
    arrays[f"{key}/quantiles"] = profile.quantile_table
    return {
        "key": key,
        "count": profile.sample.count,
        "ecdf_error": profile.sample.ecdf_error,
        "mean": profile.mean,
        "std": profile.std,
        "invalid": profile.invalid,
    }


def _categorical_header(
    profile: CategoricalProfile, arrays: dict[str, NDArray[Any]], key: str
) -> dict[str, Any]:
    arrays[f"{key}/counts"] = profile.counts
    return {"key": key, "categories": list(profile.categories), "invalid": profile.invalid}


def save_profile(profile: Profile, path: str | Path) -> str:
    """Write the profile; returns the file's sha256 (hex), the ModelVersion's reference digest."""
    data = to_bytes(profile)
    Path(path).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def load_profile(path: str | Path) -> Profile:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ProfileError(f"cannot read profile {path}: {error.strerror}") from None
    return from_bytes(data, source=str(path))


def from_bytes(data: bytes, source: str = "profile") -> Profile:
    # A profile is an NPZ, which is a zip archive. Anything else is refused here, before
    # numpy guesses at it (it would suggest loading it "unsafely" with allow_pickle).
    if not data.startswith(b"PK\x03\x04"):
        raise ProfileError(
            f"{source} is not a driftline profile: not an NPZ archive (a profile is the "
            "file that `driftline profile` writes)"
        )
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise ProfileError(f"{source} is not a driftline profile ({error})") from None
    if "header.json" not in arrays:
        raise ProfileError(f"{source} is not a driftline profile (no header)")
    try:
        header = json.loads(arrays["header.json"].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ProfileError(f"{source}: the profile header is not valid JSON") from None
    if header.get("format") != FORMAT:
        raise ProfileError(f"{source} is not a driftline profile")
    if header.get("version") != FORMAT_VERSION:
        raise ProfileError(
            f"{source} is profile format version {header.get('version')}; "
            f"this driftline reads version {FORMAT_VERSION}"
        )
    try:
        return _from_parts(header, arrays)
    except (KeyError, TypeError, SchemaError) as error:
        raise ProfileError(f"{source}: the profile is incomplete or damaged ({error})") from None


def _from_parts(header: dict[str, Any], arrays: dict[str, NDArray[Any]]) -> Profile:
    def numeric(entry: dict[str, Any], name: str) -> NumericProfile:
        key = entry["key"]
        values = np.asarray(arrays[f"{key}/values"], dtype=np.float64)
        weights_key = f"{key}/weights"
        weights = arrays[weights_key] if weights_key in arrays else np.ones(values.size)
        sample = WeightedSample(
            values,
            np.asarray(weights, dtype=np.float64),
            int(entry["count"]),
            float(entry["ecdf_error"]),
        )
        return NumericProfile(
            name,
            sample,
            float(entry["mean"]),
            float(entry["std"]),
            np.asarray(arrays[f"{key}/edges"], dtype=np.float64),
            np.asarray(arrays[f"{key}/bin_frequencies"], dtype=np.float64),
            np.asarray(arrays[f"{key}/quantiles"], dtype=np.float64),
            int(entry["invalid"]),
        )

    def categorical(entry: dict[str, Any], name: str) -> CategoricalProfile:
        counts = np.asarray(arrays[f"{entry['key']}/counts"], dtype=np.float64)
        return CategoricalProfile(name, tuple(entry["categories"]), counts, int(entry["invalid"]))

    schema = Schema.from_list(header["schema"])
    model = None
    if "multivariate" in header:
        model = multivariate.MultivariateModel(
            tuple(header["multivariate"]["features"]),
            np.asarray(arrays["multivariate/correlation"], dtype=np.float64),
            np.asarray(arrays["multivariate/psi_variance"], dtype=np.float64),
            int(header["multivariate"]["sample_rows"]),
        )
    return Profile(
        schema=schema,
        rows=int(header["rows"]),
        numeric={n: numeric(header["numeric"][n], n) for n in schema.numeric},
        categorical={n: categorical(header["categorical"][n], n) for n in schema.categorical},
        prediction=categorical(header["prediction"], PREDICTION)
        if "prediction" in header
        else None,
        confidence=numeric(header["confidence"], CONFIDENCE) if "confidence" in header else None,
        multivariate=model,
        parameters=header.get("parameters", {}),
    )


def feature_type(profile: Profile, name: str) -> FeatureType:
    return FeatureType.NUMERIC if name in profile.numeric else FeatureType.CATEGORICAL

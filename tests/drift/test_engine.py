"""The evaluation entry point: verdicts, effect-size floor, invalid data, outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from driftline_serving.drift import ConfigError, DriftConfig, Severity, evaluate
from driftline_serving.drift.profile import ProfileBuilder
from driftline_serving.drift.schema import Schema

from .conftest import SCHEMA, draw


def test_clean_window_has_no_drift(profile):
    report = evaluate(profile, draw(np.random.default_rng(5), 2000))
    assert report.evaluated
    assert not report.dataset_drifted
    assert report.severity is Severity.NONE
    assert [f.feature for f in report.features] == list(SCHEMA.names)
    assert all(f.p_value is not None and f.p_value > 0.05 for f in report.features)
    assert report.multivariate is not None and not report.multivariate.drifted


def test_mean_shift_is_flagged_on_that_feature_only(profile):
    report = evaluate(profile, draw(np.random.default_rng(6), 2000, shift=0.5))
    drifted = [f.feature for f in report.features if f.drifted]
    assert drifted == ["normal"]
    normal = report.features[0]
    assert normal.test == "KolmogorovSmirnov"
    assert normal.p_value < 1e-10
    assert {t.test for t in normal.tests} == {
        "KolmogorovSmirnov",
        "PSI",
        "JensenShannon",
        "Wasserstein",
    }
    assert report.dataset_drifted
    assert report.severity is Severity.MEDIUM  # 1 of 6 features: over the 10% share


def test_category_frequency_change_is_flagged(profile):
    window = draw(np.random.default_rng(7), 2000, colour_p=np.array([0.25, 0.25, 0.25, 0.25]))
    report = evaluate(profile, window)
    colour = next(f for f in report.features if f.feature == "colour")
    assert colour.drifted and colour.test == "ChiSquare"
    assert colour.effect_size == pytest.approx(0.2, abs=0.03)  # total variation


def test_effect_size_floor_ignores_negligible_shift_in_huge_window(reference_data):
    rng = np.random.default_rng(8)
    big = {"x": rng.normal(size=400_000)}
    schema = Schema.of([("x", "numeric")])
    builder = ProfileBuilder(schema, exact_cap=400_000)
    builder.add(big)
    profile = builder.finish()
    window = {"x": rng.normal(0.03, 1.0, 300_000)}  # D about 0.012: real but negligible
    floor_on = evaluate(profile, window, DriftConfig(multivariate=False))
    floor_off = evaluate(profile, window, DriftConfig(min_effect_size=0.0, multivariate=False))
    assert floor_on.features[0].p_value < 0.05  # statistically certain ...
    assert not floor_on.features[0].drifted  # ... but below the floor
    assert floor_off.features[0].drifted


def test_too_few_samples_gives_no_verdict(profile):
    report = evaluate(profile, draw(np.random.default_rng(9), 50, shift=3.0))
    assert not report.evaluated
    assert not report.dataset_drifted
    assert "100 needed" in report.note
    assert all(f.note for f in report.features)


def test_empty_window_never_crashes(profile):
    for window in ({}, {name: [] for name in SCHEMA.names}):
        report = evaluate(profile, window)
        assert report.samples == 0
        assert not report.evaluated
        json.dumps(report.to_dict(), allow_nan=False)


def test_invalid_values_are_counted_and_dropped(profile):
    rng = np.random.default_rng(10)
    window = draw(rng, 1000)
    normal = window["normal"].astype(object)
    normal[:10] = np.nan
    normal[10:15] = np.inf
    normal[15:17] = -np.inf
    normal[17:20] = "oops"
    normal[20:22] = None
    window["normal"] = normal
    colour = window["colour"].astype(object)
    colour[:7] = None
    colour[7:12] = "purple"  # unknown category
    window["colour"] = colour
    window["skewed"] = np.full(1000, np.nan)  # nothing usable
    window["extra"] = np.zeros(1000)
    report = evaluate(profile, window)
    by_name = {f.feature: f for f in report.features}
    counts = by_name["normal"].invalid
    assert (counts.nan, counts.infinite, counts.unparseable) == (12, 7, 3)
    assert by_name["normal"].samples == 978
    assert by_name["colour"].invalid.nan == 7
    assert by_name["colour"].invalid.unseen == 5
    assert by_name["skewed"].note == "0 valid values; 100 needed"
    assert not by_name["skewed"].drifted
    assert report.unknown_columns == ("extra",)
    assert report.invalid_values == 12 + 7 + 3 + 7 + 1000
    json.dumps(report.to_dict(), allow_nan=False)


def test_missing_feature_column_is_reported(profile):
    window = draw(np.random.default_rng(11), 500)
    del window["bimodal"]
    report = evaluate(profile, window)
    bimodal = next(f for f in report.features if f.feature == "bimodal")
    assert bimodal.invalid.absent
    assert bimodal.note == "no column in the window"
    # needs every numeric feature: reported as not checked, with the reason (issue 13)
    assert report.multivariate is not None and not report.multivariate.checked
    assert report.multivariate.note == "no column in the window for bimodal"


def test_unequal_column_lengths_skip_only_the_multivariate_check(profile):
    window = draw(np.random.default_rng(12), 500)
    window["normal"] = window["normal"][:300]
    report = evaluate(profile, window)
    assert report.evaluated
    assert report.multivariate is not None and not report.multivariate.checked
    assert report.multivariate.note == "the window's columns differ in length"
    assert report.features[0].samples == 300


def test_many_unseen_categories_drift(profile):
    window = draw(np.random.default_rng(13), 1000)
    window["colour"] = np.array(["purple"] * 1000)
    report = evaluate(profile, window)
    colour = next(f for f in report.features if f.feature == "colour")
    assert colour.drifted
    assert colour.invalid.unseen == 1000


def test_per_feature_tests_and_the_binned_significance_test(profile):
    config = DriftConfig(per_feature={"normal": ("PSI",)})
    report = evaluate(profile, draw(np.random.default_rng(14), 3000, shift=1.0), config)
    normal = report.features[0]
    assert [t.test for t in normal.tests] == ["PSI"]
    assert normal.drifted and normal.test == "PSI"
    assert normal.score > 0.2


def test_test_that_does_not_fit_the_type_is_refused(profile):
    with pytest.raises(ConfigError, match="categorical"):
        evaluate(
            profile,
            draw(np.random.default_rng(1), 200),
            DriftConfig(per_feature={"colour": ("KolmogorovSmirnov",)}),
        )
    with pytest.raises(ConfigError, match="unknown test"):
        DriftConfig(numeric_tests=("KS",))
    with pytest.raises(ConfigError, match="correction"):
        DriftConfig(correction="Holm")


def test_config_from_policy_spec():
    config = DriftConfig.from_policy(
        {
            "significance": 0.01,
            "correction": "Bonferroni",
            "window": {"size": 500, "minSamples": 50},
            "tests": {
                "numeric": ["KolmogorovSmirnov"],
                "perFeature": [{"feature": "colour", "tests": ["PSI"]}],
            },
            "thresholds": {"psi": 0.3, "jensenShannon": 0.2, "wasserstein": 0.5},
            "predictionDrift": {"enabled": False},
        }
    )
    assert config.significance == 0.01
    assert config.correction.value == "Bonferroni"
    assert config.min_samples == 50
    assert config.numeric_tests == ("KolmogorovSmirnov",)
    assert config.per_feature == {"colour": ("PSI",)}
    assert config.psi_threshold == 0.3 and not config.prediction_drift
    assert DriftConfig.from_policy({}) == DriftConfig()


def test_prediction_and_confidence_drift_raise_severity():
    rng = np.random.default_rng(15)
    schema = Schema.of([("x", "numeric"), ("y", "numeric")])
    builder = ProfileBuilder(schema)
    builder.add(
        {"x": rng.normal(size=20000), "y": rng.normal(size=20000)},
        predictions=rng.choice([0, 1, 2], 20000, p=[0.6, 0.3, 0.1]),
        confidences=rng.beta(8, 2, 20000),
    )
    profile = builder.finish()
    window = {"x": rng.normal(size=2000), "y": rng.normal(size=2000)}
    clean = evaluate(
        profile,
        window,
        predictions=rng.choice([0, 1, 2], 2000, p=[0.6, 0.3, 0.1]),
        confidences=rng.beta(8, 2, 2000),
    )
    assert not clean.prediction.drifted and not clean.confidence.drifted
    assert clean.severity is Severity.NONE
    shifted = evaluate(
        profile,
        window,
        predictions=rng.choice([0, 1, 2], 2000, p=[0.2, 0.3, 0.5]),
        confidences=rng.beta(4, 4, 2000),
    )
    assert shifted.prediction.drifted and shifted.prediction.test == "JensenShannon"
    assert shifted.confidence.drifted
    assert shifted.severity is Severity.MEDIUM
    assert shifted.to_dict()["prediction"]["type"] == "prediction"


def test_report_is_json_ready(profile):
    report = evaluate(profile, draw(np.random.default_rng(16), 1000, shift=0.3))
    text = json.dumps(report.to_dict(), allow_nan=False)
    data = json.loads(text)
    assert data["severity"] in ("None", "Low", "Medium", "High")
    assert data["features"][0]["test"] == "KolmogorovSmirnov"
    assert set(data["features"][0]) >= {
        "feature",
        "test",
        "statistic",
        "pValue",
        "score",
        "drifted",
        "effectSize",
    }


def test_columns_that_are_not_columns_count_as_absent(profile):
    window = draw(np.random.default_rng(17), 500)
    window["normal"] = None
    window["skewed"] = 3.5
    window["bimodal"] = np.zeros((10, 2))
    window["colour"] = list(window["colour"])  # a plain list is fine
    report = evaluate(profile, window)
    by_name = {f.feature: f for f in report.features}
    assert all(by_name[n].invalid.absent for n in ("normal", "skewed", "bimodal"))
    assert by_name["colour"].samples == 500

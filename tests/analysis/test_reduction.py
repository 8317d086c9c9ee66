"""Reducing an instant query's data to one number, no data, or an error."""

from __future__ import annotations

import math
from typing import Any

import pytest

from driftline.analysis.reduction import reduce_result
from driftline.analysis.types import NoData, QueryError, Value

QUERY = 'sum(rate(x{version="v2"}[2m]))'


def vector(*samples: tuple[dict[str, str], str]) -> dict[str, Any]:
    return {
        "resultType": "vector",
        "result": [{"metric": labels, "value": [1700000000.5, value]} for labels, value in samples],
    }


def test_a_scalar_is_its_value() -> None:
    data = {"resultType": "scalar", "result": [1700000000.5, "0.25"]}
    assert reduce_result(data, QUERY) == Value(0.25)


def test_a_one_element_vector_is_its_value() -> None:
    assert reduce_result(vector(({"track": "canary"}, "0.0125")), QUERY) == Value(0.0125)


def test_an_empty_vector_is_no_data_never_a_value() -> None:
    outcome = reduce_result({"resultType": "vector", "result": []}, QUERY)
    assert isinstance(outcome, NoData)
    assert "empty vector" in outcome.reason and QUERY in outcome.reason


@pytest.mark.parametrize("nan", ["NaN", "nan"])
def test_nan_is_no_data(nan: str) -> None:
    outcome = reduce_result(vector(({}, nan)), QUERY)
    assert isinstance(outcome, NoData)
    assert "NaN" in outcome.reason


def test_a_nan_scalar_is_no_data() -> None:
    outcome = reduce_result({"resultType": "scalar", "result": [1, "NaN"]}, QUERY)
    assert isinstance(outcome, NoData)


@pytest.mark.parametrize(("text", "expected"), [("+Inf", math.inf), ("-Inf", -math.inf)])
def test_infinity_is_a_value(text: str, expected: float) -> None:
    assert reduce_result(vector(({}, text)), QUERY) == Value(expected)


def test_several_series_are_an_error_naming_their_labels_and_the_query() -> None:
    data = vector(
        ({"__name__": "x", "track": "canary", "pod": "a"}, "1"),
        ({"__name__": "x", "track": "canary", "pod": "b"}, "2"),
    )
    outcome = reduce_result(data, QUERY)
    assert isinstance(outcome, QueryError)
    assert "2 series" in outcome.message
    assert 'x{pod="a", track="canary"}' in outcome.message
    assert 'x{pod="b", track="canary"}' in outcome.message
    assert QUERY in outcome.message


def test_many_series_are_listed_up_to_a_few() -> None:
    data = vector(*[({"pod": str(index)}, "1") for index in range(12)])
    outcome = reduce_result(data, QUERY)
    assert isinstance(outcome, QueryError)
    assert "12 series" in outcome.message and "and 7 more" in outcome.message
    assert '{pod="4"}' in outcome.message and '{pod="5"}' not in outcome.message


def test_a_matrix_is_an_error_saying_what_came_back() -> None:
    data = {
        "resultType": "matrix",
        "result": [{"metric": {}, "values": [[1, "1"], [2, "2"]]}],
    }
    outcome = reduce_result(data, QUERY)
    assert isinstance(outcome, QueryError)
    assert "range vector (matrix) of 1 series" in outcome.message and QUERY in outcome.message


def test_a_string_is_an_error_saying_what_came_back() -> None:
    outcome = reduce_result({"resultType": "string", "result": [1, "hello"]}, QUERY)
    assert isinstance(outcome, QueryError)
    assert "string" in outcome.message and "hello" in outcome.message


def test_a_native_histogram_sample_is_an_error() -> None:
    data = {"resultType": "vector", "result": [{"metric": {}, "histogram": [1, {"count": "3"}]}]}
    outcome = reduce_result(data, QUERY)
    assert isinstance(outcome, QueryError) and "native histogram" in outcome.message


@pytest.mark.parametrize(
    "data",
    [
        None,
        "vector",
        {"resultType": "table", "result": []},
        {"resultType": "vector", "result": {"a": 1}},
        {"resultType": "vector", "result": ["x"]},
        {"resultType": "vector", "result": [{"metric": {}, "value": [1]}]},
        {"resultType": "vector", "result": [{"metric": {}, "value": [1, "high"]}]},
        {"resultType": "vector", "result": [{"metric": {}, "value": [1, True]}]},
        {"resultType": "vector", "result": [{"metric": {}, "value": [1, None]}]},
        {"resultType": "scalar", "result": "1"},
    ],
)
def test_malformed_data_is_an_error_not_an_exception(data: object) -> None:
    outcome = reduce_result(data, QUERY)
    assert isinstance(outcome, QueryError)
    assert QUERY in outcome.message


def test_a_long_result_is_shortened_in_the_message() -> None:
    outcome = reduce_result({"resultType": "string", "result": [1, "y" * 5000]}, QUERY)
    assert isinstance(outcome, QueryError)
    assert len(outcome.message) < 500

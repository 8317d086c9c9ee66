"""Every PromQL query in README.md and examples/ asks for series the server exports.

The queries are read from the documents, their selectors parsed, and each metric name
and label matcher checked against a real ``driftline-serve`` process's /metrics after
real traffic; where the ``prometheus`` binary exists, a real Prometheus scrapes that
server and runs every query."""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.analysis.prometheus_server import PROMETHEUS, PrometheusServer, start_prometheus
from tests.support import wait_until

from .conftest import ServerProcess
from .exposition import metric_value, samples

REPOSITORY = Path(__file__).resolve().parents[2]
INFER = "/v2/models/churn/infer"
# What the operator substitutes into an analysis query (ModelDeployment analysis docs).
VERSION_NAME = "churn-v2"
PLACEHOLDERS = {"{{version}}": VERSION_NAME, "{{namespace}}": "ml", "{{deployment}}": "churn"}


def _queries_in(document: Any) -> Iterator[str]:
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "query" and isinstance(value, str):
                yield value
            else:
                yield from _queries_in(value)
    elif isinstance(document, list):
        for item in document:
            yield from _queries_in(item)


def documented_queries() -> list[tuple[str, str]]:
    """(where, query) for every analysis query in README.md's YAML blocks and examples/."""
    found: list[tuple[str, str]] = []
    readme = (REPOSITORY / "README.md").read_text()
    for index, block in enumerate(re.findall(r"```yaml\n(.*?)```", readme, re.DOTALL)):
        for query in _queries_in(yaml.safe_load(block)):
            found.append((f"README.md yaml block {index}", query))
    for path in sorted((REPOSITORY / "examples").rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            for query in _queries_in(document):
                found.append((str(path.relative_to(REPOSITORY)), query))
    return found


def substitute(query: str) -> str:
    for placeholder, value in PLACEHOLDERS.items():
        query = query.replace(placeholder, value)
    return query


# --- a PromQL selector reader: enough of the grammar to find every vector selector ------

_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|=~|!~|!=|==|[a-zA-Z_:][a-zA-Z0-9_:]*'
    r"|[0-9][0-9.eE+-]*|\[[^\]]*\]|[{}(),=]|\S"
)
_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_OPERATORS = {"and", "or", "unless", "bool", "offset", "atan2"}
# aggregations may be followed by a grouping clause before their parenthesis
_AGGREGATIONS = {
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "limitk",
    "limit_ratio",
}


@dataclass(frozen=True)
class Matcher:
    label: str
    operator: str
    value: str


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[Matcher, ...]


def selectors(query: str) -> list[Selector]:
    tokens = _TOKEN.findall(query)
    found: list[Selector] = []
    position = 0
    while position < len(tokens):
        token = tokens[position]
        following = tokens[position + 1] if position + 1 < len(tokens) else ""
        if token in _GROUPING:
            position += 1
            if following == "(":  # a label list, not an expression
                while tokens[position] != ")":
                    position += 1
            position += 1
            continue
        if token in _AGGREGATIONS:
            position += 1
            continue
        if re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", token) and token not in _OPERATORS:
            if following == "(":  # a function or an aggregation
                position += 1
                continue
            matchers: list[Matcher] = []
            position += 1
            if following == "{":
                position += 1
                while tokens[position] != "}":
                    label, operator, value = tokens[position : position + 3]
                    assert operator in ("=", "!=", "=~", "!~"), f"cannot read {query!r}"
                    matchers.append(Matcher(label, operator, json.loads(value)))
                    position += 3
                    if tokens[position] == ",":
                        position += 1
                position += 1
            found.append(Selector(token, tuple(matchers)))
            continue
        position += 1
    return found


def test_the_selector_reader_reads_what_the_documents_use():
    query = (
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{version="v",outcome!="x"}[2m])))'
        " / sum without (track) (b_total) or c"
    )
    assert selectors(query) == [
        Selector("a_bucket", (Matcher("version", "=", "v"), Matcher("outcome", "!=", "x"))),
        Selector("b_total", ()),
        Selector("c", ()),
    ]


def test_the_documents_have_queries_to_check():
    where = {place for place, _ in documented_queries()}
    assert any(place.startswith("README.md") for place in where)
    assert any(place.startswith("examples/") for place in where)


def _matches(matcher: Matcher, value: str | None) -> bool:
    actual = value or ""
    if matcher.operator == "=":
        return actual == matcher.value
    if matcher.operator == "!=":
        return actual != matcher.value
    matched = re.fullmatch(matcher.value, actual) is not None
    return matched if matcher.operator == "=~" else not matched


def problems(query: str, exported: list[tuple[str, dict[str, str], float]]) -> list[str]:
    """What a query asks for that the exported series do not have."""
    found: list[str] = []
    for selector in selectors(query):
        series = [labels for name, labels, _ in exported if name == selector.metric]
        if not series:
            found.append(f"metric {selector.metric} is not exported")
            continue
        for matcher in selector.matchers:
            if not any(matcher.label in labels for labels in series):
                found.append(f"{selector.metric} has no label {matcher.label!r}")
        if not any(
            all(_matches(matcher, labels.get(matcher.label)) for matcher in selector.matchers)
            for labels in series
        ):
            found.append(f"no series of {selector.metric} matches {selector.matchers}")
    return found


@pytest.fixture(scope="module")
def churn_server(start_server, mlp_file) -> ServerProcess:
    """The server as the operator runs a canary: the ModelVersion's name and the track."""
    server = start_server(
        "churn",
        str(mlp_file.path),
        "--model-version",
        "2",
        "--track",
        "canary",
        env={"DRIFTLINE_MODEL_VERSION_NAME": VERSION_NAME},
    )
    server.wait_ready()
    return server


def send_traffic(server: ServerProcess, requests: int = 5) -> None:
    good = json.dumps(
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 32], "data": [0.5] * 32}]}
    ).encode()
    for _ in range(requests):
        assert server.post(INFER, good)[0] == 200
    assert server.post(INFER, b"{")[0] == 400


def test_request_metrics_carry_the_version_name_and_track(churn_server):
    send_traffic(churn_server)
    text = churn_server.metrics()
    identity = f'model="churn",track="canary",version="{VERSION_NAME}"'
    assert (
        metric_value(text, "driftline_inference_requests_total", identity + ',outcome="success"')
        >= 5
    )
    assert metric_value(text, "driftline_request_duration_seconds_count", identity) >= 6
    assert metric_value(text, "driftline_in_flight_requests", identity) == 0
    assert metric_value(text, "driftline_batch_size_rows_count", identity) >= 5
    assert metric_value(text, "driftline_model_info", identity + ',model_version="2"') == 1
    # every driftline series says which version and track it is from
    for name, labels, _ in samples(text):
        if name.startswith("driftline_"):
            assert (labels.get("version"), labels.get("track")) == (VERSION_NAME, "canary"), name


@pytest.mark.parametrize(
    ("where", "query"), documented_queries(), ids=[place for place, _ in documented_queries()]
)
def test_every_documented_query_selects_series_the_server_exports(churn_server, where, query):
    send_traffic(churn_server)
    assert problems(substitute(query), samples(churn_server.metrics())) == []


def test_a_query_for_a_metric_or_label_that_does_not_exist_is_caught(churn_server):
    exported = samples(churn_server.metrics())
    assert problems('sum(rate(driftline_requests_total{version="churn-v2"}[2m]))', exported) == [
        "metric driftline_requests_total is not exported"
    ]
    assert (
        problems('rate(driftline_inference_requests_total{namespace="ml"}[2m])', exported)[0]
        == "driftline_inference_requests_total has no label 'namespace'"
    )


# --- the real Prometheus ----------------------------------------------------------------


def wait_for(condition: Any, what: str | Callable[[], str], deadline_s: float = 60.0) -> None:
    try:
        wait_until(condition, deadline_s, what="condition", interval_s=0.2, ignore=(OSError,))
    except AssertionError as timed_out:
        # `what` may describe the state at the deadline (the last answer), so ask it now.
        raise AssertionError(
            f"timed out waiting for {what if isinstance(what, str) else what()}"
        ) from timed_out


@pytest.fixture(scope="module")
def prometheus(churn_server, tmp_path_factory) -> Iterator[PrometheusServer]:
    if PROMETHEUS is None:
        pytest.skip(
            "the prometheus binary is not installed (Debian: apt-get install -y prometheus); "
            "the queries were checked against /metrics only"
        )
    running = start_prometheus(tmp_path_factory.mktemp("prometheus"), [churn_server.url])
    try:
        running.wait_scraping(targets=1)
        yield running
    finally:
        running.stop()


def returns_numbers(prometheus: PrometheusServer, promql: str, last: list[Any]) -> bool:
    result = prometheus.query(promql)["result"]
    last.append(result)
    return bool(result) and all(math.isfinite(float(series["value"][1])) for series in result)


def test_every_documented_query_returns_data_from_a_real_prometheus(churn_server, prometheus):
    stop = threading.Event()

    def keep_sending() -> None:
        while not stop.is_set():
            send_traffic(churn_server, requests=2)
            stop.wait(0.1)  # paces the load; nothing waits on it

    sender = threading.Thread(target=keep_sending)
    sender.start()
    try:
        for where, query in documented_queries():
            promql = substitute(query)
            last: list[Any] = []
            wait_for(
                lambda promql=promql, last=last: returns_numbers(prometheus, promql, last),
                lambda where=where, promql=promql, last=last: (
                    f"{where}: {promql} to return data (last answer: {last[-1:]})"
                ),
            )
    finally:
        stop.set()
        sender.join(timeout=30)

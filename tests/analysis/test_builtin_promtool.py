"""histogram_quantile as Prometheus itself computes it: random histograms are evaluated by
the real Prometheus engine (``promtool test rules``, which runs PromQL on given series)
and compared with ours. promtool prints the value it got when the expected one differs,
so each test expects an impossible value and reads Prometheus' answer back."""

from __future__ import annotations

import math
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from driftline.analysis.builtin import histogram_quantile
from driftline_serving.server.metrics import LATENCY_BUCKETS_S

PROMTOOL = shutil.which("promtool")
IMPOSSIBLE = -12345.0
GOT = re.compile(r'expr: "histogram_quantile\(([^,]+), h(\d+)_bucket\)".*?got: \{\} (\S+)', re.S)


def random_histograms(count: int, seed: int) -> list[tuple[float, dict[float, int]]]:
    rng = random.Random(seed)
    cases: list[tuple[float, dict[float, int]]] = []
    for _ in range(count):
        bounds = sorted(rng.sample([*LATENCY_BUCKETS_S], rng.randint(1, len(LATENCY_BUCKETS_S))))
        cumulative = 0
        buckets: dict[float, int] = {}
        for bound in [*bounds, math.inf]:
            cumulative += rng.choice([0, 0, 1, 3, 10, 100])
            # now and then a bucket lower than the one before, which both make monotonic
            buckets[bound] = max(0, cumulative - rng.choice([0, 0, 0, 0, 5]))
        buckets[math.inf] = max(buckets[math.inf], cumulative)
        q = rng.choice([0.0, 0.5, 0.9, 0.99, 1.0, rng.random()])
        cases.append((q, buckets))
    return cases


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian package prometheus) is missing")
def test_histogram_quantile_agrees_with_prometheus(tmp_path: Path) -> None:
    cases = random_histograms(60, seed=20260301)
    tests = []
    for index, (q, buckets) in enumerate(cases):
        tests.append(
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": f'h{index}_bucket{{le="{"+Inf" if math.isinf(b) else repr(b)}"}}',
                        "values": str(count),
                    }
                    for b, count in buckets.items()
                ],
                "promql_expr_test": [
                    {
                        "expr": f"histogram_quantile({q!r}, h{index}_bucket)",
                        "eval_time": "0m",
                        "exp_samples": [{"labels": "{}", "value": IMPOSSIBLE}],
                    }
                ],
            }
        )
    spec = tmp_path / "quantiles.yml"
    spec.write_text(yaml.safe_dump({"tests": tests}))
    assert PROMTOOL is not None
    ran = subprocess.run(
        [PROMTOOL, "test", "rules", str(spec)], capture_output=True, text=True, timeout=120
    )
    answers = {int(index): float(value) for _, index, value in GOT.findall(ran.stdout + ran.stderr)}
    assert len(answers) == len(cases), ran.stdout + ran.stderr
    for index, (q, buckets) in enumerate(cases):
        ours = histogram_quantile(q, buckets)
        theirs = answers[index]
        assert (math.isnan(ours) and math.isnan(theirs)) or ours == pytest.approx(
            theirs, rel=1e-12, abs=1e-15
        ), (q, buckets, ours, theirs)

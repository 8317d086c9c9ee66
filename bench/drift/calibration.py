"""Calibration on the benchmark's features: false alarms over sets of 1000 clean
windows, power by shift size, and the multivariate check on a correlation change. Run
with the project's .venv python: calibration.py PROFILE [--sets N]; prints one JSON
object."""

from __future__ import annotations

import argparse
import json
import sys

import data as bench_data
import numpy as np
from scipy import stats

from driftline_serving.drift import DriftConfig, evaluate, load_profile

CLEAN_WINDOWS = 1000
# Independent sets of 1000 clean windows. An exact level-5% procedure reads above 5% on
# about 4 sets in 10 (the standard error of one set's rate is 0.7 points), so the rate
# is judged on all sets together, where that error is 0.2 points.
SETS = 10
POWER_WINDOWS = 200
ROWS = 1000


def wilson(rate: float, trials: int) -> list[float]:
    """95% Wilson interval of a measured rate."""
    z = 1.96
    centre = (rate + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (
        z
        * np.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials))
        / (1 + z * z / trials)
    )
    return [float(centre - half), float(centre + half)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile")
    parser.add_argument("--sets", type=int, default=SETS, help="sets of 1000 clean windows")
    args = parser.parse_args()
    profile = load_profile(args.profile)
    seeds = list(range(7, 7 + args.sets))
    result: dict = {"rows": ROWS, "features": len(bench_data.FEATURES), "seeds": seeds}
    for correction in ("BenjaminiHochberg", "Bonferroni"):
        result[correction] = {"per_seed": []}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        clean = [bench_data.draw(rng, ROWS) for _ in range(CLEAN_WINDOWS)]
        for correction in ("BenjaminiHochberg", "Bonferroni"):
            config = DriftConfig(correction=correction)
            reports = [evaluate(profile, w, config) for w in clean]
            result[correction]["per_seed"].append(
                {
                    "family_wise_false_alarm_rate": float(
                        np.mean([r.dataset_drifted for r in reports])
                    ),
                    "per_feature_false_positive_rate": float(
                        np.mean([r.drifted_features / len(r.features) for r in reports])
                    ),
                    "multivariate_flag_rate": float(
                        np.mean([bool(r.multivariate and r.multivariate.drifted) for r in reports])
                    ),
                }
            )
    for correction in ("BenjaminiHochberg", "Bonferroni"):
        per_seed = result[correction]["per_seed"]
        for key in (
            "family_wise_false_alarm_rate",
            "per_feature_false_positive_rate",
            "multivariate_flag_rate",
        ):
            result[correction][key] = float(np.mean([s[key] for s in per_seed]))
        windows = CLEAN_WINDOWS * len(seeds)
        rate = result[correction]["family_wise_false_alarm_rate"]
        result[correction]["wilson_95"] = wilson(rate, windows)
        result[correction]["sets_above_significance"] = sum(
            s["family_wise_false_alarm_rate"] > DriftConfig().significance for s in per_seed
        )
        # one-sided: how surprising this many alarms would be if the true rate were 5%
        result[correction]["binomial_p_rate_above_significance"] = float(
            stats.binomtest(
                round(rate * windows), windows, DriftConfig().significance, alternative="greater"
            ).pvalue
        )
    rng = np.random.default_rng(11)
    power = {}
    for scenario in ("shift_0.1", "shift_0.25", "shift_0.5", "variance", "categories"):
        hits = []
        for _ in range(POWER_WINDOWS):
            report = evaluate(profile, bench_data.draw(rng, ROWS, scenario))
            hits += [
                f.drifted for f in report.features if f.feature in bench_data.drifting(scenario)
            ]
        power[scenario] = float(np.mean(hits))
    result["power_per_drifting_feature"] = power
    caught = [
        evaluate(profile, bench_data.correlated(rng, ROWS, 0.5)).multivariate.drifted
        for _ in range(POWER_WINDOWS)
    ]
    result["multivariate_power_rho_0.5"] = float(np.mean(caught))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()

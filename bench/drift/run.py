"""The drift benchmark, one command: `.venv/bin/python bench/drift/run.py`.

It creates the peers' environments under .bench-venvs/ (first run only), writes the
seeded data set under bench/results/drift/, evaluates the same window files with this
engine, Alibi Detect's TabularDrift and Evidently's DataDriftPreset (each in its own
process, timing only the evaluation), runs the calibration and the 1M x 100 profile
build, and writes bench/drift/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

import data as bench_data  # noqa: E402
import venvs  # noqa: E402

OUR_PYTHON = Path(sys.executable)


def run_json(command: list[str], label: str) -> dict[str, Any]:
    print(f"[bench] {label}", flush=True)
    completed = subprocess.run(command, capture_output=True, text=True, cwd=HERE, check=False)
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr[-4000:])
        raise SystemExit(f"{label} failed with status {completed.returncode}")
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def prepare(work: Path, windows: int, reference_rows: int, window_rows: int) -> list[str]:
    marker = work / "dataset.json"
    wanted = {"windows": windows, "reference_rows": reference_rows, "window_rows": window_rows}
    if not marker.exists() or json.loads(marker.read_text()) != wanted:
        print(f"[bench] writing the data set to {work}", flush=True)
        for old in work.glob("*.npz"):
            old.unlink()
        bench_data.write_data_set(work, reference_rows, window_rows, windows)
        marker.write_text(json.dumps(wanted))
    return [str(p) for p in bench_data.window_files(work)]


def build_profile(work: Path) -> dict[str, Any]:
    schema = work / "schema.json"
    schema.write_text(json.dumps(bench_data.schema()))
    start = time.perf_counter()
    completed = subprocess.run(
        [
            str(OUR_PYTHON.parent / "driftline"),
            "profile",
            str(work / "reference.npz"),
            "--schema",
            str(schema),
            "-o",
            str(work / "profile.npz"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - start
    from driftline_serving.drift import load_profile

    numeric = load_profile(work / "profile.npz").numeric.values()
    return {
        "seconds": seconds,
        "sha256": completed.stdout.strip(),
        "mb": (work / "profile.npz").stat().st_size / 1e6,
        "points": max(n.sample.values.size for n in numeric),
        "ecdf_error": max(n.sample.ecdf_error for n in numeric),
    }


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    times = [w["seconds"] for w in result["windows"]]
    by_scenario: dict[str, dict[str, list[bool]]] = {}
    false_positive: list[bool] = []
    for window in result["windows"]:
        scenario = Path(window["file"]).stem.rsplit("_", 1)[0]
        truth = bench_data.drifting(scenario)
        entry = by_scenario.setdefault(scenario, {"tp": [], "dataset": []})
        entry["dataset"].append(window["dataset"])
        for feature, flagged in window["flags"].items():
            if feature in truth:
                entry["tp"].append(flagged)
            else:
                false_positive.append(flagged)
    return {
        "tool": result["tool"],
        "median_s": statistics.median(times),
        "p90_s": sorted(times)[int(0.9 * (len(times) - 1))],
        "peak_mb": result["peak_mb"],
        "rss_before_mb": result["rss_before_mb"],
        "fpr": sum(false_positive) / len(false_positive),
        "tpr": {
            s: (sum(e["tp"]) / len(e["tp"]) if e["tp"] else None) for s, e in by_scenario.items()
        },
        "dataset_rate": {s: sum(e["dataset"]) / len(e["dataset"]) for s, e in by_scenario.items()},
    }


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    load = os.getloadavg()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load": f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
    }


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def render(
    info: dict[str, str],
    versions: dict[str, str],
    summaries: list[dict[str, Any]],
    ours_runs: list[dict[str, Any]],
    profile: dict[str, Any],
    calibration: dict[str, Any] | None,
    big: dict[str, Any] | None,
    settings: dict[str, int],
) -> str:
    ours = max(ours_runs, key=lambda s: s["median_s"])  # the slower of two runs: conservative
    lines = [
        "# Drift engine benchmark",
        "",
        "Produced by `.venv/bin/python bench/drift/run.py` (numbers below are from its last run).",
        "",
        f"- Machine: {info['nproc']} CPUs, {info['cpu']}, Python {info['python']}; {info['date']}.",
        f"- Load average at the end of the run: {info['load']}. Other work shared the machine's"
        " cores during the run, so absolute times carry noise; each ratio below compares"
        " tools measured in the same run on identical window files.",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        f"- Data: {len(bench_data.NUMERIC)} numeric features of {len(bench_data.SHAPES)} shapes"
        f" and {len(bench_data.CATEGORICAL)} categorical ones (3 to 21 categories);"
        f" reference {settings['reference_rows']:,} rows, windows {settings['window_rows']:,} rows,"
        f" {settings['windows']} windows per scenario (seeded, `bench/drift/data.py`).",
        "- Each tool runs in its own process and environment, reads the same NPZ files and"
        " is timed on the evaluation only (after one warm-up window); our engine is"
        " given a profile built beforehand, the peers their reference data in memory."
        " Peak memory is the process's peak RSS during the evaluations (VmHWM reset after"
        " loading); `RSS before` is what the process held before the first timed window.",
        "",
        "## Time and memory per window",
        "",
        "| tool | median time / window | p90 | peak RSS | RSS before | median vs ours |",
        "|---|---|---|---|---|---|",
    ]
    for s in [ours, *summaries]:
        ratio = s["median_s"] / ours["median_s"]
        lines.append(
            f"| {s['tool']} | {1000 * s['median_s']:.1f} ms | {1000 * s['p90_s']:.1f} ms |"
            f" {s['peak_mb']:.0f} MB | {s['rss_before_mb']:.0f} MB | {ratio:.1f}x |"
        )
    if len(ours_runs) > 1:
        lines.append("")
        lines.append(
            "Our engine ran twice (before and after the peers): medians "
            + " and ".join(f"{1000 * r['median_s']:.1f} ms" for r in ours_runs)
            + "; the table shows the slower run."
        )
    scenarios = list(bench_data.SCENARIOS)
    lines += [
        "",
        "## Detection per feature",
        "",
        "True-positive rate: share of (window, drifting feature) pairs flagged, by scenario."
        " False-positive rate: share of (window, non-drifting feature) pairs flagged, over all"
        " scenarios.",
        "",
        "| tool | FPR | " + " | ".join(s for s in scenarios if s != "none") + " |",
        "|---|---|" + "---|" * (len(scenarios) - 1),
    ]
    for s in [ours, *summaries]:
        lines.append(
            f"| {s['tool']} | {pct(s['fpr'])} | "
            + " | ".join(pct(s["tpr"].get(sc)) for sc in scenarios if sc != "none")
            + " |"
        )
    lines += [
        "",
        "## Dataset verdict",
        "",
        "Share of windows the tool's dataset-level verdict called drifted (for `none` that is"
        " the false-alarm rate). Evidently's rule needs half the columns drifted; 3 to 5 of 50"
        " drift here.",
        "",
        "| tool | " + " | ".join(scenarios) + " |",
        "|---|" + "---|" * len(scenarios),
    ]
    for s in [ours, *summaries]:
        lines.append(
            f"| {s['tool']} | "
            + " | ".join(pct(s["dataset_rate"].get(sc)) for sc in scenarios)
            + " |"
        )
    lines += [
        "",
        "## Profile",
        "",
        f"- Benchmark reference ({settings['reference_rows']:,} rows x 50 features, NPZ):"
        f" built in {profile['seconds']:.1f} s (whole `driftline profile` process), file"
        f" {profile['mb']:.1f} MB, `{profile['sha256'][:23]}...`. 100,000 values per feature"
        " exceed the default exact cap (65,536), so each numeric feature is held as a summary"
        f" of {profile.get('points', '?')} weighted points whose recorded CDF error bound is"
        f" {profile.get('ecdf_error', float('nan')):.1e} (the KS statistic is within that of"
        " the exact one); `--exact-cap 100000` keeps it exact.",
    ]
    if big:
        lines.append(
            f"- {big['rows']:,} rows x {big['features']} features (90 numeric, 10 categorical,"
            f" Parquet): built in {big['seconds']:.1f} s with a peak RSS of {big['peak_mb']:.0f} MB"
            f" (whole process, including interpreter and imports); profile file"
            f" {big['profile_mb']:.1f} MB. Targets: under 30 s and under 1 GB."
        )
    if calibration:
        bh = calibration["BenjaminiHochberg"]
        bonf = calibration["Bonferroni"]
        power = calibration["power_per_drifting_feature"]
        windows = 1000 * len(calibration["seeds"])

        def per_seed(entry: dict[str, Any]) -> str:
            return ", ".join(pct(s["family_wise_false_alarm_rate"]) for s in entry["per_seed"])

        def interval(entry: dict[str, Any]) -> str:
            low, high = entry["wilson_95"]
            return f"{pct(low)} to {pct(high)}"

        lines += [
            "",
            "## Calibration (`bench/drift/calibration.py`)",
            "",
            f"Windows of {calibration['rows']:,} rows of the same 50 features, defaults (significance"
            f" 0.05, effect-size floor 0.025, multivariate check on); {windows} clean windows in"
            f" {len(calibration['seeds'])} independent sets of 1000.",
            "",
            "| measure | Benjamini-Hochberg (default) | Bonferroni |",
            "|---|---|---|",
            f"| family-wise false-alarm rate, all {windows} clean windows"
            f" | {pct(bh['family_wise_false_alarm_rate'])} | {pct(bonf['family_wise_false_alarm_rate'])} |",
            f"| 95% interval of that rate | {interval(bh)} | {interval(bonf)} |",
            f"| per set of 1000 windows | {per_seed(bh)} | {per_seed(bonf)} |",
            f"| sets of 1000 reading above 5% | {bh['sets_above_significance']} of"
            f" {len(calibration['seeds'])} | {bonf['sets_above_significance']} of"
            f" {len(calibration['seeds'])} |",
            "| one-sided binomial test of a true rate above 5%, p"
            f" | {bh['binomial_p_rate_above_significance']:.3f}"
            f" | {bonf['binomial_p_rate_above_significance']:.3f} |",
            f"| per-feature false-positive rate | {bh['per_feature_false_positive_rate']:.4%}"
            f" | {bonf['per_feature_false_positive_rate']:.4%} |",
            f"| multivariate check, clean windows flagged | {pct(bh['multivariate_flag_rate'])}"
            f" | {pct(bonf['multivariate_flag_rate'])} |",
            "",
            "One set's rate has a standard error of about 0.7 points, so a procedure whose"
            " family-wise level is exactly 5% reads above 5% on about 4 sets in 10; the rate"
            " over all sets, its interval and the binomial test are the measure (docs/drift.md,"
            " false alarms).",
            "",
            f"Power per drifting feature ({calibration['rows']:,}-row windows, 200 windows each):",
            "",
            "| scenario | power |",
            "|---|---|",
        ]
        lines += [f"| {k} | {pct(v)} |" for k, v in power.items()]
        lines += [
            "",
            "Multivariate check, correlation of normal_1 and normal_2 changed from 0 to 0.5"
            f" (marginals unchanged): caught in {pct(calibration['multivariate_power_rho_0.5'])}"
            " of windows.",
        ]
    lines += [
        "",
        "## Notes",
        "",
        "- Evidently 0.7.23's `DataDriftPreset` builds plotly widgets inside `Report.run`; a"
        " profile of one window put about half of its time in plotly. Asking for the"
        " `ValueDrift` metrics alone still took about 7 s per window here, so the 1.5 s quoted"
        " in the issue was not reproduced on this machine.",
        "- Alibi Detect's per-feature flag is its p-value under the Bonferroni threshold of"
        " its batch verdict (`drift_type='feature'` would compare every feature with the"
        " uncorrected 0.05 and flag about 5% of clean features).",
        "- Our engine's time includes everything `evaluate` does: KS, PSI, Jensen-Shannon and"
        " Wasserstein on 40 numeric features, chi-square, PSI and Jensen-Shannon on 10"
        " categorical ones, the correction, and the multivariate check.",
        "- NannyML is compared separately, on the correlation change it alone among the peers "
        "claims to catch: `bench/drift/peer_nannyml.py` (its own venv) and "
        "`bench/drift/ours_correlation.py` on the same seeded chunks; results in "
        "docs/benchmarks.md.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--windows", type=int, default=10, help="windows per scenario")
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--window-rows", type=int, default=10_000)
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "results" / "drift")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--skip-big", action="store_true", help="skip the 1M x 100 profile build")
    parser.add_argument("--skip-calibration", action="store_true")
    parser.add_argument(
        "--render-only", action="store_true", help="rewrite RESULTS.md from the last results.json"
    )
    args = parser.parse_args()
    if args.render_only:
        saved = json.loads((args.work / "results.json").read_text())
        text = render(
            saved["machine"],
            saved["versions"],
            saved["peers"],
            saved["ours"],
            saved["profile"],
            saved["calibration"],
            saved["big"],
            saved["settings"],
        )
        args.output.write_text(text)
        print(text)
        return
    settings = {
        "windows": args.windows,
        "reference_rows": args.reference_rows,
        "window_rows": args.window_rows,
    }

    peers = [] if args.skip_peers else ["drift-alibi", "drift-evidently"]
    pythons = {peer: venvs.ensure_venv(peer) for peer in peers}
    files = prepare(args.work, args.windows, args.reference_rows, args.window_rows)
    profile = build_profile(args.work)
    work = str(args.work)
    ours_cmd = [str(OUR_PYTHON), "ours.py", work, str(args.work / "profile.npz"), *files]
    ours_runs = [summarise(run_json(ours_cmd, "driftline (first run)"))]
    summaries = []
    scripts = {"drift-alibi": "peer_alibi.py", "drift-evidently": "peer_evidently.py"}
    for peer in peers:
        summaries.append(
            summarise(run_json([str(pythons[peer]), scripts[peer], work, *files], peer))
        )
    if peers:
        ours_runs.append(summarise(run_json(ours_cmd, "driftline (second run)")))
    calibration = None
    if not args.skip_calibration:
        calibration = run_json(
            [str(OUR_PYTHON), "calibration.py", str(args.work / "profile.npz")], "calibration"
        )
    big = None
    if not args.skip_big:
        big = run_json([str(OUR_PYTHON), "build_big.py", work], "profile of 1M x 100")
    versions = {"driftline": "0.1.0"}
    for peer in peers:
        versions[venvs.PEER_DISTRIBUTION[peer]] = venvs.installed_version(
            peer, venvs.PEER_DISTRIBUTION[peer]
        )
    for peer in peers:
        versions[f"pandas ({peer})"] = venvs.installed_version(peer, "pandas")
    info = machine()
    text = render(info, versions, summaries, ours_runs, profile, calibration, big, settings)
    args.output.write_text(text)
    (args.work / "results.json").write_text(
        json.dumps(
            {
                "machine": info,
                "versions": versions,
                "settings": settings,
                "ours": ours_runs,
                "peers": summaries,
                "profile": profile,
                "calibration": calibration,
                "big": big,
            },
            indent=2,
        )
    )
    print(text)


if __name__ == "__main__":
    main()

"""`driftline profile` and `driftline drift evaluate` on real files."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from driftline.cli import main

from .conftest import SCHEMA, draw


def write(path, data: dict, file_format: str) -> None:
    if file_format == "npz":
        np.savez(path, **data)
        return
    table = pa.table({name: pa.array(values) for name, values in data.items()})
    if file_format == "csv":
        pcsv.write_csv(table, path)
    else:
        pq.write_table(table, path)


@pytest.fixture()
def schema_file(tmp_path):
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(SCHEMA.to_list()))
    return path


@pytest.mark.parametrize("file_format", ["csv", "parquet", "npz"])
def test_profile_then_evaluate(tmp_path, schema_file, file_format):
    rng = np.random.default_rng(42)
    data_path = tmp_path / f"train.{file_format}"
    write(data_path, draw(rng, 5000), file_format)
    profile_path = tmp_path / "ref.npz"
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "profile",
            str(data_path),
            "--schema",
            str(schema_file),
            "-o",
            str(profile_path),
            "--chunk-rows",
            "1000",
        ],
    )
    assert result.exit_code == 0, result.output
    digest = hashlib.sha256(profile_path.read_bytes()).hexdigest()
    assert result.stdout.strip() == digest  # bare hex, as spec.reference.sha256 takes it

    window_path = tmp_path / f"window.{file_format}"
    write(window_path, draw(rng, 800, shift=1.0), file_format)
    table = runner.invoke(
        main, ["drift", "evaluate", "--profile", str(profile_path), str(window_path)]
    )
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["feature", "type", "test"]
    normal_row = next(line for line in lines if line.startswith("normal "))
    assert "DRIFT" in normal_row
    assert "dataset: DRIFTED" in table.stdout

    as_json = runner.invoke(
        main, ["drift", "evaluate", "--profile", str(profile_path), str(window_path), "--json"]
    )
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.stdout)
    assert report["drifted"] is True
    assert report["severity"] in ("Low", "Medium", "High")
    features = {f["feature"]: f for f in report["features"]}
    assert features["normal"]["drifted"] and features["normal"]["test"] == "KolmogorovSmirnov"
    assert not features["discrete"]["drifted"]


def test_same_profile_from_every_format(tmp_path, schema_file):
    data = draw(np.random.default_rng(5), 3000)
    digests = set()
    for file_format in ("csv", "parquet", "npz"):
        path = tmp_path / f"d.{file_format}"
        write(path, data, file_format)
        out = tmp_path / f"{file_format}.npz"
        result = CliRunner().invoke(
            main, ["profile", str(path), "--schema", str(schema_file), "-o", str(out), "--quiet"]
        )
        assert result.exit_code == 0, result.output
        digests.add(result.stdout.strip())
    assert len(digests) == 1  # CSV's text round trip of float64 is exact


def test_fail_on_drift_exit_status(tmp_path, schema_file):
    rng = np.random.default_rng(6)
    write(tmp_path / "t.npz", draw(rng, 3000), "npz")
    write(tmp_path / "w.npz", draw(rng, 500, shift=2.0), "npz")
    runner = CliRunner()
    runner.invoke(
        main,
        [
            "profile",
            str(tmp_path / "t.npz"),
            "--schema",
            str(schema_file),
            "-o",
            str(tmp_path / "p.npz"),
        ],
    )
    result = runner.invoke(
        main,
        [
            "drift",
            "evaluate",
            "--profile",
            str(tmp_path / "p.npz"),
            str(tmp_path / "w.npz"),
            "--fail-on-drift",
        ],
    )
    assert result.exit_code == 3


def test_invalid_window_values_are_reported_not_fatal(tmp_path, schema_file):
    rng = np.random.default_rng(7)
    write(tmp_path / "t.csv", draw(rng, 3000), "csv")
    runner = CliRunner()
    runner.invoke(
        main,
        [
            "profile",
            str(tmp_path / "t.csv"),
            "--schema",
            str(schema_file),
            "-o",
            str(tmp_path / "p.npz"),
        ],
    )
    window = draw(rng, 300)
    lines = ["normal,skewed,bimodal,discrete,colour,size"]
    for i in range(300):
        normal = "oops" if i < 5 else ("nan" if i < 9 else str(float(window["normal"][i])))
        lines.append(
            f"{normal},{window['skewed'][i]},{window['bimodal'][i]},{window['discrete'][i]},{window['colour'][i] if i > 3 else ''},{window['size'][i]}"
        )
    (tmp_path / "w.csv").write_text("\n".join(lines) + "\n")
    result = runner.invoke(
        main,
        [
            "drift",
            "evaluate",
            "--profile",
            str(tmp_path / "p.npz"),
            str(tmp_path / "w.csv"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    features = {f["feature"]: f for f in json.loads(result.stdout)["features"]}
    assert features["normal"]["invalid"]["unparseable"] == 5
    assert features["normal"]["invalid"]["nan"] == 4
    assert features["colour"]["invalid"]["nan"] == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["profile", "{data}", "--schema", "{bad_schema}", "-o", "{out}"],
            "expected 'numeric' or 'categorical'",
        ),
        (["profile", "{missing}", "--schema", "{schema}", "-o", "{out}"], "no such file"),
        (["profile", "{data_txt}", "--schema", "{schema}", "-o", "{out}"], "no column named"),
        (["profile", "{data_xyz}", "--schema", "{schema}", "-o", "{out}"], "unknown data format"),
        (["drift", "evaluate", "--profile", "{schema}", "{data}"], "not a driftline profile"),
    ],
)
def test_errors_are_clear_and_change_nothing(tmp_path, schema_file, args, message):
    (tmp_path / "bad.json").write_text('[{"name": "x", "type": "text"}]')
    write(tmp_path / "d.npz", draw(np.random.default_rng(1), 200), "npz")
    (tmp_path / "d.txt").write_text("a,b\n1,2\n")
    (tmp_path / "d.xyz").write_text("")
    paths = {
        "data": tmp_path / "d.npz",
        "bad_schema": tmp_path / "bad.json",
        "schema": schema_file,
        "out": tmp_path / "out.npz",
        "missing": tmp_path / "missing.csv",
        "data_txt": tmp_path / "d.txt",
        "data_xyz": tmp_path / "d.xyz",
    }
    result = CliRunner().invoke(main, [a.format(**paths) for a in args])
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "out.npz").exists()


def test_csv_types_come_from_the_schema_not_the_first_block(tmp_path):
    schema = tmp_path / "s.json"
    schema.write_text('[{"name": "x", "type": "numeric"}, {"name": "c", "type": "categorical"}]')
    rows = ["x,c"] + [f"{i},{i % 3}" for i in range(3000)] + [f"{i}.5,k{i}" for i in range(3000)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    result = CliRunner().invoke(
        main,
        [
            "profile",
            str(tmp_path / "d.csv"),
            "--schema",
            str(schema),
            "-o",
            str(tmp_path / "p.npz"),
            "--chunk-rows",
            "500",
        ],
    )
    assert result.exit_code == 0, result.output
    from driftline_serving.drift import load_profile

    profile = load_profile(tmp_path / "p.npz")
    assert profile.numeric["x"].sample.count == 6000
    assert "0" in profile.categorical["c"].index and "k1" in profile.categorical["c"].index


WIDE = [f"f{i:02d}" for i in range(40)]


@pytest.fixture(scope="module")
def wide_profile(tmp_path_factory):
    """A profile of 40 numeric features: a 10,000-row window of them is an 8 MB CSV, more
    than one block (4 MB) of the streaming CSV reader, as a real window easily is."""
    from driftline_serving.drift.profile import build_profile, save_profile
    from driftline_serving.drift.schema import Schema

    rng = np.random.default_rng(11)
    schema = Schema.of([(name, "numeric") for name in WIDE])
    path = tmp_path_factory.mktemp("wide") / "profile.npz"
    save_profile(build_profile(schema, [{n: rng.normal(size=5000) for n in WIDE}]), path)
    return path


def write_wide_window(
    path,
    replace: dict[tuple[int, str], str],
    drop: str | None = None,
    rows: int = 10_000,
    shift: float = 0.0,
) -> None:
    """`replace` puts a text at (1-based data row, column); `drop` leaves a column out."""
    rng = np.random.default_rng(12)
    names = [n for n in WIDE if n != drop]
    values = {n: rng.normal(shift, size=rows) for n in names}
    lines = [",".join(names)]
    for row in range(rows):
        cells = [replace.get((row + 1, n), repr(float(values[n][row]))) for n in names]
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")


def evaluate_json(*args):
    result = CliRunner().invoke(main, ["drift", "evaluate", *map(str, args), "--json"])
    return result, (json.loads(result.stdout) if result.exit_code in (0, 3, 4) else None)


@pytest.mark.parametrize("row", [10, 9_000])
def test_a_non_number_anywhere_in_a_window_is_counted_not_fatal(tmp_path, wide_profile, row):
    # Before: at row 10 it was counted; at row 9,000, past the reader's first block whose
    # values had fixed the column as numbers, the run stopped with exit status 1.
    window = tmp_path / "window.csv"
    write_wide_window(window, {(row, "f07"): "abc", (row + 1, "f08"): "NA"})
    assert window.stat().st_size > 4 << 20
    result, report = evaluate_json("--profile", wide_profile, window)
    assert result.exit_code == 0, result.output
    features = {f["feature"]: f for f in report["features"]}
    assert features["f07"]["invalid"] == {
        "nan": 0,
        "infinite": 0,
        "unparseable": 1,
        "unseen": 0,
        "absent": False,
    }
    assert features["f07"]["samples"] == 9_999
    assert features["f08"]["invalid"]["nan"] == 1  # a missing-value spelling, not text
    assert report["invalidValues"] == 2
    assert report["samples"] == 10_000


def test_a_row_of_the_wrong_width_is_skipped_and_counted(tmp_path, wide_profile):
    window = tmp_path / "window.csv"
    write_wide_window(window, {(9_000, "f39"): "1.0,2.0"})  # one cell too many
    result, report = evaluate_json("--profile", wide_profile, window)
    assert result.exit_code == 0, result.output
    assert report["invalidRows"] == 1
    assert report["samples"] == 9_999


def test_what_could_not_be_checked_is_reported_with_the_reason(tmp_path, wide_profile):
    # Before: the multivariate check vanished (no line, null in JSON), the summary said
    # "0 of 40 features", and no option made an incomplete evaluation fail.
    window = tmp_path / "window.csv"
    all_text = {(row, "f06"): "abc" for row in range(1, 1001)}
    write_wide_window(window, all_text, drop="f05", rows=1000)
    result, report = evaluate_json("--profile", wide_profile, window)
    assert result.exit_code == 0, result.output
    features = {f["feature"]: f for f in report["features"]}
    assert features["f05"]["checked"] is False
    assert features["f05"]["note"] == "no column in the window"
    assert features["f06"]["checked"] is False
    assert features["f06"]["note"] == "0 valid values; 100 needed"
    assert features["f06"]["invalid"]["unparseable"] == 1000
    assert features["f07"]["checked"] is True
    assert report["checkedFeatures"] == 38 and report["totalFeatures"] == 40
    assert report["complete"] is False
    multivariate = report["multivariate"]
    assert multivariate["checked"] is False
    assert multivariate["note"] == "no column in the window for f05"
    assert report["notChecked"] == [
        {"name": "f05", "reason": "no column in the window"},
        {"name": "f06", "reason": "0 valid values; 100 needed"},
        {"name": "multivariate", "reason": "no column in the window for f05"},
    ]

    table = CliRunner().invoke(
        main, ["drift", "evaluate", "--profile", str(wide_profile), str(window)]
    )
    assert table.exit_code == 0, table.output
    rows = {line.split()[0]: line for line in table.stdout.splitlines() if line.startswith("f0")}
    assert "not checked" in rows["f05"] and "no column in the window" in rows["f05"]
    assert "not checked" in rows["f06"] and "0 valid values; 100 needed" in rows["f06"]
    assert (
        "38 of 40 features checked, 2 not checked: f05 (no column in the window), "
        "f06 (0 valid values; 100 needed)"
    ) in table.stdout
    assert "multivariate: not checked: no column in the window for f05" in table.stdout
    assert "0 of 38 checked features drifted" in table.stdout


@pytest.mark.parametrize(
    ("flags", "shift", "status"),
    [
        ([], 0.0, 0),
        (["--fail-on-drift"], 0.0, 0),  # nothing that was checked drifted
        (["--fail-on-unchecked"], 0.0, 4),
        (["--fail-on-drift", "--fail-on-unchecked"], 0.0, 4),
        (["--fail-on-drift", "--fail-on-unchecked"], 1.0, 3),  # drift takes precedence
        (["--fail-on-unchecked"], 1.0, 4),
    ],
)
def test_the_user_chooses_whether_unchecked_fails(tmp_path, wide_profile, flags, shift, status):
    window = tmp_path / "window.csv"
    write_wide_window(window, {}, drop="f05", rows=500, shift=shift)
    result = CliRunner().invoke(
        main, ["drift", "evaluate", "--profile", str(wide_profile), str(window), *flags]
    )
    assert result.exit_code == status, result.output


def test_a_complete_evaluation_passes_fail_on_unchecked(tmp_path, wide_profile):
    window = tmp_path / "window.csv"
    write_wide_window(window, {}, rows=500)
    result, report = evaluate_json("--profile", wide_profile, window, "--fail-on-unchecked")
    assert result.exit_code == 0, result.output
    assert report["complete"] is True and report["notChecked"] == []
    assert report["multivariate"]["checked"] is True
    assert report["checkedFeatures"] == 40


def test_a_named_output_column_that_is_not_there_is_an_error(tmp_path, wide_profile):
    window = tmp_path / "window.csv"
    write_wide_window(window, {}, rows=200)
    result = CliRunner().invoke(
        main,
        [
            "drift",
            "evaluate",
            "--profile",
            str(wide_profile),
            str(window),
            "--prediction-column",
            "p",
        ],
    )
    assert result.exit_code == 1
    assert "--prediction-column p: the profile" in result.output
    assert "Traceback" not in result.output


def test_a_csv_given_as_profile_is_named_for_what_it_is(tmp_path):
    # Before: numpy's "Cannot load file containing pickled data when allow_pickle=False".
    csv = tmp_path / "train.csv"
    csv.write_text("normal,colour\n1.5,red\n")
    result = CliRunner().invoke(main, ["drift", "evaluate", "--profile", str(csv), str(csv)])
    assert result.exit_code == 1
    assert f"{csv} is not a driftline profile: not an NPZ archive" in result.output
    assert "pickle" not in result.output
    assert "Traceback" not in result.output


def test_profile_progress_bar_has_a_total_percentage_and_time_left(tmp_path, schema_file):
    # Before, for CSV: "6000rows [00:00, ...]", no total, no percentage, no time left.
    data = tmp_path / "train.csv"
    write(data, draw(np.random.default_rng(8), 6000), "csv")
    done = run_driftline(
        "profile", str(data), "--schema", str(schema_file), "-o", str(tmp_path / "p.npz")
    )
    assert done.returncode == 0, done.stderr
    final = done.stderr.replace("\r", "\n").splitlines()
    bar = next(line for line in reversed(final) if line.startswith("profile:"))
    assert "100%" in bar
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d", bar), bar  # elapsed < time left
    assert re.search(r" (\d+(\.\d+)?k)/\1 \[", bar), bar  # done/total, the file's size
    assert "B/s" in bar  # a CSV's progress is in bytes: its rows are not known up front


def run_driftline(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command with its real stderr, where tqdm draws its bar."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from driftline.cli import main; sys.exit(main())",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )

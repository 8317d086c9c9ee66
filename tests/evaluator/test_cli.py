from __future__ import annotations

from driftline_serving.evaluator.cli import build_parser, main


def test_environment_supplies_every_option() -> None:
    args = build_parser(
        {
            "DRIFTLINE_POLICY_NAME": "p",
            "DRIFTLINE_POLICY_NAMESPACE": "ml",
            "DRIFTLINE_POD_NAME": "churn-abc",
            "DRIFTLINE_REFERENCE_URI": "s3://b/ref",
            "DRIFTLINE_REFERENCE_SHA256": "0" * 64,
            "DRIFTLINE_DRIFT_SAMPLE_SOCKET": "unix:///run/s.sock",
            "DRIFTLINE_LISTEN_PORT": "9300",
        }
    ).parse_args([])
    assert (args.policy, args.namespace, args.pod, args.profile_uri, args.listen, args.port) == (
        "p",
        "ml",
        "churn-abc",
        "s3://b/ref",
        "unix:///run/s.sock",
        9300,
    )


def test_missing_options_exit_2(capsys, monkeypatch) -> None:
    monkeypatch.delenv("DRIFTLINE_POLICY_NAME", raising=False)
    assert main(["--namespace", "ml"]) == 2
    assert "--policy" in capsys.readouterr().err


def test_reference_problems_are_not_start_up_errors() -> None:
    # A missing or unusable reference profile is reported on the DriftPolicy by the
    # running sidecar (tests/evaluator/test_not_evaluating.py); only what it needs to
    # report at all is required to start.
    args = build_parser({"DRIFTLINE_POLICY_NAME": "p"}).parse_args([])
    assert args.profile_uri is None
    assert (args.reference_retry_seconds, args.reference_retry_max_seconds) == (5.0, 300.0)


def test_bad_retry_settings_exit_2(capsys) -> None:
    options = ["--policy", "p", "--namespace", "ml", "--pod", "x"]
    assert main([*options, "--reference-retry-seconds", "0"]) == 2
    assert "--reference-retry-seconds" in capsys.readouterr().err


def test_bad_baseline_metrics_exit_2(capsys) -> None:
    assert (
        main(
            [
                "--policy",
                "p",
                "--namespace",
                "ml",
                "--pod",
                "x",
                "--profile-uri",
                "/p",
                "--baseline-metrics",
                "[1]",
            ]
        )
        == 2
    )
    assert "baseline-metrics" in capsys.readouterr().err

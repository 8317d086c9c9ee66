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


def test_profile_with_wrong_digest_is_refused(tmp_path, profile_file, capsys) -> None:
    path, _ = profile_file
    code = main(
        [
            "--policy",
            "p",
            "--namespace",
            "ml",
            "--pod",
            "x",
            "--profile-uri",
            str(path),
            "--profile-sha256",
            "f" * 64,
            "--kubeconfig",
            str(tmp_path / "none"),
        ]
    )
    assert code == 1
    assert "reference profile unusable" in capsys.readouterr().err


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

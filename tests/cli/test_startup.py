"""`driftline operator` and `driftline apiserver`: what stops them from starting is one
clear line and exit status 1 (2 for usage), never a traceback or an endless retry."""

from __future__ import annotations

import pytest

from .helpers import DRIFTLINE, clean_environment, listening_socket, run, write_kubeconfig


def assert_clear_failure(done, status: int, *fragments: str) -> None:
    assert done.returncode == status, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, done.stderr


def test_operator_without_credentials_exits_at_once_naming_kubeconfig(tmp_path):
    # Before: kopf logged a failed login and tried again every 60 s, forever.
    done = run(
        [*DRIFTLINE, "operator", "--liveness-port", "0", "--metrics-port", "0"],
        env=clean_environment(tmp_path),
        cwd=tmp_path,
    )
    assert_clear_failure(done, 1, "KUBECONFIG", "no Kubernetes credentials")


def test_operator_with_a_kubeconfig_path_that_does_not_exist(tmp_path):
    env = clean_environment(tmp_path, KUBECONFIG=str(tmp_path / "missing"))
    done = run([*DRIFTLINE, "operator", "--liveness-port", "0", "--metrics-port", "0"], env=env)
    assert_clear_failure(done, 1, "KUBECONFIG")


@pytest.mark.parametrize("option", ["--liveness-port", "--metrics-port"])
def test_second_operator_names_the_port_in_use(tmp_path, option):
    env = clean_environment(tmp_path, KUBECONFIG=str(write_kubeconfig(tmp_path / "kubeconfig")))
    other = "--metrics-port" if option == "--liveness-port" else "--liveness-port"
    with listening_socket("0.0.0.0") as port:
        done = run([*DRIFTLINE, "operator", option, str(port), other, "0"], env=env)
    assert_clear_failure(done, 1, f"port {port}", option, "in use")


def test_operator_refuses_a_port_out_of_range_as_usage(tmp_path):
    done = run([*DRIFTLINE, "operator", "--metrics-port", "70000"], env=clean_environment(tmp_path))
    assert_clear_failure(done, 2, "70000", "usage: driftline operator")


def test_operator_help_names_the_command():
    done = run([*DRIFTLINE, "operator", "--help"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: driftline operator")
    assert "python -m" not in done.stdout


def test_apiserver_port_in_use(tmp_path):
    with listening_socket() as port:
        done = run(
            [*DRIFTLINE, "apiserver", "--port", str(port), "--kubeconfig", str(tmp_path / "k")]
        )
    assert_clear_failure(done, 1, f"port {port}", "in use", "--port")
    assert not (tmp_path / "k").exists()

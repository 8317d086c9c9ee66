"""driftline-verify on real ONNX files made here: digest, signature, termination message."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from driftline_serving.examples import models as example_models
from driftline_serving.verify import (
    TERMINATION_MESSAGE_LIMIT,
    compact_result,
    main,
    parse_options,
    read_signature,
    signature_differences,
)

MLP_SIGNATURE = {
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 32]}],
    "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}],
}


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "mlp.onnx"
    digest = example_models.save(example_models.classifier_mlp(), path)
    return path, digest


def run_main(tmp_path, *args):
    log = tmp_path / "termination-log"
    code = main([*args, "--termination-log", str(log), "--artifact-dir", str(tmp_path / "a")])
    return code, json.loads(log.read_text())


def test_reads_the_graph_signature(mlp):
    path, _ = mlp
    assert read_signature(path) == MLP_SIGNATURE


def test_verified_with_declared_signature(tmp_path, mlp):
    path, digest = mlp
    code, result = run_main(
        tmp_path,
        "--model-uri",
        f"file://{path}",
        "--sha256",
        digest,
        "--signature",
        json.dumps(MLP_SIGNATURE),
    )
    assert code == 0
    assert result["ok"] is True
    assert result["sha256"] == digest
    assert result["sizeBytes"] == path.stat().st_size
    assert result["signature"] == MLP_SIGNATURE


def test_digest_mismatch_fails(tmp_path, mlp):
    path, _ = mlp
    code, result = run_main(tmp_path, "--model-uri", str(path), "--sha256", "0" * 64)
    assert code == 1
    assert result["ok"] is False
    assert result["reason"] == "DigestMismatch"
    assert "sha256 mismatch" in result["message"]


def test_missing_file_fails_to_fetch(tmp_path):
    code, result = run_main(
        tmp_path, "--model-uri", str(tmp_path / "nope.onnx"), "--sha256", "0" * 64
    )
    assert code == 1
    assert result["reason"] == "FetchFailed"


def test_not_an_onnx_file(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff\x00not a protobuf" * 10)
    import hashlib

    digest = hashlib.sha256(junk.read_bytes()).hexdigest()
    code, result = run_main(tmp_path, "--model-uri", str(junk), "--sha256", digest)
    assert code == 1
    assert result["reason"] == "InvalidModel"
    assert result["sha256"] == digest


def test_signature_mismatch_names_every_difference(tmp_path, mlp):
    path, digest = mlp
    declared = {
        "inputs": [{"name": "input", "datatype": "FP64", "shape": [-1, 31]}],
        "outputs": [{"name": "scores", "datatype": "FP32", "shape": [-1, 3]}],
    }
    code, result = run_main(
        tmp_path, "--model-uri", str(path), "--sha256", digest, "--signature", json.dumps(declared)
    )
    assert code == 1
    assert result["reason"] == "SignatureMismatch"
    message = result["message"]
    assert "declared FP64 but the graph has FP32" in message
    assert "shape [-1, 31]" in message
    assert "'scores' is declared but not in the graph" in message
    assert "'probabilities' is in the graph but not declared" in message
    # The actual signature is still reported, so the user can fix the declaration.
    assert result["signature"] == MLP_SIGNATURE


def test_dimension_rules():
    graph = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 6]}], "outputs": []}
    fixed_batch = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [8, 6]}], "outputs": []}
    # A declared fixed batch fits a dynamic graph dimension.
    assert signature_differences(fixed_batch, graph) == []
    # A declared dynamic dimension does not fit a fixed one.
    fixed_graph = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 6]}], "outputs": []}
    assert signature_differences(graph, fixed_graph)
    rank = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}], "outputs": []}
    assert signature_differences(rank, graph)


def test_result_stays_under_the_termination_message_limit():
    many = [
        {"name": f"input_{i:03d}_long_name", "datatype": "FP32", "shape": [-1, 1]}
        for i in range(64)
    ]
    result = {
        "ok": True,
        "sha256": "a" * 64,
        "sizeBytes": 1,
        "signature": {"inputs": many, "outputs": many},
    }
    text = compact_result(result)
    assert len(text.encode()) <= TERMINATION_MESSAGE_LIMIT
    parsed = json.loads(text)
    assert parsed["signatureOmitted"] is True and parsed["ok"] is True


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="model-uri"):
        parse_options([], {})
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_options(["--model-uri", "/x", "--sha256", "a" * 64, "--signature", "{"], {})
    with pytest.raises(ValueError, match="inputs and outputs"):
        parse_options(["--model-uri", "/x", "--sha256", "a" * 64, "--signature", "[]"], {})


def test_console_entry_point_from_environment(tmp_path, mlp):
    path, digest = mlp
    log = tmp_path / "log"
    env = {
        "DRIFTLINE_MODEL_URI": str(path),
        "DRIFTLINE_SHA256": digest,
        "DRIFTLINE_TERMINATION_LOG": str(log),
        "DRIFTLINE_ARTIFACT_DIR": str(tmp_path / "a"),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-m", "driftline_serving.verify"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(log.read_text())["ok"] is True
    # The same JSON on stdout, for the logs.
    assert json.loads(done.stdout.strip())["ok"] is True

"""``driftline-verify``: verify a model artifact inside the cluster, for the operator.

Runs as the one container of a ModelVersion's verification Job. It fetches the artifact
with the ModelVersion's own credentials (the operator never holds them), checks its
sha256, reads the ONNX graph's signature, compares it with the declared one when there
is one, and writes a compact JSON result to the termination message file, which the
operator reads from the Pod's status. Exit status 0 means verified, 1 refused, 2 bad
configuration (with the usage line).

Options come from flags or DRIFTLINE_* variables: MODEL_URI, SHA256, SIGNATURE (JSON,
optional), ARTIFACT_DIR, TERMINATION_LOG. The termination message file has no default:
the rendered Job names it (render/verification.py sets DRIFTLINE_TERMINATION_LOG to the
container's terminationMessagePath), and without it the result goes to stdout only, so
a run on a workstation never writes /dev/termination-log.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driftline_serving.artifacts import ArtifactError, fetch_artifact

# Kubernetes keeps at most 4096 bytes of a termination message.
TERMINATION_MESSAGE_LIMIT = 4096

# ONNX TensorProto element types -> Open Inference Protocol datatypes.
_ONNX_TO_OIP = {
    1: "FP32",
    2: "UINT8",
    3: "INT8",
    4: "UINT16",
    5: "INT16",
    6: "INT32",
    7: "INT64",
    8: "BYTES",
    9: "BOOL",
    10: "FP16",
    11: "FP64",
    12: "UINT32",
    13: "UINT64",
}


class VerificationFailed(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class VerifyOptions:
    model_uri: str
    sha256: str
    declared_signature: dict[str, Any] | None
    artifact_dir: Path
    termination_log: Path | None  # None: stdout only


def read_signature(model_path: Path) -> dict[str, list[dict[str, Any]]]:
    """Inputs and outputs of the graph in OIP terms; symbolic or unknown dimensions are -1."""
    import onnx

    try:
        # External weights are not needed to read the signature and may not be there.
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception as error:  # onnx raises DecodeError and friends without a common base
        raise VerificationFailed("InvalidModel", f"not a readable ONNX model: {error}") from None
    graph = model.graph
    initialisers = {init.name for init in graph.initializer}

    def describe(value_info: Any) -> dict[str, Any]:
        tensor_type = value_info.type.tensor_type
        datatype = _ONNX_TO_OIP.get(tensor_type.elem_type)
        if datatype is None:
            raise VerificationFailed(
                "UnsupportedDatatype",
                f"tensor {value_info.name!r} has ONNX element type {tensor_type.elem_type}, "
                "which the Open Inference Protocol cannot carry",
            )
        shape = [
            dim.dim_value if dim.HasField("dim_value") else -1 for dim in tensor_type.shape.dim
        ]
        return {"name": value_info.name, "datatype": datatype, "shape": shape}

    inputs = [describe(v) for v in graph.input if v.name not in initialisers]
    outputs = [describe(v) for v in graph.output]
    if not inputs or not outputs:
        raise VerificationFailed("InvalidModel", "the graph declares no inputs or no outputs")
    return {"inputs": inputs, "outputs": outputs}


def _dimension_fits(declared: int, actual: int) -> bool:
    # A dynamic graph dimension accepts any declared size; a declared -1 (any size) needs a
    # dynamic graph dimension.
    return actual == -1 or declared == actual


def signature_differences(declared: Mapping[str, Any], actual: Mapping[str, Any]) -> list[str]:
    """What differs between the declared and the actual signature, one line per problem."""
    problems: list[str] = []
    for side in ("inputs", "outputs"):
        declared_by_name = {t["name"]: t for t in declared.get(side, [])}
        actual_by_name = {t["name"]: t for t in actual.get(side, [])}
        for name in sorted(declared_by_name.keys() - actual_by_name.keys()):
            problems.append(f"{side}: {name!r} is declared but not in the graph")
        for name in sorted(actual_by_name.keys() - declared_by_name.keys()):
            problems.append(f"{side}: {name!r} is in the graph but not declared")
        for name in sorted(declared_by_name.keys() & actual_by_name.keys()):
            want, have = declared_by_name[name], actual_by_name[name]
            if want["datatype"] != have["datatype"]:
                problems.append(
                    f"{side}: {name!r} is declared {want['datatype']} but the graph has "
                    f"{have['datatype']}"
                )
            want_shape, have_shape = list(want["shape"]), list(have["shape"])
            if len(want_shape) != len(have_shape) or not all(
                _dimension_fits(w, h) for w, h in zip(want_shape, have_shape, strict=True)
            ):
                problems.append(
                    f"{side}: {name!r} is declared with shape {want_shape} but the graph has "
                    f"{have_shape}"
                )
    return problems


def compact_result(result: dict[str, Any]) -> str:
    """The JSON written to the termination message, kept under Kubernetes' 4096 bytes."""
    text = json.dumps(result, separators=(",", ":"), sort_keys=True)
    if len(text.encode()) <= TERMINATION_MESSAGE_LIMIT:
        return text
    trimmed = {k: v for k, v in result.items() if k != "signature"}
    trimmed["signatureOmitted"] = True
    if "message" in trimmed:
        trimmed["message"] = trimmed["message"][:1024]
    return json.dumps(trimmed, separators=(",", ":"), sort_keys=True)


def verify(options: VerifyOptions) -> dict[str, Any]:
    """Run every check; returns the result (ok true or false), never raises for bad artifacts."""
    try:
        fetched = fetch_artifact(options.model_uri, options.artifact_dir, options.sha256)
    except ArtifactError as error:
        reason = "DigestMismatch" if "sha256 mismatch" in str(error) else "FetchFailed"
        return {"ok": False, "reason": reason, "message": str(error)}
    result: dict[str, Any] = {"sha256": fetched.sha256, "sizeBytes": fetched.size}
    try:
        signature = read_signature(fetched.path)
        result["signature"] = signature
        if options.declared_signature is not None:
            problems = signature_differences(options.declared_signature, signature)
            if problems:
                raise VerificationFailed("SignatureMismatch", "; ".join(problems))
    except VerificationFailed as failure:
        return {**result, "ok": False, "reason": failure.reason, "message": failure.message}
    return {**result, "ok": True, "reason": "Verified", "message": "digest and signature verified"}


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftline-verify",
        description="Fetch a model artifact, check its sha256 and ONNX signature, and report "
        "the result as JSON in the termination message file.",
    )
    parser.add_argument(
        "--model-uri",
        default=environ.get("DRIFTLINE_MODEL_URI"),
        help="the artifact: file://, https://, s3:// or a path (DRIFTLINE_MODEL_URI; required)",
    )
    parser.add_argument(
        "--sha256",
        default=environ.get("DRIFTLINE_SHA256"),
        help="its expected sha256, hex (DRIFTLINE_SHA256; required)",
    )
    parser.add_argument(
        "--signature",
        default=environ.get("DRIFTLINE_SIGNATURE"),
        help="the declared signature, JSON with inputs and outputs (DRIFTLINE_SIGNATURE)",
    )
    parser.add_argument(
        "--artifact-dir",
        default=environ.get("DRIFTLINE_ARTIFACT_DIR")
        or os.path.join(tempfile.gettempdir(), "driftline-verify"),
        help="where the artifact is downloaded (DRIFTLINE_ARTIFACT_DIR)",
    )
    parser.add_argument(
        "--termination-log",
        default=environ.get("DRIFTLINE_TERMINATION_LOG") or None,
        help="file that receives the JSON result as well as stdout, the container's "
        "terminationMessagePath in the Job (DRIFTLINE_TERMINATION_LOG; default: none)",
    )
    return parser


def parse_options(argv: Sequence[str], environ: Mapping[str, str]) -> VerifyOptions:
    args = build_parser(environ).parse_args(list(argv))
    if not args.model_uri:
        raise ValueError("--model-uri (or DRIFTLINE_MODEL_URI) is required")
    if not args.sha256:
        raise ValueError("--sha256 (or DRIFTLINE_SHA256) is required")
    declared: dict[str, Any] | None = None
    if args.signature:
        try:
            declared = json.loads(args.signature)
        except json.JSONDecodeError as error:
            raise ValueError(f"--signature is not valid JSON: {error}") from None
        if not isinstance(declared, dict) or not {"inputs", "outputs"} <= declared.keys():
            raise ValueError("--signature must be a JSON object with inputs and outputs")
    return VerifyOptions(
        model_uri=args.model_uri,
        sha256=args.sha256,
        declared_signature=declared,
        artifact_dir=Path(args.artifact_dir),
        termination_log=Path(args.termination_log) if args.termination_log else None,
    )


def _report(path: Path | None, result: dict[str, Any]) -> None:
    text = compact_result(result)
    if path is not None:
        try:
            path.write_text(text)
        except OSError as error:
            print(f"driftline-verify: cannot write {path}: {error}", file=sys.stderr)
    # Also on stdout: the logs show it, and FallbackToLogsOnError picks it up.
    print(text)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    try:
        options = parse_options(arguments, os.environ)
    except ValueError as error:
        build_parser(os.environ).print_usage(sys.stderr)
        print(f"driftline-verify: error: {error}", file=sys.stderr)
        # In the Job the operator reads the reason from the termination message.
        termination_log = os.environ.get("DRIFTLINE_TERMINATION_LOG")
        if termination_log:
            _report(
                Path(termination_log),
                {"ok": False, "reason": "BadConfiguration", "message": str(error)},
            )
        return 2
    result = verify(options)
    _report(options.termination_log, result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""Peer virtual environments for the serving benchmark, created under .bench-venvs/.

Peers never go into the project's .venv: each gets its own environment so their pins
(FastAPI, uvloop, protobuf, ...) cannot disturb ours or each other's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
VENVS_ROOT = REPO_ROOT / ".bench-venvs"

# Pins: the versions the issue names. MLServer 1.7.1 fails to start with uvloop 0.23
# (open upstream issue), so uvloop is held at 0.21 in its environment.
PEER_REQUIREMENTS: dict[str, list[str]] = {
    "kserve": ["kserve==0.21.0", "onnxruntime", "numpy"],
    "mlserver": ["mlserver==1.7.1", "uvloop==0.21.0", "onnxruntime", "numpy"],
    "bare": ["starlette", "uvicorn[standard]", "onnxruntime", "numpy", "orjson"],
}


def venv_python(name: str) -> Path:
    return VENVS_ROOT / name / "bin" / "python"


def ensure_venv(name: str) -> Path:
    """Create the named peer environment once; a marker file records a finished install."""
    requirements = PEER_REQUIREMENTS[name]
    venv_dir = VENVS_ROOT / name
    marker = venv_dir / ".driftline-bench-installed"
    wanted = "\n".join(requirements)
    if marker.exists() and marker.read_text() == wanted:
        return venv_python(name)
    print(f"[bench] creating {venv_dir} with {' '.join(requirements)}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv_dir)], check=True)
    pip = [str(venv_python(name)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *requirements], check=True)
    marker.write_text(wanted)
    return venv_python(name)


def installed_version(name: str, distribution: str) -> str:
    result = subprocess.run(
        [
            str(venv_python(name)),
            "-c",
            f"import importlib.metadata as m; print(m.version({distribution!r}))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"


if __name__ == "__main__":
    for peer in sys.argv[1:] or list(PEER_REQUIREMENTS):
        ensure_venv(peer)

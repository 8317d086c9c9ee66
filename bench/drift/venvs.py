"""Peer virtual environments for the drift benchmark, created under .bench-venvs/.

Peers never go into the project's .venv. Evidently 0.7.23 and NannyML 0.13.1 fail to
import with pandas 3, so pandas is held below 3; NannyML needs statsmodels without
declaring it. Alibi Detect's base install has no TensorFlow or PyTorch, which its KS,
chi-square and tabular detectors do not need.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
VENVS_ROOT = REPO_ROOT / ".bench-venvs"

PEER_REQUIREMENTS: dict[str, list[str]] = {
    "drift-evidently": ["evidently==0.7.23", "pandas<3", "pyarrow"],
    "drift-alibi": ["alibi-detect==0.13.0", "pandas<3", "pyarrow"],
}

PEER_DISTRIBUTION: dict[str, str] = {
    "drift-evidently": "evidently",
    "drift-alibi": "alibi-detect",
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
        print(peer, installed_version(peer, PEER_DISTRIBUTION[peer]))

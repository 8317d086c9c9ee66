"""Peer virtual environments for the benchmarks, created under .bench-venvs/.

Peers never go into the project's .venv: each gets its own environment, so that their
pins cannot disturb ours or each other's. Each benchmark names its peers and their
requirements in its own venvs.py; this module creates and inspects the environments.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
VENVS_ROOT = REPO_ROOT / ".bench-venvs"


class PeerVenvs:
    def __init__(self, requirements: dict[str, list[str]]) -> None:
        self.requirements = requirements

    def venv_python(self, name: str) -> Path:
        return VENVS_ROOT / name / "bin" / "python"

    def ensure_venv(self, name: str) -> Path:
        """Create the named environment once; a marker file records a finished install."""
        requirements = self.requirements[name]
        venv_dir = VENVS_ROOT / name
        marker = venv_dir / ".driftline-bench-installed"
        wanted = "\n".join(requirements)
        if marker.exists() and marker.read_text() == wanted:
            return self.venv_python(name)
        print(f"[bench] creating {venv_dir} with {' '.join(requirements)}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv_dir)], check=True)
        pip = [
            str(self.venv_python(name)),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, *requirements], check=True)
        marker.write_text(wanted)
        return self.venv_python(name)

    def installed_version(self, name: str, distribution: str) -> str:
        result = subprocess.run(
            [
                str(self.venv_python(name)),
                "-c",
                f"import importlib.metadata as m; print(m.version({distribution!r}))",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        return result.stdout.strip() or "unknown"

"""Peer virtual environments for the serving benchmark, created under .bench-venvs/.

Peers never go into the project's .venv: each gets its own environment so their pins
(FastAPI, uvloop, protobuf, ...) cannot disturb ours or each other's.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from peer_venvs import REPO_ROOT, PeerVenvs

__all__ = ["REPO_ROOT", "ensure_venv", "installed_version", "venv_python"]

# Pins: the versions the issue names. MLServer 1.7.1 fails to start with uvloop 0.23
# (open upstream issue), so uvloop is held at 0.21 in its environment.
PEER_REQUIREMENTS: dict[str, list[str]] = {
    "kserve": ["kserve==0.21.0", "onnxruntime", "numpy"],
    "mlserver": ["mlserver==1.7.1", "uvloop==0.21.0", "onnxruntime", "numpy"],
    "bare": ["starlette", "uvicorn[standard]", "onnxruntime", "numpy", "orjson"],
}


PEERS = PeerVenvs(PEER_REQUIREMENTS)
venv_python = PEERS.venv_python
ensure_venv = PEERS.ensure_venv
installed_version = PEERS.installed_version


if __name__ == "__main__":
    for peer in sys.argv[1:] or list(PEER_REQUIREMENTS):
        ensure_venv(peer)

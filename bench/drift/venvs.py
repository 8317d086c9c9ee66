"""Peer virtual environments for the drift benchmark, created under .bench-venvs/.

Peers never go into the project's .venv. Evidently 0.7.23 and NannyML 0.13.1 fail to
import with pandas 3, so pandas is held below 3; NannyML needs statsmodels without
declaring it. Alibi Detect's base install has no TensorFlow or PyTorch, which its KS,
chi-square and tabular detectors do not need.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from peer_venvs import REPO_ROOT, PeerVenvs

__all__ = ["REPO_ROOT", "ensure_venv", "installed_version", "venv_python"]

PEER_REQUIREMENTS: dict[str, list[str]] = {
    "drift-evidently": ["evidently==0.7.23", "pandas<3", "pyarrow"],
    "drift-alibi": ["alibi-detect==0.13.0", "pandas<3", "pyarrow"],
    "drift-nannyml": ["nannyml==0.13.1", "pandas<3", "statsmodels", "pyarrow"],
}

PEER_DISTRIBUTION: dict[str, str] = {
    "drift-evidently": "evidently",
    "drift-alibi": "alibi-detect",
    "drift-nannyml": "nannyml",
}


PEERS = PeerVenvs(PEER_REQUIREMENTS)
venv_python = PEERS.venv_python
ensure_venv = PEERS.ensure_venv
installed_version = PEERS.installed_version


if __name__ == "__main__":
    for peer in sys.argv[1:] or list(PEER_REQUIREMENTS):
        ensure_venv(peer)
        print(peer, installed_version(peer, PEER_DISTRIBUTION[peer]))

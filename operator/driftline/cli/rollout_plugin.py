"""`kubectl-driftline`: the `driftline` command as a kubectl plugin.

kubectl runs an executable named kubectl-driftline found on PATH for `kubectl driftline
...`, passing the rest of the command line (and KUBECONFIG) unchanged, so
`kubectl driftline rollout promote NAME -n NS` is `driftline rollout promote NAME -n NS`.
"""

from __future__ import annotations

from driftline.cli import main as driftline


def main() -> None:
    # usage and help name the command the way the user typed it
    driftline(prog_name="kubectl driftline")

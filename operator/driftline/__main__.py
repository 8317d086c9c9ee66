"""`python -m driftline ...`: the `driftline` command, for when its script is not on PATH."""

from driftline.cli import main

main(prog_name="driftline")

"""The drift-retrain example's modules are plain files in examples/drift-retrain (a
program, not a package): put that folder on the import path, as running it does."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DRIFT_RETRAIN = REPO / "examples" / "drift-retrain"

if str(DRIFT_RETRAIN) not in sys.path:
    sys.path.insert(0, str(DRIFT_RETRAIN))

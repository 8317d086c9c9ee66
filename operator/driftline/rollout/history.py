"""status.history: past revisions, newest first, bounded by spec.revisionHistoryLimit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from driftline.api.modeldeployment import Revision

Outcome = Literal["Promoted", "Aborted", "RolledBack", "Superseded"]


def record(
    history: Sequence[Revision],
    *,
    version: str,
    outcome: Outcome,
    reason: str | None,
    at: datetime,
    limit: int,
) -> list[Revision]:
    """`history` with a new revision in front, cut to the newest `limit`."""
    revision = Revision(version=version, outcome=outcome, reason=reason, at=at)
    return [revision, *history][:limit]

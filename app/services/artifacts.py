"""Building artifact rows: content stored in the database with its size and digest computed once here."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from app.db.models import Artifact
from app.domain import ids


def new_artifact(
    *,
    session_id: str,
    task_id: str | None,
    kind: str,
    name: str,
    content: str,
    actor: str,
    at: datetime,
    file_paths: Sequence[str] = (),
) -> Artifact:
    body = content.encode()
    return Artifact(
        id=ids.new_artifact_id(),
        session_id=session_id,
        task_id=task_id,
        kind=kind,
        name=name[:500],
        content=content,
        file_paths=list(file_paths),
        size_bytes=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        created_by=actor,
        created_at=at,
    )

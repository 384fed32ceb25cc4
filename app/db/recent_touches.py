"""Process memory of recent activity writes: spares a transaction an upsert or UPDATE nobody needs.

Two timestamps are written by nearly every write: the actor's ``agent.last_seen_at`` and the session's
``orchestration_session.last_activity_at``. Both are read at the scale of minutes (who is active, which
session is stale), so each moves at most once per ``ACTIVITY_GRANULARITY``. The database enforces that
for sessions (the UPDATE is conditional on the stored time being older); this memory additionally lets a
process skip the statement altogether — a round trip, and for the actor's upsert a row lock — while it
wrote that key less than the granularity ago. Each replica remembers only its own writes, so across
replicas a timestamp lags by at most the granularity too.
"""

from __future__ import annotations

from datetime import datetime, timedelta

ACTIVITY_GRANULARITY = timedelta(seconds=5)
MAX_REMEMBERED = 10_000


class RecentTouches:
    """When this process last wrote an activity time for each key (an actor, or a session id).

    Bounded: past ``MAX_REMEMBERED`` keys the memory starts again from empty, so every key is written
    once more; a forgotten key costs one statement, never a wrong answer.
    """

    def __init__(self, granularity: timedelta = ACTIVITY_GRANULARITY) -> None:
        self._granularity = granularity
        self._written: dict[str, datetime] = {}

    def due(self, key: str, at: datetime) -> bool:
        """Whether a write at ``at`` should record ``key`` (never written, or not within the granularity).

        A clock that went backwards (a written time after ``at``) counts as due.
        """
        written = self._written.get(key)
        return written is None or not (at - self._granularity < written <= at)

    def record(self, key: str, at: datetime) -> None:
        if len(self._written) >= MAX_REMEMBERED and key not in self._written:
            self._written.clear()
        self._written[key] = at

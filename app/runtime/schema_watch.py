"""The owed schema check, made as soon as the database answers, whether or not anything probes readiness.

When the database cannot be reached at start-up (or at a restart's schema-check phase), the service starts
unready and the schema check stays owed (docs/decisions.md, "A database unreachable at start-up"). It was
made only by ``/readyz``'s probe: behind Kubernetes that runs every few seconds, but a service started
without a readiness probe (``docker run``, a plain systemd unit) stayed unready for ever and, worse, served
tool calls on a schema nobody had checked or upgraded (an empty database with ``ORCHESTRATOR_AUTO_MIGRATE``
was never migrated). This monitor makes the owed check every ``interval`` seconds through the same probe,
until it is done; after that each run is one attribute read and no database work.
"""

from __future__ import annotations

from typing import Protocol


class OwedSchemaCheck(Protocol):
    """What the watch needs of the component stack."""

    @property
    def schema_owed(self) -> bool: ...

    async def probe_database(self) -> str | None: ...


class SchemaWatch:
    """A :class:`app.runtime.monitors.Monitor` named ``schema_watch``."""

    name = "schema_watch"

    def __init__(self, components: OwedSchemaCheck, *, interval: float) -> None:
        self._components = components
        self.interval = interval

    async def run_once(self) -> None:
        if self._components.schema_owed:
            # The probe makes the owed check once the database answers (shielded, one at a time, with the
            # readiness probe's own); while it cannot, readiness already names the database and the schema.
            await self._components.probe_database()

"""Input types shared by the tool signatures: bounds, patterns and descriptions written for a model.

The function signatures of the tool modules are the input schemas (the SDK derives JSON Schema from the
annotations), so every bound and enum lives here once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from app.services.views import ComplexityName, PriorityName, SpecialistName, TaskStatusName, TaskTypeName

TASK_ID_PATTERN = r"^task_[0-9a-f]{16}$"
AGENT_PATTERN = r"^[A-Za-z0-9._:@-]+$"
TaskId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=TASK_ID_PATTERN,
        description="A task id as returned by the tools (task_ + 16 hex digits).",
    ),
]
SessionId = Annotated[
    str | None,
    Field(
        max_length=64,
        pattern=r"^sess_[0-9a-f]{16}$",
        description="The session; omit it to use your current session (set by orchestrator_initialize_session).",
    ),
]
RequestId = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=64,
        description="Idempotency key: a retry with the same request_id returns the first result and writes "
        "nothing again. Use a new one for each distinct operation.",
    ),
]
AgentName = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=64,
        pattern=AGENT_PATTERN,
        description="A stable, unique name for this agent process. Pass it whenever several agents share one "
        "client name or one token: claims belong to actors.",
    ),
]
Reason = Annotated[str | None, Field(min_length=1, max_length=2000, description="Why (recorded).")]
Force = Annotated[bool, Field(description="Admin only: override another actor's claim or the safety checks.")]
When = Annotated[
    datetime | None,
    Field(description="ISO 8601 date-time; a time without zone means UTC."),
]
StatusList = Annotated[list[TaskStatusName], Field(max_length=7)]
TaskTypeList = Annotated[list[TaskTypeName], Field(max_length=11)]
SpecialistList = Annotated[list[SpecialistName], Field(max_length=10)]
ComplexityList = Annotated[list[ComplexityName], Field(max_length=5)]
PriorityList = Annotated[list[PriorityName], Field(max_length=4)]
SortField = Literal["created_at", "updated_at", "priority", "due_date"]
SortOrder = Literal["asc", "desc"]
RequiredSessionId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^sess_[0-9a-f]{16}$",
        description="A session id (sess_ + 16 hex digits), as listed by orchestrator_list_sessions.",
    ),
]

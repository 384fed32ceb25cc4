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
TaskId = Annotated[str, Field(max_length=64, pattern=TASK_ID_PATTERN, description="Task id.")]
SessionId = Annotated[
    str | None,
    Field(
        max_length=64,
        pattern=r"^sess_[0-9a-f]{16}$",
        description="Default: current session.",
    ),
]
RequestId = Annotated[
    str | None,
    Field(min_length=1, max_length=64, description="Idempotency key (safe retries)."),
]
AgentName = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=64,
        pattern=AGENT_PATTERN,
        description="Your agent name (same every call).",
    ),
]
Reason = Annotated[str | None, Field(min_length=1, max_length=2000, description="Why (recorded).")]
Force = Annotated[bool, Field(description="Admin: override claims and checks.")]
When = Annotated[datetime | None, Field(description="ISO 8601 date-time (UTC if no zone).")]
StatusList = Annotated[list[TaskStatusName], Field(max_length=7, description="Any of these statuses.")]
TaskTypeList = Annotated[list[TaskTypeName], Field(max_length=11, description="Any of these task types.")]
SpecialistList = Annotated[list[SpecialistName], Field(max_length=10, description="Any of these specialists.")]
ComplexityList = Annotated[list[ComplexityName], Field(max_length=5, description="Any of these complexities.")]
PriorityList = Annotated[list[PriorityName], Field(max_length=4, description="Any of these priorities.")]
SortField = Annotated[Literal["created_at", "updated_at", "priority", "due_date"], Field(description="Sort key.")]
SortOrder = Annotated[Literal["asc", "desc"], Field(description="Sort direction.")]
Limit = Annotated[int, Field(ge=1, le=500, description="Page size (at most 100 for whole tasks).")]
Offset = Annotated[int, Field(ge=0, le=1_000_000, description="Rows to skip (next_offset of the last page).")]
TaskType = Annotated[TaskTypeName, Field(description="Kind of work.")]
Complexity = Annotated[ComplexityName, Field(description="How hard.")]
Specialist = Annotated[SpecialistName, Field(description="Who should do it (next_task filters on it).")]
Priority = Annotated[PriorityName, Field(description="Claimed first: critical > high > medium > low.")]

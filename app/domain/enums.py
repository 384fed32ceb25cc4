"""The vocabularies of DESIGN §3: the only place their values are spelled.

They are ``StrEnum`` so they serialise as their plain value, appear as ``enum`` in every tool's input
schema, and feed the ``CHECK`` constraints of the tables.
"""

from __future__ import annotations

from enum import StrEnum


class TaskType(StrEnum):
    STANDARD = "standard"
    BREAKDOWN = "breakdown"
    MILESTONE = "milestone"
    REVIEW = "review"
    APPROVAL = "approval"
    RESEARCH = "research"
    IMPLEMENTATION = "implementation"
    TESTING = "testing"
    DOCUMENTATION = "documentation"
    DEPLOYMENT = "deployment"
    CUSTOM = "custom"


class TaskStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    BLOCKED = "blocked"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ARCHIVED = "archived"


TERMINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.ARCHIVED})
OPEN_STATUSES = frozenset({TaskStatus.PENDING, TaskStatus.IN_PROGRESS, TaskStatus.BLOCKED})


class Complexity(StrEnum):
    TRIVIAL = "trivial"
    SIMPLE = "simple"
    MODERATE = "moderate"
    COMPLEX = "complex"
    VERY_COMPLEX = "very_complex"


class SpecialistType(StrEnum):
    ANALYST = "analyst"
    CODER = "coder"
    TESTER = "tester"
    DOCUMENTER = "documenter"
    REVIEWER = "reviewer"
    ARCHITECT = "architect"
    DEVOPS = "devops"
    RESEARCHER = "researcher"
    COORDINATOR = "coordinator"
    GENERIC = "generic"


class Priority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


PRIORITY_RANK = {Priority.LOW: 1, Priority.MEDIUM: 2, Priority.HIGH: 3, Priority.CRITICAL: 4}


class ArtifactKind(StrEnum):
    CODE = "code"
    DOCUMENTATION = "documentation"
    ANALYSIS = "analysis"
    DESIGN = "design"
    TEST = "test"
    CONFIG = "config"
    GENERAL = "general"
    SYNTHESIS = "synthesis"
    HANDOVER = "handover"
    REPORT = "report"
    CANCELLATION = "cancellation"
    REVISION_NOTE = "revision_note"


class NextAction(StrEnum):
    CONTINUE = "continue"
    NEEDS_REVISION = "needs_revision"
    BLOCKED = "blocked"
    COMPLETE = "complete"


class SessionStatus(StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"


def values(enum: type[StrEnum]) -> list[str]:
    """The allowed values of a vocabulary, in declaration order (for messages and CHECKs)."""
    return [member.value for member in enum]

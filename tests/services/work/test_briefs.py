"""The brief of a claim: the role from the catalog and a prompt built from the task and its neighbours."""

from __future__ import annotations

from datetime import date

import pytest

from app.domain import roles
from app.services.work.briefs import EXCERPT_CHARS, ExecuteTaskResult
from app.services.work.claims import ExecutionService
from tests.support.execution import complete, execute, next_task, ready_parent, recorded_statements
from tests.support.harness import Harness, caller

pytestmark = pytest.mark.anyio


async def test_the_prompt_carries_the_task_its_role_and_what_the_dependencies_produced(harness: Harness) -> None:
    await harness.session()
    epic = (await harness.plan(title="Payments epic", description="Take card payments.")).task
    schema = (await harness.plan(title="Design the ledger", parent=epic.id, specialist_type="architect")).task
    await execute(harness, schema.id, "architect")
    await complete(
        harness,
        schema.id,
        "architect",
        summary="Double-entry ledger in two tables.",
        detailed_work="## Tables\nentry(id, account, amount)\n",
        file_paths=["docs/ledger.md"],
        artifact_type="design",
    )
    task = (
        await harness.plan(
            title="Implement the ledger",
            description="Write the ledger module with tests.",
            parent=epic.id,
            specialist_type="coder",
            priority="high",
            estimated_effort="2d",
            due_date=date(2026, 2, 1),
            context={"language": "python"},
            dependencies=[schema.id],
        )
    ).task

    brief = await execute(harness, task.id, "coder-7", lease_seconds=1800)

    coder = roles.builtin_catalog().get("coder")
    assert brief.specialist.model_dump(exclude={"prompt"}) == {
        "type": "coder",
        "role": coder.role,
        "expertise": list(coder.expertise),
        "approach": list(coder.approach),
        "output_format": coder.output_format,
    }
    prompt = brief.specialist.prompt
    assert prompt.startswith(f"# {coder.role}: Implement the ledger\n")
    for expected in (
        f"**Implement the ledger** (`{task.id}`; type standard, priority high, complexity moderate, "
        "estimated effort 2d, due 2026-02-01T00:00:00Z)",
        "Write the ledger module with tests.",
        '"language": "python"',
        "## Parent task\n**Payments epic**",
        "Take card payments.",
        f"### Design the ledger (`{schema.id}`, completed)",
        "Summary: Double-entry ledger in two tables.",
        "files: docs/ledger.md",
        "  > entry(id, account, amount)",
        f"## Expected output\n{coder.output_format}",
        *[f"- {item}" for item in coder.expertise],
        f"1. {coder.approach[0]}",
    ):
        assert expected in prompt, expected
    assert [d.model_dump(exclude={"artifacts"}) for d in brief.dependencies] == [
        {
            "task_id": schema.id,
            "title": "Design the ledger",
            "status": "completed",
            "summary": "Double-entry ledger in two tables.",
            "completed_at": "2026-01-01T00:00:00Z",
        }
    ]
    assert [(a.kind, a.file_paths) for a in brief.dependencies[0].artifacts] == [("design", ["docs/ledger.md"])]
    assert brief.parent is not None and brief.parent.id == epic.id
    assert brief.instructions[0] == (
        f"You hold {task.id} as 'coder-7' until 2026-01-01T00:30:00Z (attempt 1). Call "
        "orchestrator_execute_task again with the same agent before then to renew the lease; if it lapses, the "
        "task goes back to the queue, and after 3 lapsed leases it fails."
    )
    assert brief.instructions[-1].startswith(f"Finish with orchestrator_complete_task(task_id='{task.id}'")
    assert "Respect the task context (keys: language)." in brief.instructions
    assert "It is due by 2026-02-01T00:00:00Z." in brief.instructions
    # The prompt ends with the same numbered instructions the result lists.
    assert prompt.rstrip().endswith(f"{len(brief.instructions)}. {brief.instructions[-1]}")


async def test_a_roles_file_override_reaches_the_brief(harness: Harness) -> None:
    await harness.session()
    catalog = roles.parse_catalog(
        b"roles:\n  tester:\n    role: Property-based testing expert\n    extra_expertise: [Hypothesis]\n",
        source="roles.yaml",
    )
    service = ExecutionService(harness.uow, harness.clock, roles=catalog, config=harness.services.execution.config)
    task = (await harness.plan(title="Fuzz the parser", specialist_type="tester")).task
    brief = await service.execute_task(caller("qa"), task.id, lease_seconds=None, request_id=None)
    assert brief.specialist.role == "Property-based testing expert"
    assert brief.specialist.expertise[-1] == "Hypothesis"
    assert brief.specialist.prompt.startswith("# Property-based testing expert: Fuzz the parser\n")
    assert "- Hypothesis" in brief.specialist.prompt


async def test_a_claim_reads_its_dependencies_and_subtasks_in_one_statement_and_the_brief_shows_them(
    harness: Harness,
) -> None:
    """next_task's re-check under the lock, the readiness rule and the brief share one read of both."""
    session_id = await harness.session()
    epic, design, step = await ready_parent(harness)
    with recorded_statements(harness) as statements:
        claimed = await next_task(harness, session_id, "lead")

    brief = claimed.root
    assert isinstance(brief, ExecuteTaskResult) and brief.task.id == epic
    assert (brief.task.dependencies, brief.task.blocked_by, brief.task.open_children) == ([design], [], 0)
    assert [d.task_id for d in brief.dependencies] == [design]
    assert f"- `{step}` Step (completed)" in brief.specialist.prompt
    neighbour_reads = [s for s in statements if "UNION ALL" in s]
    dependency_reads = [
        s for s in statements if s.startswith("SELECT task_dependency.task_id, task_dependency.depends_on_id")
    ]
    subtask_reads = [s for s in statements if "task.parent_id IN" in s]
    assert len(neighbour_reads) == 1, neighbour_reads  # dependencies and subtasks in one statement
    assert (dependency_reads, subtask_reads) == ([], [])


async def test_a_brief_cuts_a_dependencys_large_artifact_in_the_database_and_keeps_revision_notes_whole(
    harness: Harness,
) -> None:
    sid = await harness.session()
    dep = (await harness.plan(title="Write the design")).task
    await execute(harness, dep.id, "architect")
    large = "é" * (EXCERPT_CHARS + 100) + "TAIL" + "x" * 200_000  # characters, not bytes, count
    await complete(harness, dep.id, "architect", detailed_work=large, artifact_type="design")
    task = (await harness.plan(title="Build it", dependencies=[dep.id])).task
    await execute(harness, task.id, "first")
    long_note = "Redo the parser. " + "z" * (EXCERPT_CHARS + 200) + " END-OF-NOTE"
    await complete(harness, task.id, "first", next_action="needs_revision", summary=long_note)

    with recorded_statements(harness) as statements:
        brief = (await next_task(harness, sid, "second")).root
    assert isinstance(brief, ExecuteTaskResult)

    [design] = [a for a in brief.dependencies[0].artifacts if a.kind == "design"]
    assert design.excerpt == "é" * EXCERPT_CHARS + "…"
    assert design.size_bytes == len(large.encode())
    assert "END-OF-NOTE" in brief.specialist.prompt  # the revision note, whole
    artifact_reads = [s for s in statements if "FROM artifact" in s]
    assert len(artifact_reads) == 1 and "substr(" in artifact_reads[0].lower()

    resource = await harness.services.queries.read_task(dep.id)
    assert [(a.kind, a.size_bytes) for a in resource.artifacts] == [("design", len(large.encode()))]

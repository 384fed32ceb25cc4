"""Reading the task graph: the filtered, sorted, paged ``orchestrator_query_tasks``.

Every filter is a SQL predicate (see ``app.db.repositories.task_pages``); ``total_count`` counts every
match, not the page. Rows are :class:`TaskSummary` by default, read as one page of JSON rows with their
count (one statement on PostgreSQL) and validated once; ``view=full`` (or ``task_ids``) builds whole
TaskViews, with children and artifacts loaded for the whole page with one query each.
``include_children`` / ``include_artifacts`` imply ``view=full`` (docs/decisions.md).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from pydantic import Field, RootModel

from app import errors
from app.db.repositories import Repositories
from app.db.repositories.task_filters import PageOrder, TaskFilter
from app.domain import search
from app.domain.clock import iso
from app.services.base import Service
from app.services.caller import Caller
from app.services.session_resolution import resolve_session_id
from app.services.views import (
    ArtifactView,
    TaskSummary,
    TaskView,
    View,
    artifact_view,
    task_views,
    task_views_as,
)

MAX_FULL_LIMIT = 100
# Filters that select tasks; with task_ids they would be ignored, so they are refused instead.
SELECTING_FILTERS = (
    "status",
    "task_type",
    "specialist_type",
    "complexity",
    "priority",
    "parent_task_id",
    "assigned_to",
    "ready_only",
    "search_text",
    "created_after",
    "created_before",
)


class QueriedTask(TaskView):
    children: list[TaskView] | None = None
    artifacts: list[ArtifactView] | None = None


class TaskSummaryRows(RootModel[list[TaskSummary]]):
    """A summary page's rows, validated once straight from the JSON the repository hands back (on
    PostgreSQL, built by the database): no dictionaries in between, no model built twice."""


class QueryTasksResult(View):
    tasks: list[TaskSummary | QueriedTask]
    total_count: int
    limit: int
    offset: int
    next_offset: int | None


class ArtifactMeta(View):
    """An artifact without its content (the ``orchestrator://tasks/{id}`` resource lists these)."""

    id: str
    kind: str
    name: str
    file_paths: list[str]
    size_bytes: int
    sha256: str
    created_by: str
    created_at: str


class TaskWithArtifacts(TaskView):
    artifacts: list[ArtifactMeta] = Field(default_factory=list)  # filled in after the view is built


class TaskQueryService(Service):
    async def read_task(self, task_id: str) -> TaskWithArtifacts:
        """One task's view with its artifacts' metadata, in one read transaction.

        Raises:
            not_found: the task does not exist.
        """

        async def work(repos: Repositories) -> TaskWithArtifacts:
            row = await repos.tasks.get(task_id)
            if row is None:
                raise errors.TaskNotFound(task_id)
            [view] = await task_views_as(TaskWithArtifacts, repos, [row])  # built once, not dumped and rebuilt
            view.artifacts = [  # without their content, which is not read at all
                ArtifactMeta(
                    id=a.id,
                    kind=a.kind,
                    name=a.name,
                    file_paths=a.file_paths,
                    size_bytes=a.size_bytes,
                    sha256=a.sha256,
                    created_by=a.created_by,
                    created_at=iso(a.created_at) or "",
                )
                for a in await repos.artifacts.heads_by_task_ids([task_id], chars=0)
            ]
            return view

        return await self._read(work)

    async def query_tasks(
        self,
        caller: Caller,
        *,
        session_id: str | None,
        statuses: list[str],
        task_types: list[str],
        specialist_types: list[str],
        complexities: list[str],
        priorities: list[str],
        parent_task_id: str | None,
        assigned_to: str | None,
        ready_only: bool,
        search_text: str | None,
        created_after: datetime | None,
        created_before: datetime | None,
        include_children: bool,
        include_artifacts: bool,
        sort: str,
        order: str,
        limit: int,
        offset: int,
        view: str = "summary",
        task_ids: list[str] | None = None,
    ) -> QueryTasksResult:
        """One page of the session's tasks matching every given filter, as summary rows or whole tasks;
        or, with ``task_ids``, those tasks in full, in the order given.

        Raises:
            not_found (session; parent_task_id; a task of task_ids), invalid_argument (no session given and
            none to fall back on; a search_text without any word; limit above 100 for whole tasks; task_ids
            with a filter; a parent or a task of task_ids in another session than the one named).
        """
        full = view == "full" or bool(task_ids) or include_children or include_artifacts
        _check_full_limit(full, limit)
        if task_ids:
            _refuse_filters_with_task_ids(
                {
                    "status": statuses,
                    "task_type": task_types,
                    "specialist_type": specialist_types,
                    "complexity": complexities,
                    "priority": priorities,
                    "parent_task_id": parent_task_id,
                    "assigned_to": assigned_to,
                    "ready_only": ready_only,
                    "search_text": search_text,
                    "created_after": created_after,
                    "created_before": created_before,
                }
            )

        if search_text is not None and not search.words(search_text):
            # A search without a single word would silently match everything.
            raise errors.InvalidArgument(
                f"search_text {search_text!r} contains no word to search for; pass letters or digits, "
                "or omit search_text to list every task.",
                field="search_text",
                value=search_text,
            )

        async def by_ids(repos: Repositories, ids: list[str]) -> QueryTasksResult:
            if session_id is not None:
                await resolve_session_id(repos, caller, session_id)
            rows = await repos.tasks.get_many(ids)
            found = {row.id for row in rows}
            for index, task_id in enumerate(ids):
                if task_id not in found:
                    raise errors.TaskNotFound(task_id, field=f"task_ids[{index}]")
                if session_id is not None and session_id != (home := _session_of(rows, task_id)):
                    # It exists: "does not exist" would send the agent looking for a task it already has.
                    raise errors.InvalidArgument(
                        f"Task {task_id} is in session {home}, not {session_id}; omit session_id to read tasks "
                        "of any session by id.",
                        field=f"task_ids[{index}]",
                        value=task_id,
                    )
            window = rows[offset : offset + limit]
            return await page_of(repos, window, len(rows))

        async def page_of(repos: Repositories, rows: list[Any], total: int) -> QueryTasksResult:
            return paged(list(await full_rows(repos, rows)), total)

        def paged(tasks: list[TaskSummary | QueriedTask], total: int) -> QueryTasksResult:
            end = offset + len(tasks)
            return QueryTasksResult(
                tasks=tasks,
                total_count=total,
                limit=limit,
                offset=offset,
                next_offset=end if end < total else None,
            )

        async def full_rows(repos: Repositories, rows: list[Any]) -> list[QueriedTask]:
            page = await task_views_as(QueriedTask, repos, rows)
            ids = [t.id for t in rows]
            if include_children:
                children = await repos.tasks.list_children(ids)
                child_views = await task_views(repos, children)
                by_parent: dict[str, list[TaskView]] = defaultdict(list)
                for child in child_views:
                    by_parent[child.parent_id or ""].append(child)
                for item in page:
                    item.children = by_parent.get(item.id, [])
            if include_artifacts:
                by_task: dict[str, list[ArtifactView]] = defaultdict(list)
                for art in await repos.artifacts.list_by_task_ids(ids):
                    by_task[art.task_id or ""].append(artifact_view(art))
                for item in page:
                    item.artifacts = by_task.get(item.id, [])
            return page

        async def work(repos: Repositories) -> QueryTasksResult:
            if task_ids:
                return await by_ids(repos, list(dict.fromkeys(task_ids)))
            if parent_task_id is not None:
                sid = await _session_of_parent(repos, parent_task_id, session_id)
            elif session_id is not None:
                sid = session_id
            else:
                sid = await resolve_session_id(repos, caller, None)
            flt = TaskFilter(
                session_id=sid,
                statuses=statuses,
                task_types=task_types,
                specialist_types=specialist_types,
                complexities=complexities,
                priorities=priorities,
                parent_id=parent_task_id,
                assigned_to=assigned_to,
                ready_only=ready_only,
                search_text=search_text,
                created_after=created_after,
                created_before=created_before,
            )
            sorted_by = PageOrder(sort=sort, descending=order == "desc")
            if full:
                rows, total = await repos.task_pages.list_by_filter(flt, sorted_by, limit=limit, offset=offset)
                await check_named_session(repos, total)
                return await page_of(repos, rows, total)
            summaries = await repos.task_pages.list_summaries_by_filter(flt, sorted_by, limit=limit, offset=offset)
            await check_named_session(repos, summaries.total)
            return paged(list(TaskSummaryRows.model_validate_json(summaries.rows_json).root), summaries.total)

        async def check_named_session(repos: Repositories, total: int) -> None:
            """A named session is checked only when nothing matched: a matching task (or the parent found in
            it) proves it exists (tasks reference their session), and the common case then saves a round trip.

            Raises:
                not_found: the named session does not exist.
            """
            if total == 0 and session_id is not None and parent_task_id is None:
                await resolve_session_id(repos, caller, session_id)

        return await self._read(work)


async def _session_of_parent(repos: Repositories, parent_task_id: str, session_id: str | None) -> str:
    """The session whose subtasks of ``parent_task_id`` are listed: the parent's own, as plan_task puts a
    subtask in its parent's session (so session_id may be omitted). Filtering without looking at the parent
    would answer an empty page for a parent that does not exist or lives elsewhere; this one extra read
    (id and session only) is made only when the filter is given.

    Raises:
        not_found: the parent does not exist. invalid_argument: it is in another session than ``session_id``.
    """
    home = (await repos.tasks.existing_ids([parent_task_id])).get(parent_task_id)
    if home is None:
        raise errors.TaskNotFound(parent_task_id, field="parent_task_id")
    if session_id is not None and session_id != home:
        raise errors.InvalidArgument(
            f"Parent task {parent_task_id} is in session {home}, not {session_id}; a task's subtasks share its "
            "session (omit session_id to use the parent's).",
            field="parent_task_id",
            value=parent_task_id,
        )
    return home


def _session_of(rows: list[Any], task_id: str) -> str | None:
    return next((row.session_id for row in rows if row.id == task_id), None)


def _check_full_limit(full: bool, limit: int) -> None:
    """Whole tasks are heavy: a page of them is at most ``MAX_FULL_LIMIT``."""
    if full and limit > MAX_FULL_LIMIT:
        raise errors.InvalidArgument(
            f"limit {limit} is too large for whole tasks (view=full, task_ids, include_children or "
            f"include_artifacts): at most {MAX_FULL_LIMIT}. Lower limit and page with offset, or read "
            "summary rows.",
            field="limit",
            value=limit,
            allowed={"minimum": 1, "maximum": MAX_FULL_LIMIT},
        )


def _refuse_filters_with_task_ids(given: dict[str, Any]) -> None:
    """task_ids names the tasks; a filter beside it would be ignored, so it is refused instead."""
    clash = next((name for name in SELECTING_FILTERS if given[name]), None)
    if clash is not None:
        raise errors.InvalidArgument(
            f"task_ids reads the named tasks; it does not combine with {clash}. Pass either task_ids or filters.",
            field=clash,
            value=given[clash],
        )

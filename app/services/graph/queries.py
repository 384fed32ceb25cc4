"""Reading the task graph: the filtered, sorted, paged ``orchestrator_query_tasks``.

Every filter is a SQL predicate (see ``TaskRepository.query``); ``total_count`` counts every match, not
the page. Children and artifacts are loaded for the whole page with one query each, and views are built
straight into the result's model.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from app import errors
from app.db.repositories import Repositories
from app.db.repositories.tasks import WORD, TaskFilter
from app.services.base import Service
from app.services.caller import Caller
from app.services.session_resolution import resolve_session_id
from app.services.views import ArtifactView, TaskView, View, artifact_view, task_views, task_views_as


class QueriedTask(TaskView):
    children: list[TaskView] | None = None
    artifacts: list[ArtifactView] | None = None


class QueryTasksResult(View):
    tasks: list[QueriedTask]
    total_count: int
    limit: int
    offset: int
    next_offset: int | None


class TaskQueryService(Service):
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
    ) -> QueryTasksResult:
        """One page of the session's tasks matching every given filter.

        Raises:
            not_found (session), invalid_argument (no session given and no current session; a search_text
            without any word).
        """

        if search_text is not None and not WORD.search(search_text):
            # A search without a single word would silently match everything.
            raise errors.InvalidArgument(
                f"search_text {search_text!r} contains no word to search for; pass letters or digits, "
                "or omit search_text to list every task.",
                field="search_text",
                value=search_text,
            )

        async def work(repos: Repositories) -> QueryTasksResult:
            # A named session is checked only when nothing matched: a matching task proves it exists
            # (tasks reference their session), and the common case then saves a round trip.
            sid = session_id if session_id is not None else await resolve_session_id(repos, caller, None)
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
            rows, total = await repos.tasks.query(
                flt, sort=sort, descending=order == "desc", limit=limit, offset=offset
            )
            if total == 0 and session_id is not None:
                await resolve_session_id(repos, caller, session_id)  # raises not_found for an unknown session
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
            end = offset + len(page)
            return QueryTasksResult(
                tasks=page,
                total_count=total,
                limit=limit,
                offset=offset,
                next_offset=end if end < total else None,
            )

        return await self._read(work)

"""The server's prompts (DESIGN §4.6): how to work the shared queue, and how to plan a goal as a tree.

``orchestrator_work_loop`` fills in the caller's session numbers (from ``session_status``) so the agent
starts from where the queue stands; ``orchestrator_break_down`` shows how ``subtasks`` and ``depends_on``
turn a goal into one ``orchestrator_plan_task`` call. Unknown prompt names and bad arguments
(:func:`check_arguments`) are answered by ``OrchestratorMCP.get_prompt`` with JSON-RPC -32602.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, NoReturn

from mcp import MCPError
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import PromptArgument
from mcp.types import INVALID_PARAMS
from pydantic import Field

from app import errors
from app.auth.identity import resolve_caller
from app.domain import json_bounds
from app.domain.enums import SpecialistType
from app.tools import schemas
from app.tools.holder import ServiceHolder

# Waiting instead of polling (DESIGN §4.7): the loop's answer to "nothing is ready".
WHEN_NOTHING_IS_READY = (
    "If it answers {task: null, reason}, nothing is ready for you: call orchestrator_next_task again with "
    "wait_seconds=60 instead of polling; it returns as soon as a task becomes ready for you (and claims it), "
    'or {task: null, reason} when the wait ends. Reason "draining": the server is restarting, call again '
    "shortly."
)


AGENT = re.compile(schemas.AGENT_PATTERN)
MAX_AGENT_CHARS = 64
MAX_GOAL_CHARS = 20_000  # as a task's description: the goal becomes one
SPECIALISTS = [s.value for s in SpecialistType]
ALLOWED = {
    "agent": f"an agent name: 1-{MAX_AGENT_CHARS} characters of A-Z a-z 0-9 . _ : @ - (or empty for yours)",
    "specialist_type": f"one of {', '.join(SPECIALISTS)} (or empty for any)",
    "goal": f"the goal as text of 1-{MAX_GOAL_CHARS} characters",
}


def check_arguments(prompt: str, declared: Sequence[PromptArgument] | None, arguments: dict[str, Any] | None) -> None:
    """Refuse a prompt's missing or bad arguments before it is rendered (DESIGN §4.6: never an internal
    error). The prompt writes them into the calls it tells the agent to make, so an argument those calls
    would refuse (a NUL, a 5000-character agent, specialist_type "wizard") is refused here the same way.

    Raises:
        MCPError: -32602 (invalid params), naming the argument, its value (shortened) and what is allowed;
            ``data`` holds ``{field, value, allowed}`` like a tool error.
    """
    given = arguments or {}
    for argument in declared or ():
        if argument.required and argument.name not in given:
            _refuse(prompt, argument.name, None, ALLOWED.get(argument.name, "a value (required)"), "is missing")
    for name, value in given.items():
        if not isinstance(value, str):
            _refuse(prompt, name, value, "a string", "is not text")
        elif (bad := json_bounds.bad_character(value)) is not None:
            _refuse(prompt, name, value, json_bounds.CLEAN_TEXT, f"contains {bad}")
        elif name == "agent" and value and (len(value) > MAX_AGENT_CHARS or not AGENT.match(value)):
            _refuse(prompt, name, value, ALLOWED[name], "is not an agent name")
        elif name == "specialist_type" and value and value not in SPECIALISTS:
            _refuse(prompt, name, value, ALLOWED[name], "is not a specialist type")
        elif name == "goal" and not 1 <= len(value) <= MAX_GOAL_CHARS:
            _refuse(prompt, name, value, ALLOWED[name], "is empty" if not value else "is too long")


def _refuse(prompt: str, name: str, value: Any, allowed: str, problem: str) -> NoReturn:
    field = json_bounds.printable(name[:64])
    shown = json_bounds.printable(value) if isinstance(value, str) else value
    told = "" if value is None else f" ({shown!r})"
    raise MCPError(
        code=INVALID_PARAMS,
        message=f"Prompt {prompt} argument '{field}'{told} {problem}; allowed: {allowed}.",
        data={"field": field, "value": shown, "allowed": allowed},
    )


def register(server: MCPServer, holder: ServiceHolder) -> None:
    @server.prompt(
        name="orchestrator_work_loop",
        title="Work the shared task queue",
        description="Step by step: how an agent claims, does and hands back tasks with these tools, with the "
        "session's current numbers.",
    )
    async def work_loop(
        ctx: Context,
        agent: Annotated[str, Field(description="Your agent name; pass it on every call.")] = "",
        specialist_type: Annotated[str, Field(description="Only work of this specialist type (optional).")] = "",
    ) -> str:
        caller = resolve_caller(ctx, agent or None)
        return work_loop_text(agent or caller.actor, specialist_type, await _numbers(holder, ctx, agent or None))

    @server.prompt(
        name="orchestrator_break_down",
        title="Plan a goal as a task tree",
        description="How to turn a goal into one orchestrator_plan_task call with subtasks and depends_on.",
    )
    def break_down(goal: Annotated[str, Field(description="The goal to plan.")]) -> str:
        return break_down_text(goal)


async def _numbers(holder: ServiceHolder, ctx: Context, agent: str | None) -> str:
    """The current state of the caller's session, or how to get one."""
    try:
        status = await holder.services.session_overview.session_status(resolve_caller(ctx, agent), None)
    except errors.InvalidArgument:
        return "You have no session yet: step 1 starts or joins one."
    by_status = status.counts.by_status
    parts = ", ".join(f"{n} {name}" for name, n in sorted(by_status.items())) or "no tasks yet"
    return (
        f"Session {status.session.id} ({status.session.name!r}) now has {status.counts.total} tasks: {parts}; "
        f"{len(status.active_agents)} agent(s) active; progress {status.progress_ratio:.0%}."
    )


def work_loop_text(agent: str, specialist_type: str, numbers: str) -> str:
    only = f", specialist_type=[{specialist_type!r}]" if specialist_type else ""
    return f"""You are agent {agent!r} working a task queue shared with other agents.

Where things stand: {numbers}

1. orchestrator_initialize_session(working_directory=<your project>, agent={agent!r}) joins the project's \
session (or orchestrator_resume_session(agent={agent!r}) to pick up your claims after a restart).
2. orchestrator_next_task(agent={agent!r}{only}) claims the best ready task and returns its brief: the task, \
a Markdown prompt for the specialist role, the results of its dependencies and instructions. \
{WHEN_NOTHING_IS_READY}
3. Do the work the brief describes. Before lease_expires_at, renew with \
orchestrator_execute_task(task_id=…, agent={agent!r}).
4. Hand it back: orchestrator_complete_task(task_id=…, summary=<one paragraph>, detailed_work=<the full \
result>, next_action=complete, agent={agent!r}, request_id=<new key>). If you cannot go on, use \
next_action=blocked with the reason as summary; to give the task back to the queue, next_action=needs_revision \
(or orchestrator_update_task(status=pending)).
5. A parent task waits for its subtasks. When it is handed to you, its subtasks are done: roll them up with \
orchestrator_synthesize_results(parent_task_id=…, complete_parent=true).
6. Go back to step 2. Pass the same agent on every call; errors say what to do next.
"""


def break_down_text(goal: str) -> str:
    return f"""Plan this goal as one task tree with a single orchestrator_plan_task call:

Goal: {goal}

1. The root task is the goal: title (short, imperative), description (what done means), task_type=breakdown.
2. subtasks: the steps, each with title, description, specialist_type (who does it: analyst, coder, tester, \
documenter, reviewer, architect, devops, researcher, coordinator or generic), priority and, where useful, \
its own subtasks (the tree may go deeper).
3. Give a subtask a key, and let a later sibling wait for it with depends_on=[<that key>]; depends_on names \
only EARLIER siblings, so list the steps in the order they can run. Independent steps have no depends_on and \
can run in parallel on several agents.
4. A parent waits for all of its subtasks; when they are done it becomes ready, and whoever gets it rolls them \
up with orchestrator_synthesize_results(complete_parent=true).

Example:
orchestrator_plan_task(title="Ship feature X", description="…", task_type="breakdown", subtasks=[
  {{"key": "design", "title": "Design X", "description": "…", "specialist_type": "architect"}},
  {{"key": "build", "title": "Implement X", "description": "…", "specialist_type": "coder", \
"depends_on": ["design"]}},
  {{"title": "Test X", "description": "…", "specialist_type": "tester", "depends_on": ["build"]}}])

Then agents work it with orchestrator_next_task (see the orchestrator_work_loop prompt).
"""

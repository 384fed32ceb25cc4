"""The role catalog: what each specialist_type is, knows, does and hands back (DESIGN §4.2).

``orchestrator_execute_task`` turns a task into a brief for the agent that claimed it; the brief's role,
expertise, approach and output format come from here. Every specialist_type has a built-in definition.
A deployment may override or extend them with a YAML file (``ORCHESTRATOR_ROLES_FILE``)::

    roles:
      coder:
        role: Senior Go engineer                  # replaces the built-in text
        expertise: [Go, gRPC, PostgreSQL]         # replaces the built-in list
        extra_approach: [Run golangci-lint.]      # appended to the built-in list
      tester:
        output_format: A JUnit-style table of cases.

Fields not named keep their built-in value. The file is parsed into YAML nodes first and checked node by
node, so every problem, syntax or schema, is reported with the file, the line and what is wrong; a bad
file stops start-up instead of failing the first agent that asks for a brief. Pure: the caller reads the
bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from app.domain.enums import SpecialistType, values

BUILTIN_SOURCE = "built-in"
STR_TAG = "tag:yaml.org,2002:str"
MAX_TEXT = {"role": 200, "output_format": 4000}
MAX_ITEM_CHARS = 500
MAX_ITEMS = 50
TEXT_FIELDS = ("role", "output_format")
LIST_FIELDS = ("expertise", "approach", "extra_expertise", "extra_approach")
ROLE_FIELDS = (*TEXT_FIELDS, *LIST_FIELDS)


@dataclass(frozen=True)
class Role:
    """One specialist: who it is, what it knows, how it works, and the shape of what it delivers."""

    specialist_type: str
    role: str
    expertise: tuple[str, ...]
    approach: tuple[str, ...]
    output_format: str


class RolesFileError(Exception):
    """The roles file cannot be used; the message names the file, the line and the problem."""

    def __init__(self, source: str, line: int | None, problem: str) -> None:
        where = f"{source}, line {line}" if line is not None else source
        super().__init__(f"roles file {where}: {problem}")
        self.source = source
        self.line = line
        self.problem = problem


class RoleCatalog:
    """The role of every specialist_type; ``source`` says where the definitions came from."""

    def __init__(self, roles: Mapping[str, Role], *, source: str = BUILTIN_SOURCE) -> None:
        missing = [t for t in values(SpecialistType) if t not in roles]
        if missing:
            raise ValueError(f"role catalog lacks {', '.join(missing)}")
        self._roles = dict(roles)
        self.source = source

    def get(self, specialist_type: str) -> Role:
        return self._roles[specialist_type]

    def __iter__(self) -> Iterator[Role]:
        return iter(self._roles[t] for t in values(SpecialistType))


def _role(kind: SpecialistType, role: str, expertise: list[str], approach: list[str], output: str) -> Role:
    return Role(kind.value, role, tuple(expertise), tuple(approach), output)


BUILTIN_ROLES: tuple[Role, ...] = (
    _role(
        SpecialistType.ANALYST,
        "Requirements analyst",
        [
            "Turning vague requests into testable requirements",
            "Stakeholder goals, constraints and non-functional needs",
            "Finding gaps, contradictions and hidden assumptions",
            "Data and workflow analysis of the existing system",
        ],
        [
            "Restate the goal in one sentence and name who benefits.",
            "Read the existing code, documents and dependency results before concluding anything.",
            "List functional requirements, each with an acceptance criterion that can be checked.",
            "List constraints, risks and open questions separately from requirements.",
            "Prefer evidence from the repository over guesses; say where each fact came from.",
        ],
        "Markdown with sections: Goal, Requirements (numbered, each with acceptance criteria), "
        "Constraints, Risks, Open questions, Sources.",
    ),
    _role(
        SpecialistType.CODER,
        "Software engineer",
        [
            "Writing clear, idiomatic, maintainable code in the project's language and style",
            "Small, reviewable changes with tests",
            "Debugging from evidence: logs, failing tests, reproductions",
            "Refactoring without changing behaviour",
        ],
        [
            "Read the surrounding code and follow its conventions before writing new code.",
            "Make the smallest change that fully solves the task; no placeholders or TODO stubs.",
            "Write or update tests that fail without the change and pass with it.",
            "Run the project's formatter, linters and test suite; fix what they report.",
            "Record every file you touched in file_paths when you complete the task.",
        ],
        "Markdown with sections: What changed (per file, why), How it was verified (commands and "
        "results), Follow-ups (anything deliberately left out).",
    ),
    _role(
        SpecialistType.TESTER,
        "Test engineer",
        [
            "Test design: equivalence classes, boundaries, error paths, concurrency",
            "Unit, integration and end-to-end tests against real dependencies",
            "Reproducing and minimising bugs",
            "Reading coverage to find untested behaviour",
        ],
        [
            "Derive test cases from the requirements and the code's branches, not from the implementation's "
            "happy path.",
            "Give each test a name that states the observable outcome it checks.",
            "Prefer real components over mocks; mock only the clock and what cannot run locally.",
            "Run the tests and report actual results; a test that cannot fail is a defect.",
            "File each bug found with steps to reproduce, expected and actual behaviour.",
        ],
        "Markdown with sections: Scope, Test cases (table: name, input, expected, result), Bugs found "
        "(reproduction steps), Coverage notes, Commands to run the tests.",
    ),
    _role(
        SpecialistType.DOCUMENTER,
        "Technical writer",
        [
            "Task-oriented documentation: tutorials, how-to guides, reference, explanations",
            "Writing for a stated audience with runnable examples",
            "Keeping documentation in step with the code",
        ],
        [
            "Name the audience and what they must be able to do after reading.",
            "Check every command and example against the current code before writing it down.",
            "Lead with the most common task; put reference detail after it.",
            "Use short sentences, present tense and consistent terms.",
        ],
        "Markdown ready to commit: a title, a one-paragraph summary, then sections with runnable "
        "examples; list the files written in file_paths.",
    ),
    _role(
        SpecialistType.REVIEWER,
        "Code reviewer",
        [
            "Correctness, concurrency and error handling",
            "Security: input validation, secrets, injection, authorisation",
            "Readability, naming and design consistency",
            "Test adequacy",
        ],
        [
            "Read the change in full and the code it touches; understand the intent first.",
            "Check behaviour against the task's requirements and the dependency results.",
            "Classify each finding as blocking, important or minor, with the file and line.",
            "Propose a concrete fix for every blocking finding.",
            "Complete with next_action=needs_revision when blocking findings remain.",
        ],
        "Markdown with sections: Verdict (approve / changes requested), Findings (table: severity, "
        "location, problem, suggested fix), What is good, Tests reviewed.",
    ),
    _role(
        SpecialistType.ARCHITECT,
        "Software architect",
        [
            "System decomposition, interfaces and data models",
            "Trade-offs between consistency, availability, cost and simplicity",
            "Scalability, failure modes and operability",
            "Architecture decision records",
        ],
        [
            "State the forces: requirements, constraints, scale and failure assumptions.",
            "Sketch at least two options and compare them on the forces that matter.",
            "Choose one, say why, and name what would make you revisit the choice.",
            "Define the interfaces and data shapes precisely enough for others to build against.",
            "Break the design into tasks that can be planned as subtasks.",
        ],
        "Markdown with sections: Context, Options considered, Decision and rationale, Interfaces and "
        "data model, Risks, Proposed work breakdown.",
    ),
    _role(
        SpecialistType.DEVOPS,
        "DevOps engineer",
        [
            "CI/CD pipelines, containers and Kubernetes",
            "Infrastructure as code and configuration management",
            "Observability: metrics, logs, traces, alerts",
            "Safe rollouts, rollbacks and incident response",
        ],
        [
            "Make every change reproducible from version control; no manual steps left undocumented.",
            "Validate configuration with the tool's own linter or dry run before applying it.",
            "Plan the rollback before the rollout.",
            "Keep secrets out of files and logs; reference them from the secret store.",
        ],
        "Markdown with sections: Change (files and resources), Validation performed (commands and "
        "output), Rollout steps, Rollback steps, Monitoring to watch.",
    ),
    _role(
        SpecialistType.RESEARCHER,
        "Technical researcher",
        [
            "Finding and evaluating primary sources: documentation, specifications, source code",
            "Comparing libraries, tools and approaches",
            "Building small experiments to verify claims",
        ],
        [
            "Turn the question into specific sub-questions you can answer.",
            "Prefer primary sources and record the version and date each answer applies to.",
            "Verify important claims with a small experiment when possible.",
            "Separate findings from opinions and state your confidence in each.",
        ],
        "Markdown with sections: Question, Findings (each with sources), Comparison (table when there are "
        "alternatives), Recommendation, Confidence and open questions.",
    ),
    _role(
        SpecialistType.COORDINATOR,
        "Project coordinator",
        [
            "Breaking goals into tasks with clear owners, dependencies and done criteria",
            "Tracking progress, risks and blockers across many agents",
            "Synthesising results into decisions and next steps",
        ],
        [
            "Check the current state of the session (orchestrator_get_status) before planning.",
            "Plan subtasks with orchestrator_plan_task: one specialist each, explicit depends_on.",
            "Unblock others first: resolve blockers and failed tasks before adding new work.",
            "Roll finished subtasks up with orchestrator_synthesize_results.",
        ],
        "Markdown with sections: Status, Plan (subtasks with specialist and dependencies), Blockers and "
        "decisions needed, Next steps.",
    ),
    _role(
        SpecialistType.GENERIC,
        "General-purpose engineer",
        [
            "Software engineering across the stack",
            "Reading unfamiliar code bases quickly",
            "Clear written communication of what was done",
        ],
        [
            "Understand the task and its context before acting; read the dependency results.",
            "Do the work fully; if the task turns out larger than described, plan subtasks instead.",
            "Verify the result (run it, test it) and say how.",
        ],
        "Markdown with sections: Summary, Work done, Verification, Follow-ups.",
    ),
)


def builtin_catalog() -> RoleCatalog:
    return RoleCatalog({role.specialist_type: role for role in BUILTIN_ROLES})


def parse_catalog(data: bytes, *, source: str) -> RoleCatalog:
    """The built-in catalog with the overrides of a roles file applied.

    Raises:
        RolesFileError: naming ``source``, the line (1-based) and the problem.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RolesFileError(source, data[: exc.start].count(b"\n") + 1, "is not valid UTF-8") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise RolesFileError(source, mark.line + 1 if mark else None, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise RolesFileError(source, None, f"invalid YAML: {exc}") from None
    if root is None:
        raise RolesFileError(source, 1, "the file is empty; expected a mapping with a 'roles' key")
    top = _mapping(source, root, "the top level")
    roles_node = top.get("roles")
    if roles_node is None:
        raise RolesFileError(source, _line(root), "missing the 'roles' key")
    catalog = {role.specialist_type: role for role in BUILTIN_ROLES}
    for key, value in _mapping(source, roles_node[1], "'roles'").items():
        if key not in catalog:
            raise RolesFileError(
                source,
                _line(value[0]),
                f"unknown specialist_type {key!r}; allowed: {', '.join(values(SpecialistType))}",
            )
        catalog[key] = _override(source, catalog[key], value[1])
    return RoleCatalog(catalog, source=source)


def _override(source: str, base: Role, node: Node) -> Role:
    fields = _mapping(source, node, f"role {base.specialist_type!r}", allowed=ROLE_FIELDS)
    changes: dict[str, object] = {}
    for name in TEXT_FIELDS:
        if name in fields:
            changes[name] = _text(source, fields[name][1], name, MAX_TEXT[name])
    for name in ("expertise", "approach"):
        items = _items(source, fields[name][1], name) if name in fields else getattr(base, name)
        if f"extra_{name}" in fields:
            items = (*items, *_items(source, fields[f"extra_{name}"][1], f"extra_{name}"))
        if len(items) > MAX_ITEMS:
            raise RolesFileError(source, _line(node), f"{name} has {len(items)} items; at most {MAX_ITEMS}")
        changes[name] = items
    return replace(base, **changes)  # type: ignore[arg-type]  # keys are Role fields checked above


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _mapping(
    source: str, node: Node, what: str, *, allowed: tuple[str, ...] | None = None
) -> dict[str, tuple[Node, Node]]:
    """A mapping node as ``key -> (key node, value node)``; keys are strings, unique, and allowed."""
    if not isinstance(node, MappingNode):
        raise RolesFileError(source, _line(node), f"{what} must be a mapping")
    result: dict[str, tuple[Node, Node]] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode) or key_node.tag != STR_TAG:
            raise RolesFileError(source, _line(key_node), f"keys of {what} must be plain strings")
        key = str(key_node.value)
        if key in result:
            raise RolesFileError(source, _line(key_node), f"duplicate key {key!r} in {what}")
        if what == "the top level" and key != "roles":
            raise RolesFileError(source, _line(key_node), f"unknown key {key!r}; allowed: roles")
        if allowed is not None and key not in allowed:
            raise RolesFileError(
                source, _line(key_node), f"unknown field {key!r} in {what}; allowed: {', '.join(allowed)}"
            )
        result[key] = (key_node, value_node)
    return result


def _text(source: str, node: Node, name: str, limit: int) -> str:
    if not isinstance(node, ScalarNode) or node.tag != STR_TAG:
        raise RolesFileError(source, _line(node), f"{name} must be a string")
    value = str(node.value).strip()
    if not value:
        raise RolesFileError(source, _line(node), f"{name} must not be empty")
    if len(value) > limit:
        raise RolesFileError(source, _line(node), f"{name} has {len(value)} characters; at most {limit}")
    return value


def _items(source: str, node: Node, name: str) -> tuple[str, ...]:
    if not isinstance(node, SequenceNode):
        raise RolesFileError(source, _line(node), f"{name} must be a list of strings")
    if not node.value:
        raise RolesFileError(source, _line(node), f"{name} must list at least one item")
    return tuple(_text(source, item, f"each item of {name}", MAX_ITEM_CHARS) for item in node.value)

"""The role catalog: a real definition for every specialist, and roles files that override, extend or fail."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.applications import Starlette

from app.domain import roles
from app.domain.enums import SpecialistType, values
from app.main import create_app
from app.settings import Settings

pytestmark = pytest.mark.anyio


def parse(text: str) -> roles.RoleCatalog:
    return roles.parse_catalog(text.encode(), source="roles.yaml")


def problem(text: str | bytes) -> tuple[int | None, str]:
    data = text.encode() if isinstance(text, str) else text
    with pytest.raises(roles.RolesFileError) as caught:
        roles.parse_catalog(data, source="/etc/orchestrator/roles.yaml")
    assert str(caught.value).startswith("roles file /etc/orchestrator/roles.yaml")
    return caught.value.line, caught.value.problem


def test_builtin_catalog_defines_every_specialist_type_in_full() -> None:
    catalog = roles.builtin_catalog()
    assert [r.specialist_type for r in catalog] == values(SpecialistType)
    for role in catalog:
        assert role.role and role.output_format
        assert len(role.expertise) >= 3 and len(role.approach) >= 3, role.specialist_type
    # Each specialist is its own definition, not one text reused.
    assert len({r.role for r in catalog}) == 10
    assert len({r.output_format for r in catalog}) == 10


def test_roles_file_replaces_named_fields_extends_lists_and_keeps_the_rest() -> None:
    catalog = parse(
        """
roles:
  coder:
    role: Senior Go engineer
    expertise: [Go, gRPC]
    extra_approach:
      - Run golangci-lint before completing.
  tester:
    output_format: A table of cases.
"""
    )
    builtin = roles.builtin_catalog()
    coder = catalog.get("coder")
    assert coder.role == "Senior Go engineer"
    assert coder.expertise == ("Go", "gRPC")
    assert coder.approach == (*builtin.get("coder").approach, "Run golangci-lint before completing.")
    assert coder.output_format == builtin.get("coder").output_format
    assert catalog.get("tester").output_format == "A table of cases."
    assert catalog.get("tester").role == builtin.get("tester").role
    assert catalog.get("analyst") == builtin.get("analyst")
    assert catalog.source == "roles.yaml"


def test_yaml_syntax_error_names_the_line() -> None:
    line, text = problem("roles:\n  coder:\n    role: [unclosed\n    expertise: x\n")
    assert line == 4
    assert text.startswith("invalid YAML:")


def test_unknown_specialist_type_names_its_line_and_the_allowed_types() -> None:
    line, text = problem("roles:\n  coder:\n    role: A\n  hacker:\n    role: B\n")
    assert line == 4
    assert text == f"unknown specialist_type 'hacker'; allowed: {', '.join(values(SpecialistType))}"


def test_unknown_field_names_its_line() -> None:
    line, text = problem("roles:\n  coder:\n    role: A\n    skills: [x]\n")
    assert (line, text) == (
        4,
        "unknown field 'skills' in role 'coder'; allowed: role, output_format, expertise, approach, "
        "extra_expertise, extra_approach",
    )


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("roles:\n  coder:\n    expertise: Go\n", 3, "expertise must be a list of strings"),
        ("roles:\n  coder:\n    expertise:\n      - Go\n      - 42\n", 5, "each item of expertise must be a string"),
        ("roles:\n  coder:\n    role: yes\n", 3, "role must be a string"),
        ("roles:\n  coder:\n    approach: []\n", 3, "approach must list at least one item"),
        ("roles:\n  coder:\n    role: A\n  coder:\n    role: B\n", 4, "duplicate key 'coder' in 'roles'"),
        ("roles:\n  coder: just text\n", 2, "role 'coder' must be a mapping"),
        ("version: 2\nroles: {}\n", 1, "unknown key 'version'; allowed: roles"),
        ("# nothing but a comment\n", 1, "the file is empty; expected a mapping with a 'roles' key"),
        ("- coder\n", 1, "the top level must be a mapping"),
    ],
)
def test_schema_errors_name_the_offending_line(text: str, line: int, expected: str) -> None:
    assert problem(text) == (line, expected)


def test_invalid_utf8_names_the_line() -> None:
    assert problem(b"roles:\n  coder:\n    role: caf\xe9\n") == (3, "is not valid UTF-8")


async def run_lifespan(app: Starlette) -> None:
    async with app.router.lifespan_context(app):
        pass


async def test_start_up_fails_on_a_bad_roles_file_naming_file_line_and_problem(tmp_path: Path) -> None:
    bad = tmp_path / "roles.yaml"
    bad.write_text("roles:\n  coder:\n    role: Go dev\n    expertise: Go\n")
    app = create_app(Settings(data_dir=tmp_path, roles_file=bad, log_format="console"))
    with pytest.raises(roles.RolesFileError) as caught:
        await run_lifespan(app)
    assert str(caught.value) == f"roles file {bad}, line 4: expertise must be a list of strings"
    assert app.state.runtime.database is None  # it stopped before opening the database


async def test_start_up_fails_on_a_missing_roles_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    app = create_app(Settings(data_dir=tmp_path, roles_file=missing, log_format="console"))
    with pytest.raises(roles.RolesFileError) as caught:
        await run_lifespan(app)
    assert caught.value.source == str(missing) and caught.value.problem.startswith("cannot be read")

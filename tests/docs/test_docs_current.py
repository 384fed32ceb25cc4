"""The docs tell the truth about this build: the tool reference is regenerated, the operations guide is complete."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import AliasChoices

from app.settings import Settings
from app.tools.boundary import ERROR_CODES
from scripts import gen_tools_doc
from tests.support.promql import exported_names

pytestmark = pytest.mark.anyio

DOCS = Path(__file__).resolve().parents[2] / "docs"


def section(markdown: str, heading: str) -> str:
    """The text under a ``## heading`` up to the next heading of the same level."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown, re.MULTILINE | re.DOTALL)
    assert match is not None, f"docs/operations.md has no '## {heading}' section"
    return match.group(1)


def env_names(name: str, alias: object) -> list[str]:
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return [f"ORCHESTRATOR_{name.upper()}"]


async def test_tools_doc_matches_the_live_tool_schemas() -> None:
    expected = gen_tools_doc.render(await gen_tools_doc.list_tools())
    current = (DOCS / "tools.md").read_text()
    assert current == expected, "docs/tools.md is stale: run `python scripts/gen_tools_doc.py` and commit it"


def test_operations_configuration_lists_every_setting() -> None:
    table = section((DOCS / "operations.md").read_text(), "Configuration")
    wanted = [env_names(name, field.validation_alias) for name, field in Settings.model_fields.items()]
    missing = [names for names in wanted if not any(f"`{env}`" in table for env in names)]
    assert not missing, f"settings missing from docs/operations.md#configuration: {missing}"


def test_operations_troubleshooting_explains_every_error_code() -> None:
    text = section((DOCS / "operations.md").read_text(), "Troubleshooting")
    codes = ERROR_CODES
    rows = {m.group(1) for m in re.finditer(r"^\| `([a-z_]+)` \|", text, re.MULTILINE)}
    assert sorted(rows) == sorted(codes)


def test_operations_metrics_table_names_exactly_the_exported_series() -> None:
    text = section((DOCS / "operations.md").read_text(), "Observe")
    documented = {m.group(1) for m in re.finditer(r"^\| `(orchestrator_[a-z_]+)[{`]", text, re.MULTILINE)}
    families = {n for n in exported_names() if not n.endswith(("_created", "_bucket", "_count", "_sum"))}
    families |= {n.removesuffix("_bucket") for n in exported_names() if n.endswith("_bucket")}
    assert documented == families

"""Generate docs/tools.md from the live tool schemas: what an agent's client sees in ``tools/list``.

Run ``python scripts/gen_tools_doc.py`` (or ``python -m scripts.gen_tools_doc``) after changing a tool;
``--check`` exits 1 when docs/tools.md is stale, and the test suite runs the same comparison. The app is
built with ``create_app`` and asked for its tools in-process: no database, no network.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLS_DOC = REPO_ROOT / "docs" / "tools.md"
HINTS = (
    ("read_only_hint", "read-only"),
    ("destructive_hint", "destructive"),
    ("idempotent_hint", "idempotent"),
    ("open_world_hint", "open-world"),
)


async def list_tools() -> list[Any]:
    from mcp.server.mcpserver import MCPServer

    from app.main import create_app
    from app.settings import Settings
    from app.tools import schema_compaction

    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(Settings(data_dir=Path(data_dir)))
        server = app.state.server
        # tools/list serves output schemas one level deep (the DESIGN §4 budget); this document shows the
        # whole result shapes, from the schemas the tools declare.
        declared = {tool.name: tool.output_schema for tool in await MCPServer.list_tools(server)}
        return [
            tool.model_copy(update={"output_schema": schema_compaction.compact(declared[tool.name])})
            for tool in await server.list_tools()
        ]


def cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def code(value: object) -> str:
    return "`" + json.dumps(value, ensure_ascii=False).replace("|", "\\|") + "`"


def ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def branches(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The non-null alternatives of a schema (``X | None`` is ``anyOf: [X, {type: null}]``)."""
    if "anyOf" not in schema:
        return [schema]
    return [b for alt in schema["anyOf"] if alt.get("type") != "null" for b in branches(alt)]


def type_of(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return f"[{ref_name(schema['$ref'])}](#{ref_name(schema['$ref']).lower()})"
    if "anyOf" in schema:
        names = [type_of(alt) for alt in schema["anyOf"]]
        return " or ".join(dict.fromkeys(names))
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}))}"
    if kind == "string" and "format" in schema:
        return f"string ({schema['format']})"
    if kind is None and "enum" in schema:
        return "enum"
    return str(kind or "any")


def constraints(schema: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for branch in branches(schema):
        if "enum" in branch:
            found.append("one of " + ", ".join(code(v) for v in branch["enum"]))
        for key, label in (
            ("minimum", "≥"),
            ("exclusiveMinimum", ">"),
            ("maximum", "≤"),
            ("exclusiveMaximum", "<"),
            ("minLength", "min length"),
            ("maxLength", "max length"),
            ("minItems", "min items"),
            ("maxItems", "max items"),
        ):
            if key in branch:
                found.append(f"{label} {branch[key]}")
        if "pattern" in branch:
            found.append(f"pattern `{branch['pattern']}`")
        if branch.get("type") == "array" and isinstance(branch.get("items"), dict):
            found.extend(f"each: {c}" for c in constraints(branch["items"]))
    return list(dict.fromkeys(found))


def nodes(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema and every ``anyOf`` alternative under it, outermost first."""
    return [schema, *(n for alt in schema.get("anyOf", []) for n in nodes(alt))]


def description_of(schema: dict[str, Any]) -> str:
    for candidate in (*nodes(schema), schema.get("items") or {}):
        if isinstance(candidate, dict) and candidate.get("description"):
            return cell(inspect.cleandoc(candidate["description"]))
    return ""


def fields_table(schema: dict[str, Any]) -> list[str]:
    properties: dict[str, Any] = schema.get("properties", {})
    if not properties:
        return ["(no fields)", ""]
    required = set(schema.get("required", []))
    lines = [
        "| name | type | required | default | allowed | description |",
        "|---|---|---|---|---|---|",
    ]
    for name, prop in properties.items():
        default = code(prop["default"]) if "default" in prop else ""
        lines.append(
            f"| `{name}` | {cell(type_of(prop))} | {'yes' if name in required else 'no'} | {default} "
            f"| {cell('; '.join(constraints(prop)))} | {description_of(prop)} |"
        )
    return [*lines, ""]


def annotations_line(tool: Any) -> str:
    notes = tool.annotations
    if notes is None:
        return "Annotations: none."
    parts = [f"{label}: {'yes' if getattr(notes, attr) else 'no'}" for attr, label in HINTS]
    return "Annotations: " + ", ".join(parts) + "."


def success_schema(tool: Any) -> dict[str, Any]:
    """The success branch of the output schema (list_tools adds the error envelope as a second branch)."""
    schema: dict[str, Any] = tool.output_schema or {}
    alternatives = schema.get("anyOf")
    return dict(alternatives[0]) if alternatives else schema


def collect_types(tools: list[Any]) -> dict[str, dict[str, Any]]:
    """Every ``$defs`` model, once; a name that means two different models gets the tool's name too."""
    found: dict[str, dict[str, Any]] = {}
    for tool in tools:
        for schema in (tool.input_schema, tool.output_schema or {}):
            for name, definition in schema.get("$defs", {}).items():
                if name in found and found[name] != definition:
                    name = f"{name} ({tool.name})"
                found.setdefault(name, definition)
    return dict(sorted(found.items()))


def render(tools: list[Any]) -> str:
    from app.tools.boundary import ERROR_CODES

    codes = ERROR_CODES
    tools = sorted(tools, key=lambda t: t.name)
    out = [
        "# Tools",
        "",
        "<!-- Generated by scripts/gen_tools_doc.py from the live tool schemas. Do not edit by hand:",
        "     change the tool, then run `python scripts/gen_tools_doc.py`. -->",
        "",
        f"The service exposes {len(tools)} MCP tools on `/mcp`. Every result carries `structuredContent` (and the "
        "same JSON as text). A failure is a normal result with `isError: true` and "
        '`{"error": {code, message, field, value, allowed, retryable, hint}}`; every output schema admits '
        "that envelope beside the success shape. Error codes: " + ", ".join(f"`{c}`" for c in codes) + ". "
        "What each means and what to do: [operations.md](operations.md#troubleshooting).",
        "",
        *[f"- [`{t.name}`](#{t.name}) — {cell(t.title or '')}" for t in tools],
        "",
    ]
    for tool in tools:
        out += [f"## {tool.name}", ""]
        if tool.title:
            out += [f"**{cell(tool.title)}**", ""]
        out += [inspect.cleandoc(tool.description or ""), "", annotations_line(tool), ""]
        out += ["### Parameters", "", *fields_table(tool.input_schema)]
        out += ["### Result", "", *fields_table(success_schema(tool))]
    types = collect_types(tools)
    if types:
        out += ["## Types", "", "Models referenced by the parameters and results above.", ""]
        for name, definition in types.items():
            out += [f"### {name}", ""]
            if definition.get("description"):
                out += [cell(inspect.cleandoc(definition["description"])), ""]
            if definition.get("enum"):
                out += ["One of " + ", ".join(code(v) for v in definition["enum"]) + ".", ""]
            else:
                out += fields_table(definition)
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/tools.md is not current")
    args = parser.parse_args(argv)
    text = render(anyio.run(list_tools))
    if args.check:
        current = TOOLS_DOC.read_text() if TOOLS_DOC.exists() else ""
        if current != text:
            print("docs/tools.md is stale: run `python scripts/gen_tools_doc.py`", file=sys.stderr)
            return 1
        return 0
    TOOLS_DOC.write_text(text)
    print(f"wrote {TOOLS_DOC.relative_to(REPO_ROOT)} ({len(text.splitlines())} lines)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    sys.exit(main())

"""Every replica gets the same board cookie key from a Secret (or no board at all).

The board's login cookie is signed with ``ORCHESTRATOR_BOARD_SECRET``; a replica without it signs with
a random key of its own and refuses the cookies of the others, so behind a Service a login would hold
only now and then. Reads three renderings of the chart and checks what each must say.

Usage: python board_key.py DEFAULT.yaml EXISTING_SECRET.yaml BOARD_OFF.yaml
(renderings with replicaCount=3 and a PostgreSQL URL; the second with board.existingSecret=board-keys,
the third with board.enabled=false)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml


def objects(path: str) -> dict[tuple[str, str], dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def one(found: dict[tuple[str, str], dict[str, Any]], kind: str) -> dict[str, Any]:
    (obj,) = [o for (k, _), o in found.items() if k == kind]
    return obj


def board_env(found: dict[tuple[str, str], dict[str, Any]]) -> tuple[str, dict[str, Any] | None]:
    deployment = one(found, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container.get("env", [])}
    enabled = one(found, "ConfigMap")["data"].get("ORCHESTRATOR_BOARD")
    key = env.get("ORCHESTRATOR_BOARD_SECRET")
    return enabled, key["valueFrom"]["secretKeyRef"] if key else None


def main(default: str, existing: str, off: str) -> list[str]:
    problems = []
    rendered = objects(default)
    enabled, ref = board_env(rendered)
    secret = rendered.get(("Secret", ref["name"])) if ref else None
    if enabled != "true" or ref is None:
        problems.append(f"default: board {enabled!r}, key from {ref}: want the board on with a key from a Secret")
    elif secret is None or ref["key"] != "board-secret" or not secret["data"].get("board-secret"):
        problems.append(f"default: the key comes from {ref}, which the chart's Secrets do not hold")
    enabled, ref = board_env(objects(existing))
    if ref != {"name": "board-keys", "key": "board-secret"}:
        problems.append(f"board.existingSecret=board-keys: the key comes from {ref}")
    enabled, ref = board_env(objects(off))
    if enabled != "false" or ref is not None:
        problems.append(f"board.enabled=false: board {enabled!r}, key from {ref}: want it off and no key")
    return problems


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    found = main(*sys.argv[1:])
    for problem in found:
        print(f"ERROR {problem}", file=sys.stderr)
    if not found:
        print("every replica reads the board's cookie key from one Secret; board.enabled=false turns it off")
    sys.exit(1 if found else 0)

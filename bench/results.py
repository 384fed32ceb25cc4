"""The JSON document a benchmark writes with ``--json``: when, how and where it ran, then its numbers."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def write_results(path: Path, module: str, argv: list[str] | None, runs: list[Any], **extra: Any) -> None:
    """Write the date, the command line, the machine, ``extra`` and ``runs`` to ``path`` (indented JSON)."""
    document = {
        "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "command": shlex.join(["python", "-m", module, *(argv if argv is not None else sys.argv[1:])]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        **extra,
        "runs": runs,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")

#!/usr/bin/env bash
# The README's quick start: installs the service into .venv, saying what it does as it goes, then serves
# it on the embedded SQLite default (./.orchestrator/orchestrator.db, created and migrated on start).
# Extra arguments go to `task-orchestrator serve` (e.g. --port 8001). Needs Python 3.11+ ($PYTHON, else
# python3). The whole pip output is kept in .venv/install.log.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'quick start: %s\n' "$*" >&2; }

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  say "needs Python 3.11 or newer; $python is $("$python" --version 2>&1 || echo missing) (set PYTHON=/path/to/python3.11)"
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  say "creating the virtualenv .venv ($("$python" --version))"
  "$python" -m venv .venv
fi

say "installing task-orchestrator and its dependencies into .venv (about a minute the first time):"
# One name per package pip collects, on one growing line, so the wait is never silent.
if ! PYTHONUNBUFFERED=1 .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off -e . 2>&1 |
  tee .venv/install.log |
  awk '
    /Installing build dependencies: started/ { printf " (build tools)"; fflush() }
    /^Collecting / { name = $2; sub(/[<>=!~;[].*/, "", name); printf " %s", name; fflush() }
    /^Installing collected packages/ { printf "\n  unpacking into .venv"; fflush() }
    END { print "" }' >&2; then
  tail -20 .venv/install.log >&2
  say "pip install failed; the whole output is in .venv/install.log"
  exit 1
fi
say "installed $(.venv/bin/task-orchestrator --help >/dev/null && .venv/bin/python -c 'from importlib.metadata import version; print("task-orchestrator", version("task-orchestrator"))')"
say "starting the service on the embedded SQLite default; Ctrl-C stops it"
exec .venv/bin/task-orchestrator serve "$@"

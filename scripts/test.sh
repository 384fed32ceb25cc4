#!/usr/bin/env bash
# The whole test suite, from a fresh checkout: installs the project with its test extras into .venv,
# starts a throwaway PostgreSQL cluster on loopback (unless ORCHESTRATOR_TEST_DATABASE_URL is set),
# makes prometheus/promtool and Debian's chromium available,
# runs pytest with coverage of app/, and stops the cluster. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
. .venv/bin/activate
echo "test.sh: installing the project with its test extras into .venv (a minute or two the first time)" >&2
python -m pip install -q --disable-pip-version-check -e '.[test]'

if [ -z "${ORCHESTRATOR_TEST_DATABASE_URL:-}" ]; then
  PG_DIR="$(mktemp -d /tmp/orchestrator-test-pg.XXXXXX)"
  PG_PORT="$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  trap 'bash .ci/pg.sh stop "$PG_DIR"; rm -rf "$PG_DIR"' EXIT
  ORCHESTRATOR_TEST_DATABASE_URL="$(bash .ci/pg.sh start "$PG_DIR" "$PG_PORT")"
  export ORCHESTRATOR_TEST_DATABASE_URL
fi
# The board's browser tests drive Debian's Chromium (a browser downloaded by the test tool fails here);
# in CI a missing browser fails those tests, so it is installed here like PostgreSQL in .ci/pg.sh.
if [ ! -x /usr/bin/chromium ]; then
  echo "installing Chromium (/usr/bin/chromium missing)" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >&2
fi
# The observability tests run the real prometheus and promtool (Debian's package, unpacked, not installed).
PATH="$(bash .ci/prometheus.sh /tmp/orchestrator-prometheus):$PATH"
export PATH
python -m pytest --cov=app --cov-report=term "$@"

#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster on loopback and prints its URL on stdout.
# Usage: .ci/pg.sh start DIR PORT | .ci/pg.sh stop DIR
# PG_FSYNC=on starts it durable, as production runs PostgreSQL (fsync, synchronous_commit and
# full_page_writes on; the benchmarks use it); the default, for tests, flushes nothing.
# As root the server runs as the postgres user (initdb refuses root).
set -euo pipefail
cmd=$1 dir=$2
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if ! command -v initdb >/dev/null 2>&1; then
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && PATH="$d:$PATH"; done
fi
if ! command -v initdb >/dev/null 2>&1; then
  echo "installing PostgreSQL (initdb not on PATH)" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && PATH="$d:$PATH"; done
fi
case "$cmd" in
  start)
    port=$3
    durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    if [ "${PG_FSYNC:-off}" = on ]; then
      durability="-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
    fi
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_pg initdb -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    fi
    as_pg pg_ctl -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir $durability -c max_connections=300" start >/dev/null
    echo "postgresql://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    as_pg pg_ctl -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    ;;
  *) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac

#!/bin/sh
# Entrypoint of the postgres:15 STAND-IN that `deploy/check.sh --compose` builds from Debian's
# postgresql-15 (Docker Hub cannot be reached there). Like the official image: as root it prepares the
# data directory and drops to the postgres user; on first start it initialises the cluster (POSTGRES_USER,
# POSTGRES_PASSWORD, POSTGRES_DB) behind a temporary server that listens on the Unix socket only, stops it,
# and then runs the real server on every address. A socket probe (pg_isready without --host) answers
# "ready" from that temporary server; compose.yaml's healthcheck probes over TCP for that reason.
set -eu
PGDATA=${PGDATA:-/var/lib/postgresql/data}
export PGDATA
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups /bin/sh "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  user=${POSTGRES_USER:-postgres}
  pwfile=$(mktemp)
  printf '%s\n' "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}" >"$pwfile"
  initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  pg_ctl --wait --options="-c listen_addresses=''" start
  database=${POSTGRES_DB:-$user}
  if [ "$database" != postgres ]; then
    createdb --username="$user" "$database"
  fi
  pg_ctl --wait --mode=fast stop
  echo "stand-in postgres: cluster initialised"
fi
exec postgres -c listen_addresses='*'

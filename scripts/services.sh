#!/usr/bin/env bash
# Starts the local services the tests need, if they are down, and waits until they answer.
# Idempotent: a running service is left alone. Exits non-zero with a clear message otherwise.
#   PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`) — the dk-state integration tests
#   (override the address with DK_TEST_PG_URL; then this script only checks 127.0.0.1:5432).
# Usage: scripts/services.sh
set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT=5432

pg_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" >/dev/null 2>&1; }

start_postgres() {
  if ! command -v pg_isready >/dev/null 2>&1 || ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "error: PostgreSQL is not installed (pg_isready/pg_ctlcluster missing)." >&2
    echo "       install it with: apt-get install -y postgresql" >&2
    return 1
  fi
  if pg_ready; then
    return 0
  fi
  local version
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$version" ]; then
    echo "error: no PostgreSQL cluster under /etc/postgresql; create one with: pg_createcluster 15 main" >&2
    return 1
  fi
  echo "starting PostgreSQL $version/main ..." >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 60); do
    if pg_ready; then
      return 0
    fi
    sleep 0.5
  done
  echo "error: PostgreSQL did not become ready on $PG_HOST:$PG_PORT within 30 s." >&2
  echo "       start it by hand: pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start" >&2
  echo "       and look at /var/log/postgresql/ for the reason" >&2
  return 1
}

start_postgres

#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need on a fresh machine first
# (graphviz for the dot-output test, dbt in a venv for the dbt runtime).
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v dot >/dev/null 2>&1 || need_apt+=(graphviz)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -d ../shared/fixtures ]; then
  echo "error: ../shared/fixtures is missing: the tests read the shared fixtures beside the repository" >&2
  exit 1
fi

bash scripts/services.sh

# The dbt runtime's tests run the real dbt (dbt-core + dbt-duckdb + dbt-postgres) from a venv;
# the script reuses a working one and prints the dbt path on its last line.
DK_DBT=$(bash scripts/dbt-venv.sh | tail -n 1)
export DK_DBT
cargo test --workspace --locked --no-fail-fast "$@"

#!/usr/bin/env bash
# Installs the real dbt (dbt-core + dbt-duckdb + dbt-postgres) into a virtualenv for the dbt runtime's
# tests, and prints the path of its `dbt` executable on the last line.
#   DK_DBT_VENV  where the venv lives (default: /var/tmp/dk-dbt-venv); reused when it already works.
# dbt-core 1.12 requires dbt-core-experimental-parser>=2.0.0b1, whose PyPI releases are source archives
# that download a wheel from the internet at build time; 2.0.0a4 is the newest one shipped as a wheel,
# and plain dbt never calls it, so the pin is overridden to that version.
set -euo pipefail

VENV=${DK_DBT_VENV:-/var/tmp/dk-dbt-venv}
PY=${PYTHON:-python3}

if [ -x "$VENV/bin/dbt" ] && "$VENV/bin/dbt" --version >/dev/null 2>&1; then
  echo "$VENV/bin/dbt"
  exit 0
fi
echo "installing dbt into $VENV ..." >&2
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip uv >&2
overrides=$(mktemp)
trap 'rm -f "$overrides"' EXIT
echo "dbt-core-experimental-parser==2.0.0a4" >"$overrides"
"$VENV/bin/uv" pip install --python "$VENV/bin/python" --prerelease=if-necessary-or-explicit \
  --override "$overrides" \
  "dbt-core==1.12.6" "dbt-duckdb==1.11.1" "dbt-postgres==1.11.0" >&2
"$VENV/bin/dbt" --version >&2
echo "$VENV/bin/dbt"

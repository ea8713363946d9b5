#!/usr/bin/env bash
# bench/apply: `dk apply` of 1,000 new PostgreSQL tables vs `psql -f` of the same DDL, in the same run.
# Goal (issue 4): dk apply <= 2x psql. Run by hand, never in CI.
#
#   bash bench/apply/run.sh                   # 1,000 tables, 3 timed runs each
#   N_TABLES=200 RUNS=1 bash bench/apply/run.sh
#   DK_BIN=/path/to/dk bash bench/apply/run.sh
#
# Environment: N_TABLES (1000), RUNS (3), PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres),
# DB (dk_bench_apply: dropped and re-created before every run), WORK (bench/apply/work), DK_BIN.
# dk is built with `cargo build --release -p dk-cli --no-default-features` (PostgreSQL only).
# The project generator is bench/refresh/gen.py.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
HERE=$BENCH/apply
N=${N_TABLES:-1000}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
DB=${DB:-dk_bench_apply}
WORK=${WORK:-$HERE/work}
PROJ=$WORK/project
mkdir -p "$WORK"

dk_binary --no-default-features
pg_isready -q || { echo "PostgreSQL at $PGHOST:$PGPORT is not ready; start it with scripts/services.sh" >&2; exit 1; }

secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", (b-a)/1e9}'; }
fresh() {  # an empty database and no state
  psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
  rm -rf "$PROJ/.dk"
}
# timed NAME CMD...: RUNS runs, each on a fresh database
timed() {
  local name=$1; shift; local i t0 t1 s all=()
  for i in $(seq "$RUNS"); do
    fresh; sync
    t0=$(now); "$@" >"$WORK/$name.out" 2>&1 || { echo "$name failed:"; tail -5 "$WORK/$name.out"; exit 1; }; t1=$(now)
    s=$(secs "$t0" "$t1"); all+=("$s"); printf '  %-34s run %d: %8ss\n' "$name" "$i" "$s"
    local n; n=$(psql -X -Atq -d "$DB" -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'bench'")
    [[ $n == "$N" ]] || { echo "$name created $n tables, not $N"; exit 1; }
  done
  printf '%s\n' "${all[@]}" | median >"$WORK/$name.median"
}

say "setup: $N tables, the DDL dk would run"
python3 "$ROOT/bench/refresh/gen.py" "$PROJ" --tables "$N" --database "$DB" --host "$PGHOST" --port "$PGPORT" --user "$PGUSER"
fresh
cd "$PROJ"
"$DK" plan -e bench --out "$WORK/plan.json" >/dev/null
python3 - "$WORK/plan.json" "$WORK/ddl.sql" <<'PY'
import json, sys
plan = json.load(open(sys.argv[1]))
with open(sys.argv[2], "w") as f:
    for c in plan["changes"]:
        for s in c["statements"]:
            f.write(s.rstrip().rstrip(";") + ";\n")
PY
echo "  $(wc -l <"$WORK/ddl.sql") statements for $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["changes"]))' "$WORK/plan.json") changes"

say "timing ($RUNS run(s) each, a fresh database before each)"
timed dk_apply_auto_approve "$DK" apply -e bench --auto-approve
# the saved plan is valid for a fresh state only (serial 0): re-plan is not needed after `fresh`
timed dk_apply_plan_file "$DK" apply -e bench "$WORK/plan.json"
timed psql_f psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -f "$WORK/ddl.sql"
timed psql_1_f psql -X -q -1 -v ON_ERROR_STOP=1 -d "$DB" -f "$WORK/ddl.sql"

say "results"
m() { cat "$WORK/$1.median"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
{
  echo "| measurement ($N tables) | median s | / psql -f |"
  echo "|---|---|---|"
  echo "| dk apply --auto-approve (plan + apply + state), $("$DK" --version) | $(m dk_apply_auto_approve) | $(ratio "$(m dk_apply_auto_approve)" "$(m psql_f)")x |"
  echo "| dk apply plan.json (apply + state) | $(m dk_apply_plan_file) | $(ratio "$(m dk_apply_plan_file)" "$(m psql_f)")x |"
  echo "| psql -f ddl.sql (autocommit per statement) | $(m psql_f) | 1.00x |"
  echo "| psql -1 -f ddl.sql (one transaction) | $(m psql_1_f) | $(ratio "$(m psql_1_f)" "$(m psql_f)")x |"
} | tee "$WORK/report.md"

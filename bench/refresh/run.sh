#!/usr/bin/env bash
# bench/refresh: `dk plan` (bulk refresh) on 10,000 managed PostgreSQL tables vs a per-table
# introspection loop (one catalog query per table, sent by psql), in the same run.
# Goals (issue 4): dk plan <= 2 s and >= 100x faster than the per-table loop. Run by hand, never in CI.
#
#   bash bench/refresh/run.sh                 # 10,000 tables, 3 timed runs each
#   N_TABLES=1000 RUNS=1 bash bench/refresh/run.sh
#   DK_BIN=/path/to/dk bash bench/refresh/run.sh   # time this binary, no cargo build
#
# Environment: N_TABLES (10000), RUNS (3), PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres),
# DB (dk_bench_refresh: dropped and re-created), WORK (bench/refresh/work), DK_BIN,
# PG_LOG (the server log, for counting statements; default /var/log/postgresql/postgresql-*-main.log).
# dk is built with `cargo build --release -p dk-cli --no-default-features` (PostgreSQL only: a release
# build of the embedded DuckDB engine takes ~20 min and is not needed here).
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
HERE=$BENCH/refresh
N=${N_TABLES:-10000}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
DB=${DB:-dk_bench_refresh}
WORK=${WORK:-$HERE/work}
PROJ=$WORK/project
mkdir -p "$WORK"

# ---- dk (PostgreSQL only: the embedded DuckDB engine is not needed here)
dk_binary --no-default-features
pg_isready -q || { echo "PostgreSQL at $PGHOST:$PGPORT is not ready; start it with scripts/services.sh" >&2; exit 1; }

secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", (b-a)/1e9}'; }
# timed NAME CMD...: RUNS runs, prints each and the median; the median lands in $WORK/NAME.median
timed() {
  local name=$1; shift; local i t0 t1 s all=()
  for i in $(seq "$RUNS"); do
    t0=$(now); "$@" >"$WORK/$name.out" 2>&1 || { echo "$name failed:"; tail -5 "$WORK/$name.out"; exit 1; }; t1=$(now)
    s=$(secs "$t0" "$t1"); all+=("$s"); printf '  %-28s run %d: %8ss\n' "$name" "$i" "$s"
  done
  printf '%s\n' "${all[@]}" | median >"$WORK/$name.median"
}

# ---- setup: the database, the project, the tables (psql -f of dk's own DDL), state recorded
say "setup: database $DB, $N tables"
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
python3 "$HERE/gen.py" "$PROJ" --tables "$N" --database "$DB" --host "$PGHOST" --port "$PGPORT" --user "$PGUSER"
cd "$PROJ"
t0=$(now); "$DK" plan -e bench --out "$WORK/plan.json" >"$WORK/first_plan.out"; t1=$(now)
echo "  first dk plan (empty database, $N creates): $(secs "$t0" "$t1")s"
python3 - "$WORK/plan.json" "$WORK/ddl.sql" <<'PY'
import json, sys
plan = json.load(open(sys.argv[1]))
with open(sys.argv[2], "w") as f:
    for c in plan["changes"]:
        for s in c["statements"]:
            f.write(s.rstrip().rstrip(";") + ";\n")
PY
t0=$(now); psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -f "$WORK/ddl.sql" >/dev/null; t1=$(now)
echo "  psql -f ddl.sql ($(wc -l <"$WORK/ddl.sql") statements): $(secs "$t0" "$t1")s"
"$DK" apply -e bench --auto-approve >"$WORK/record.out" 2>&1
grep -q "recorded in state" "$WORK/record.out" || { echo "dk apply did not record the tables:"; tail -5 "$WORK/record.out"; exit 1; }
rc=0; "$DK" plan -e bench --detailed-exitcode >"$WORK/check.out" 2>&1 || rc=$?
[[ $rc == 0 ]] || { echo "dk plan after setup is not clean (exit $rc):"; head -20 "$WORK/check.out"; exit 1; }
echo "  state: $("$DK" state list -e bench | wc -l) resources; dk plan: $(tail -1 "$WORK/check.out")"

# ---- statements dk sends for one plan, counted in the server log
# shellcheck disable=SC2012  # one known file name pattern
LOG=${PG_LOG:-$(ls /var/log/postgresql/postgresql-*-main.log 2>/dev/null | head -1 || true)}
STMTS="?"
if [[ -n $LOG && -r $LOG ]]; then
  psql -X -q -d postgres -c "ALTER DATABASE $DB SET log_statement = 'all'"
  off=$(stat -c %s "$LOG")
  "$DK" plan -e bench >/dev/null 2>&1
  sleep 1
  # log_line_prefix '%m [%p] %q%u@%d ': "... postgres@DB LOG:  statement: …" / "… LOG:  execute <unnamed>: …"
  STMTS=$(tail -c +"$((off + 1))" "$LOG" | grep -F "@$DB LOG:  " | grep -cE "LOG:  (statement|execute [^:]*): " || true)
  psql -X -q -d postgres -c "ALTER DATABASE $DB RESET log_statement"
  echo "  statements dk plan sent to $DB (server log $LOG): $STMTS"
else
  echo "  (server log not readable: no statement count; set PG_LOG)"
fi

# ---- the per-table loops (one query per table, each a round trip: psql waits for every answer)
python3 - "$N" "$WORK" <<'PY'
import sys
n, work = int(sys.argv[1]), sys.argv[2]
with open(f"{work}/peer_catalog.sql", "w") as f:
    for i in range(1, n + 1):
        f.write(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
            "col_description(a.attrelid, a.attnum), obj_description(a.attrelid, 'pg_class') "
            f"FROM pg_attribute a WHERE a.attrelid = 'bench.t_{i:05d}'::regclass "
            "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum;\n")
with open(f"{work}/peer_infoschema.sql", "w") as f:
    for i in range(1, n + 1):
        f.write(
            "SELECT column_name, data_type, is_nullable, character_maximum_length, numeric_precision, "
            "numeric_scale FROM information_schema.columns "
            f"WHERE table_schema = 'bench' AND table_name = 't_{i:05d}' ORDER BY ordinal_position;\n")
PY

say "timing ($RUNS run(s) each)"
timed dk_plan "$DK" plan -e bench
timed dk_lint "$DK" lint .
timed loop_pg_catalog psql -X -q -d "$DB" -f "$WORK/peer_catalog.sql" -o /dev/null
timed loop_information_schema psql -X -q -d "$DB" -f "$WORK/peer_infoschema.sql" -o /dev/null

say "results"
m() { cat "$WORK/$1.median"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.0f", a/b}'; }
{
  echo "| measurement ($N tables) | median s | round trips | dk is |"
  echo "|---|---|---|---|"
  echo "| dk plan (load + lint + bulk refresh + diff), $("$DK" --version) | $(m dk_plan) | $STMTS statements | |"
  echo "| dk lint (the load + lint part alone) | $(m dk_lint) | 0 | |"
  echo "| per-table loop, pg_catalog (1 query per table) | $(m loop_pg_catalog) | $N | $(ratio "$(m loop_pg_catalog)" "$(m dk_plan)")x faster |"
  echo "| per-table loop, information_schema (1 query per table) | $(m loop_information_schema) | $N | $(ratio "$(m loop_information_schema)" "$(m dk_plan)")x faster |"
} | tee "$WORK/report.md"

#!/usr/bin/env bash
# bench/sync: ROWS rows (default 10,000,000) PostgreSQL → DuckDB — `dk run` of a `sync` transform vs dlt
# (sql_table, backend=pyarrow) vs a plain `\copy (…) TO '/dev/null' (FORMAT binary)` of the same table
# (the floor: reading the rows out of PostgreSQL), in the same run, with peak RSS.
# Goals (issue and ../shared/BENCHMARKS.md P4): ≥ 3× faster than dlt, ≥ 50% of the COPY speed,
# dk's peak RSS ≤ 300 MB (flat as rows grow: run with 1M and 10M and compare). Run by hand, never in CI.
#
#   bash bench/sync/run.sh                      # 10,000,000 rows, 3 timed runs each
#   RUNS=1 bash bench/sync/run.sh 1000000       # 1M rows
#   KEEP=1 bash bench/sync/run.sh               # keep (and reuse) the database and its table
#   DK_BIN=/var/tmp/dk-target/release/dk bash bench/sync/run.sh
#
# Environment: RUNS (3), KEEP, AMOUNT (numeric), CAP (32MB: DuckDB memory_limit of -e bench-capped), DK_BIN, DK_TEST_PG_URL, DB (dk_bench_sync: its own database, dropped on
# exit unless KEEP=1), CARGO_TARGET_DIR, DK_BENCH_VENV (/var/tmp/dk-bench-venv: dlt and its pins,
# created when missing). The table is bench.events of bench/lib.sh (the shape of the peers' P4 table).
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
HERE=$BENCH/sync
ROWS=${1:-10000000}
DB=${DB:-dk_bench_sync}
DBURL=$(pg_db "$DB")

pg_ready
dk_binary
PY=$(bench_python "dlt[duckdb,postgres,sql_database]==1.31.0" "pyarrow==26.0.1" "duckdb==2.0.0" \
  "psycopg2-binary==2.9.13" "sqlalchemy==2.1.9")
echo "dlt: $("$PY" -c 'import dlt, duckdb, pyarrow; print(f"dlt {dlt.__version__}, duckdb {duckdb.__version__}, pyarrow {pyarrow.__version__}")')"

say "setup: $ROWS rows in $DB (bench.events)"
# amount is the peers' numeric without precision (AMOUNT=numeric(10,2) for a constrained one); dk
# reads it as its exact text and converts it to the DataSets' declared decimal(10,2)
AMOUNT=${AMOUNT:-numeric}
events_ready "$DB" "$ROWS" "$AMOUNT"
# the DuckDB memory_limit of the second dk measurement (environment bench-capped)
CAP=${CAP:-32MB}

P=$BENCH_TMP/dk
mkdir -p "$P/connector" "$P/store" "$P/environments" "$P/dataset" "$P/transforms/copy"
API="apiVersion: datakit.infoblox.dev/v1alpha1"
cat >"$P/project.yaml" <<Y
$API
kind: Project
metadata: {name: bench-sync}
spec:
  defaultEnvironment: bench
  stateBackend: {type: local}
Y
cat >"$P/connector/c.yaml" <<Y
$API
kind: Connector
metadata: {name: postgres}
spec: {type: postgres, capabilities: [source, destination]}
---
$API
kind: Connector
metadata: {name: duckdb}
spec: {type: duckdb, capabilities: [source, destination]}
Y
cat >"$P/store/s.yaml" <<Y
$API
kind: Store
metadata: {name: source}
spec:
  connector: postgres
  connection: {host: $PG_HOST, port: $PG_PORT, database: $DB, user: $PG_USER, sslmode: disable}
---
$API
kind: Store
metadata: {name: warehouse}
spec: {connector: duckdb, connection: {path: $BENCH_TMP/dk.duckdb}}
Y
cat >"$P/environments/bench.yaml" <<Y
$API
kind: Environment
metadata: {name: bench}
spec: {tier: dev}
---
$API
kind: Environment
metadata: {name: bench-capped}
spec:
  tier: dev
  bindings:
    warehouse:
      connection: {path: $BENCH_TMP/dk.duckdb, memory_limit: $CAP}
Y
COLS='  schema:
    - {name: id, type: bigint, nullable: false}
    - {name: user_id, type: integer}
    - {name: kind, type: string}
    - {name: amount, type: "decimal(10,2)"}
    - {name: created_at, type: timestamptz}
    - {name: email, type: string}'
cat >"$P/dataset/d.yaml" <<Y
$API
kind: DataSet
metadata: {name: src-events}
spec:
  store: source
  table: bench.events
  external: true
$COLS
---
$API
kind: DataSet
metadata: {name: events}
spec:
  store: warehouse
  table: main.events
$COLS
Y
cat >"$P/transforms/copy/dk.yaml" <<Y
$API
kind: Transform
metadata: {name: copy}
spec:
  runtime: sync
  trigger: {policy: manual}
  inputs: [{dataset: src-events}]
  outputs: [{dataset: events}]
Y
cd "$P"
"$DK" lint . >"$BENCH_TMP/lint.out" 2>&1 || { echo "dk lint failed:"; cat "$BENCH_TMP/lint.out"; exit 1; }

say "warming the page cache"
warm "$DB" bench.events

say "timing ($RUNS run(s) each; dk and dlt write a fresh DuckDB file every run)"
measure copy_binary psql "$DBURL" -Xqc "\\copy (SELECT * FROM bench.events) TO '/dev/null' WITH (FORMAT binary)"
PRE="rm -f '$BENCH_TMP'/dk.duckdb '$BENCH_TMP'/dk.duckdb.wal" measure dk_run "$DK" run -e bench --no-checks copy
PRE="rm -f '$BENCH_TMP'/dk.duckdb '$BENCH_TMP'/dk.duckdb.wal" measure dk_run_capped "$DK" run -e bench-capped --no-checks copy
measure dlt_pyarrow "$PY" "$HERE/dlt_sync.py" --dsn "postgresql+psycopg2://$PG_USER@$PG_HOST:$PG_PORT/$DB" \
  --schema bench --table events --duckdb "$BENCH_TMP/dlt.duckdb" --workdir "$BENCH_TMP/dlt" --backend pyarrow

say "rows in the DuckDB files"
dk_rows=$("$PY" -c 'import duckdb, sys; print(duckdb.connect(sys.argv[1], read_only=True).execute("select count(*) from main.events").fetchone()[0])' "$BENCH_TMP/dk.duckdb")
dlt_rows=$(grep -oE 'rows=[0-9]+' "$(last_out dlt_pyarrow)" | cut -d= -f2)
echo "  dk:  $dk_rows  ($(grep -E 'copy' "$(last_out dk_run)" | head -1 | xargs))"
echo "  dlt: $dlt_rows  ($(grep -E '^step' "$(last_out dlt_pyarrow)" | xargs))"
[[ $dk_rows == "$ROWS" && $dlt_rows == "$ROWS" ]] || { echo "expected $ROWS rows in both DuckDB files" >&2; exit 1; }

say "results ($ROWS rows)"
copy_s=$(med copy_binary); dk_s=$(med dk_run); dlt_s=$(med dlt_pyarrow)
rate() { awk -v n="$ROWS" -v s="$1" 'BEGIN{printf "%.2f", n/s/1e6}'; }
{
  echo "| measurement ($ROWS rows) | median s | M rows/s | peak RSS MB | dk run is |"
  echo "|---|---:|---:|---:|---|"
  echo "| dk run (sync PostgreSQL → DuckDB), $("$DK" --version), DuckDB defaults | $dk_s | $(rate "$dk_s") | $(rss_mb dk_run) | |"
  echo "| the same, DuckDB memory_limit $CAP (environment bench-capped) | $(med dk_run_capped) | $(rate "$(med dk_run_capped)") | $(rss_mb dk_run_capped) | |"
  echo "| dlt 1.31.0 sql_table backend=pyarrow → DuckDB | $dlt_s | $(rate "$dlt_s") | $(rss_mb dlt_pyarrow) | $(ratio "$dlt_s" "$dk_s" 1)× faster |"
  echo "| psql \\copy … (FORMAT binary) to /dev/null (floor) | $copy_s | $(rate "$copy_s") | $(rss_mb copy_binary) (client) | $(ratio "$copy_s" "$dk_s" 2 | awk '{printf "%.0f%%", $1 * 100}') of its speed |"
} | tee "$BENCH_TMP/report.md"
echo
echo "goals:"
goal "dk run ≥ 3× faster than dlt (pyarrow)" "$(ratio "$dlt_s" "$dk_s" 1)" ge 3 "×"
goal "dk run ≥ 50% of the COPY-binary speed" "$(awk -v c="$copy_s" -v d="$dk_s" 'BEGIN{printf "%.0f", c*100/d}')" ge 50 "%"
goal "dk peak RSS, DuckDB defaults" "$(rss_mb dk_run)" le 300 " MB"
goal "dk peak RSS, DuckDB memory_limit $CAP" "$(rss_mb dk_run_capped)" le 300 " MB"

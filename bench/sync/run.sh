#!/usr/bin/env bash
# Sync benchmark: N rows (default 1,000,000) PostgreSQL → DuckDB through `dk run` (sync runtime),
# next to a plain `COPY … TO STDOUT (FORMAT binary)` of the same table, with dk's peak RSS.
# Run by hand: bash bench/sync/run.sh [ROWS] (DK_BENCH_PROFILE=release for a release build). Needs the PostgreSQL of scripts/services.sh.
# Memory must stay flat as rows grow: run with 1M and 10M and compare the peak RSS lines.
set -euo pipefail
ROWS=${1:-1000000}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PGURL=${DK_TEST_PG_URL:-"host=127.0.0.1 port=5432 user=postgres dbname=test"}
DB=dk_bench_sync_$$
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/dk-target}
# DK_BENCH_PROFILE=release for an optimised dk (the dev profile already builds DuckDB with -O2).
PROFILE=${DK_BENCH_PROFILE:-dev}
cargo build -q --profile "$PROFILE" -p dk-cli --manifest-path "$ROOT/Cargo.toml"
DK="$CARGO_TARGET_DIR/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")/dk"
WORK=$(mktemp -d)
# A private copy: other builds in the same target directory must not swap the binary mid-run.
cp "$DK" "$WORK/dk"
DK="$WORK/dk"
cleanup() { psql "$PGURL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

psql "$PGURL" -qc "CREATE DATABASE $DB" >/dev/null
DBURL="host=127.0.0.1 port=5432 user=postgres dbname=$DB"
echo "generating $ROWS rows in PostgreSQL…"
psql "$DBURL" -q <<SQL
CREATE SCHEMA src;
CREATE TABLE src.events AS
SELECT g::bigint AS id,
       'user-' || (g % 100000) AS user_name,
       ((g % 1000)::numeric / 7)::numeric(10,2) AS amount,
       timestamp '2026-01-01' + g * interval '1 second' AS at,
       (g % 2 = 0) AS flag
FROM generate_series(1, $ROWS) g;
SQL

"$DK" init "$WORK/p" --template empty --name bench >/dev/null
cd "$WORK/p"
API="apiVersion: datakit.infoblox.dev/v1alpha1"
mkdir -p connector store dataset transforms/copy
cat > connector/c.yaml <<Y
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
cat > store/s.yaml <<Y
$API
kind: Store
metadata: {name: source}
spec: {connector: postgres, connection: {host: 127.0.0.1, port: 5432, database: $DB, user: postgres, sslmode: disable}}
---
$API
kind: Store
metadata: {name: warehouse}
spec: {connector: duckdb, connection: {path: .dk/bench.duckdb}}
Y
COLS='  schema:
    - {name: id, type: bigint, nullable: false}
    - {name: user_name, type: string}
    - {name: amount, type: "decimal(10,2)"}
    - {name: at, type: timestamp}
    - {name: flag, type: boolean}'
cat > dataset/d.yaml <<Y
$API
kind: DataSet
metadata: {name: src-events}
spec:
  store: source
  table: src.events
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
cat > transforms/copy/dk.yaml <<Y
$API
kind: Transform
metadata: {name: copy}
spec:
  runtime: sync
  inputs: [{dataset: src-events}]
  outputs: [{dataset: events}]
Y

t0=$(date +%s.%N)
psql "$DBURL" -qc "COPY src.events TO STDOUT (FORMAT binary)" > /dev/null
t1=$(date +%s.%N)
if ! /usr/bin/time -v "$DK" run --no-checks copy > "$WORK/out.txt" 2> "$WORK/time.txt"; then
  cat "$WORK/out.txt" "$WORK/time.txt"; exit 1
fi
tail -3 "$WORK/out.txt"
t2=$(date +%s.%N)
RSS_KB=$(grep "Maximum resident set size" "$WORK/time.txt" | awk '{print $NF}')
COPY_S=$(echo "$t1 - $t0" | bc)
DK_S=$(echo "$t2 - $t1" | bc)
echo
echo "rows:                 $ROWS"
echo "COPY binary (psql):   ${COPY_S}s"
echo "dk run (PG → DuckDB): ${DK_S}s  ($(echo "scale=2; $COPY_S * 100 / $DK_S" | bc)% of COPY speed)"
echo "dk peak RSS:          $((RSS_KB / 1024)) MB"

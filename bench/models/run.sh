#!/usr/bin/env bash
# bench/models: 100 chained SQL view models on PostgreSQL — `dk run` (100 `sql` transforms, each a view
# selecting from the previous one through {{ ref(…) }}, the first from a 10-row source table) vs
# `dbt run` of the same 100 models vs `psql -f` of the 100 CREATE OR REPLACE VIEW statements (the floor),
# in the same run. Goals: issue — per-model overhead ((tool − floor) / 100) ≥ 10× lower than dbt's;
# ../shared/BENCHMARKS.md P5 — dk run ≤ 0.2 s in total and ≥ 25× faster than dbt run. Run by hand.
#
#   bash bench/models/run.sh                    # 100 models, 3 timed runs each
#   N_MODELS=20 RUNS=1 bash bench/models/run.sh # quick
#   DK_BIN=/var/tmp/dk-target/release/dk bash bench/models/run.sh
#
# Environment: N_MODELS (100), RUNS (3), KEEP (1: keep the database), DK_BIN, DK_TEST_PG_URL,
# DB (dk_bench_models: its own database, re-created, dropped on exit unless KEEP=1), CARGO_TARGET_DIR.
# Schemas in DB: src (the source table), dk (dk's views), dbt (dbt's), floor (psql's).
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
N=${N_MODELS:-100}
DB=${DB:-dk_bench_models}
DBURL=$(pg_db "$DB")
m() { printf 'm_%03d' "$1"; }      # table / dbt model name
dm() { printf 'm-%03d' "$1"; }     # dk DataSet / Transform name

pg_ready
dk_binary
DBT=$(dbt_bin)

say "setup: database $DB, $N chained views for each tool"
psql "$PGURL" -Xq -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
[[ ${KEEP:-} == 1 ]] || on_exit "psql \"\$PGURL\" -Xqc 'DROP DATABASE IF EXISTS $DB WITH (FORCE)' >/dev/null 2>&1"
psql "$DBURL" -Xq -v ON_ERROR_STOP=1 <<'SQL'
CREATE SCHEMA src;
CREATE TABLE src.tiny AS SELECT g::bigint AS id, 'row ' || g AS label FROM generate_series(1, 10) AS g;
SQL

# ---- dk: a DataSet and a `sql` view transform per model
P=$BENCH_TMP/dk
mkdir -p "$P/connector" "$P/store" "$P/environments" "$P/dataset" "$P/transforms"
API="apiVersion: datakit.infoblox.dev/v1alpha1"
cat >"$P/project.yaml" <<Y
$API
kind: Project
metadata: {name: bench-models}
spec:
  defaultEnvironment: bench
  stateBackend: {type: local}
Y
cat >"$P/connector/postgres.yaml" <<Y
$API
kind: Connector
metadata: {name: postgres}
spec: {type: postgres, capabilities: [source, destination]}
Y
cat >"$P/store/warehouse.yaml" <<Y
$API
kind: Store
metadata: {name: warehouse}
spec:
  connector: postgres
  connection: {host: $PG_HOST, port: $PG_PORT, database: $DB, user: $PG_USER, sslmode: disable}
Y
cat >"$P/environments/bench.yaml" <<Y
$API
kind: Environment
metadata: {name: bench}
spec: {tier: dev}
Y
{
  printf '%s\nkind: DataSet\nmetadata: {name: tiny}\nspec:\n  store: warehouse\n  table: src.tiny\n  external: true\n' "$API"
  printf '  schema:\n    - {name: id, type: bigint}\n    - {name: label, type: string}\n'
  for i in $(seq 1 "$N"); do
    printf -- '---\n%s\nkind: DataSet\nmetadata: {name: %s}\nspec:\n  store: warehouse\n  table: dk.%s\n' "$API" "$(dm "$i")" "$(m "$i")"
  done
} >"$P/dataset/models.yaml"
for i in $(seq 1 "$N"); do
  t=$P/transforms/$(dm "$i"); mkdir -p "$t"
  if ((i == 1)); then from=tiny; else from=$(dm $((i - 1))); fi
  printf '%s\nkind: Transform\nmetadata: {name: %s}\nspec:\n  runtime: sql\n  sql: query.sql\n  materialized: view\n  trigger: {policy: on-change}\n  inputs: [{dataset: %s}]\n  outputs: [{dataset: %s}]\n' \
    "$API" "$(dm "$i")" "$from" "$(dm "$i")" >"$t/dk.yaml"
  echo "select * from {{ ref('$from') }}" >"$t/query.sql"
done
cd "$P"
"$DK" lint . >"$BENCH_TMP/lint.out" 2>&1 || { echo "dk lint failed:"; cat "$BENCH_TMP/lint.out"; exit 1; }
echo "  dk lint: $(tail -1 "$BENCH_TMP/lint.out")"
# the DataSets' schema and views first (untimed): dk run materializes into them
"$DK" apply -e bench --auto-approve >"$BENCH_TMP/apply.out" 2>&1 || { echo "dk apply failed:"; tail -20 "$BENCH_TMP/apply.out"; exit 1; }
echo "  dk apply: $(grep -v '^\s*$' "$BENCH_TMP/apply.out" | tail -1)"

# ---- dbt: the same models
D=$BENCH_TMP/dbt
mkdir -p "$D/models"
cat >"$D/dbt_project.yml" <<'Y'
name: bench_models
version: "1.0"
config-version: 2
profile: bench_models
models:
  bench_models:
    +materialized: view
Y
cat >"$D/profiles.yml" <<Y
bench_models:
  target: bench
  outputs:
    bench:
      type: postgres
      host: $PG_HOST
      port: $PG_PORT
      user: $PG_USER
      password: ""
      dbname: $DB
      schema: dbt
      threads: 4
Y
printf 'version: 2\nsources:\n  - name: src\n    schema: src\n    tables: [{name: tiny}]\n' >"$D/models/sources.yml"
for i in $(seq 1 "$N"); do
  if ((i == 1)); then echo "select * from {{ source('src', 'tiny') }}"; else echo "select * from {{ ref('$(m $((i - 1)))') }}"; fi >"$D/models/$(m "$i").sql"
done
(cd "$D" && "$DBT" parse --profiles-dir "$D" >/dev/null)   # the partial-parse file, as a second run finds it

# ---- the floor: the same views as one psql -f
{
  echo "create schema if not exists floor;"
  for i in $(seq 1 "$N"); do
    if ((i == 1)); then from="\"$DB\".\"src\".\"tiny\""; else from="\"$DB\".\"floor\".\"$(m $((i - 1)))\""; fi
    echo "create or replace view \"$DB\".\"floor\".\"$(m "$i")\" as select * from $from;"
  done
} >"$BENCH_TMP/floor.sql"

# every tool's views exist before the timed "views exist" runs (and the checks below pass)
(cd "$D" && "$DBT" run --profiles-dir "$D" >"$BENCH_TMP/dbt_first.out" 2>&1) || { echo "dbt run failed:"; tail -20 "$BENCH_TMP/dbt_first.out"; exit 1; }
psql "$DBURL" -Xq -v ON_ERROR_STOP=1 -f "$BENCH_TMP/floor.sql"
"$DK" run -e bench >"$BENCH_TMP/dk_first.out" 2>&1 || { echo "dk run failed:"; tail -20 "$BENCH_TMP/dk_first.out"; exit 1; }
views() { psql "$DBURL" -XAtqc "SELECT count(*) FROM pg_views WHERE schemaname = '$1'"; }
last() { psql "$DBURL" -XAtqc "SELECT count(*) FROM \"$1\".\"$(m "$N")\""; }
for s in dk dbt floor; do
  [[ $(views $s) == "$N" && $(last $s) == 10 ]] || { echo "schema $s: $(views $s) views, not $N, or $(m "$N") has not 10 rows" >&2; exit 1; }
done
echo "  dk, dbt and psql each built $N views; $(m "$N") returns the 10 source rows in each"

say "timing ($RUNS run(s) each; dk run, dbt run and psql -f with the views in place in turn, once per round)"
for _ in $(seq "$RUNS"); do
  cd "$P"; RUNS=1 measure dk_run "$DK" run -e bench
  cd "$D"; RUNS=1 measure dbt_run "$DBT" run --profiles-dir "$D"
  RUNS=1 measure psql_f psql "$DBURL" -Xq -v ON_ERROR_STOP=1 -f "$BENCH_TMP/floor.sql"
done
PRE="psql '$DBURL' -Xqc 'SET client_min_messages = warning' -c 'DROP SCHEMA IF EXISTS dbt CASCADE'" \
  measure dbt_run_fresh "$DBT" run --profiles-dir "$D"
PRE="psql '$DBURL' -Xqc 'SET client_min_messages = warning' -c 'DROP SCHEMA IF EXISTS floor CASCADE'" \
  measure psql_f_fresh psql "$DBURL" -Xq -v ON_ERROR_STOP=1 -f "$BENCH_TMP/floor.sql"
measure psql_select_1 psql "$DBURL" -XAtqc "SELECT 1"
cd "$P"
measure dk_run_one "$DK" run -e bench "$(dm 1)"
cd "$D"
# last: on PostgreSQL dbt rebuilds m_001 with DROP … CASCADE, which drops every view downstream of it
measure dbt_run_one "$DBT" run --profiles-dir "$D" -s "$(m 1)"
for s in dk floor; do [[ $(views $s) == "$N" ]] || { echo "schema $s lost views: $(views $s) left" >&2; exit 1; }; done
echo "  after dbt run -s $(m 1): $(views dbt) of $N dbt views left; dk and floor still have all $N"

say "results ($N chained views)"
dk_s=$(med dk_run); dbt_s=$(med dbt_run); dbtf_s=$(med dbt_run_fresh); fl_s=$(med psql_f); flf_s=$(med psql_f_fresh)
per() { awk -v t="$1" -v f="$2" -v n="$N" 'BEGIN{printf "%.2f", (t-f)*1000/n}'; }   # ms per model over the floor
dk_pm=$(per "$dk_s" "$fl_s"); dbt_pm=$(per "$dbt_s" "$fl_s"); dbtf_pm=$(per "$dbtf_s" "$flf_s")
{
  echo "| measurement ($N chained views) | median s | overhead over psql -f, ms/model | peak RSS MB | dk run is |"
  echo "|---|---:|---:|---:|---|"
  echo "| dk run -e bench, views exist ($("$DK" --version)) | $dk_s | $dk_pm | $(rss_mb dk_run) | |"
  echo "| dbt run, threads 4, views exist (dbt-core 1.12.6 + dbt-postgres) | $dbt_s | $dbt_pm | $(rss_mb dbt_run) | $(ratio "$dbt_s" "$dk_s" 1)× faster |"
  echo "| dbt run, threads 4, empty schema | $dbtf_s | $dbtf_pm (over the fresh floor) | $(rss_mb dbt_run_fresh) | $(ratio "$dbtf_s" "$dk_s" 1)× faster |"
  echo "| psql -f of the $N CREATE OR REPLACE VIEW, views exist (floor) | $fl_s | 0 | $(rss_mb psql_f) | $(ratio "$dk_s" "$fl_s")× the floor |"
  echo "| psql -f of the same, empty schema | $flf_s | | $(rss_mb psql_f_fresh) | |"
  echo "| fixed cost: dk run -e bench $(dm 1) (one model) | $(med dk_run_one) | | $(rss_mb dk_run_one) | |"
  echo "| fixed cost: dbt run -s $(m 1) (one model) | $(med dbt_run_one) | | $(rss_mb dbt_run_one) | |"
  echo "| fixed cost: psql -c 'SELECT 1' | $(med psql_select_1) | | $(rss_mb psql_select_1) | |"
} | tee "$BENCH_TMP/report.md"
echo
echo "goals:"
# a dk overhead at or below the floor (≤ 0) meets the per-model goal whatever dbt's is
pm_ratio=$(awk -v a="$dbt_pm" -v b="$dk_pm" 'BEGIN{ if (b <= 0) print 1e9; else printf "%.1f", a/b }')
goal "issue: per-model overhead ≥ 10× lower than dbt's ($dk_pm vs $dbt_pm ms)" "$pm_ratio" ge 10 "×"
goal "P5: dk run of $N views, total" "$dk_s" le 0.2 " s"
goal "P5: dk run ≥ 25× faster than dbt run (views exist)" "$(ratio "$dbt_s" "$dk_s" 1)" ge 25 "×"

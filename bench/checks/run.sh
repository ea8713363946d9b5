#!/usr/bin/env bash
# bench/checks: 20 data checks on a 10M-row PostgreSQL table — `dk test` vs `dbt test` (threads 4) with
# the same 20 checks, vs one `SELECT count(*)` scan and the 20 checks fused into one SELECT (psql), in
# the same run. Goals: issue — ≥ 5× faster than dbt test, ≤ 1.5× one scan; ../shared/BENCHMARKS.md P3 —
# ≤ 1.1× the fused one-SELECT floor, ≥ 2.3× dbt. Run by hand, never in CI.
#
#   bash bench/checks/run.sh                    # 10,000,000 rows, 3 timed runs each
#   RUNS=1 bash bench/checks/run.sh 100000      # quick
#   KEEP=1 bash bench/checks/run.sh             # keep (and reuse) the database and its table
#   DK_BIN=/var/tmp/dk-target/release/dk bash bench/checks/run.sh
#
# Environment: RUNS (3), KEEP, DK_BIN, DK_TEST_PG_URL, DB (dk_bench_checks: its own database, dropped
# on exit unless KEEP=1), CARGO_TARGET_DIR (/var/tmp/dk-target). dbt comes from scripts/dbt-venv.sh.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
HERE=$BENCH/checks
ROWS=${1:-10000000}
DB=${DB:-dk_bench_checks}
DBURL=$(pg_db "$DB")

pg_ready
dk_binary
DBT=$(dbt_bin)
echo "dbt: $("$DBT" --version 2>/dev/null | grep -E 'installed|postgres:' | tr -s ' ' | xargs)"

say "setup: $ROWS rows in $DB (bench.events)"
events_ready "$DB" "$ROWS"

# ---- the dk project: one external DataSet with the 20 checks
P=$BENCH_TMP/dk
mkdir -p "$P/connector" "$P/store" "$P/environments" "$P/dataset"
API="apiVersion: datakit.infoblox.dev/v1alpha1"
cat >"$P/project.yaml" <<Y
$API
kind: Project
metadata: {name: bench-checks}
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
cat >"$P/dataset/events.yaml" <<'Y'
apiVersion: datakit.infoblox.dev/v1alpha1
kind: DataSet
metadata: {name: events}
spec:
  store: warehouse
  table: bench.events
  external: true
  description: The table of bench/lib.sh make_events, with the 20 checks of dbt/models/sources.yml.
  schema:
    - name: id
      type: bigint
      checks:
        - not_null
        - unique
        - unique: {where: "kind = 'purchase'"}
    - name: user_id
      type: integer
      checks: [not_null]
    - name: kind
      type: string
      checks:
        - not_null
        - accepted_values: {values: [view, click, purchase, signup, refund]}
        - accepted_values: {values: [view, click, purchase, signup, refund], where: "amount > 500"}
    - name: amount
      type: "decimal(12,2)"
      checks:
        - not_null
        - not_null: {where: "kind = 'purchase'"}
    - name: created_at
      type: timestamptz
      checks: [not_null]
    - name: email
      type: string
      checks:
        - not_null: {severity: warn}
  checks:
    - expression: {sql: "id > 0"}
    - expression: {sql: "user_id BETWEEN 1 AND 100000"}
    - expression: {sql: "amount >= 0"}
    - expression: {sql: "amount <= 1000"}
    - expression: {sql: "round(amount, 2) = amount"}
    - expression: {sql: "created_at >= '2024-01-01'"}
    - expression: {sql: "created_at < '2025-01-01'"}
    - expression: {sql: "email IS NULL OR email LIKE '%@example.com'"}
    - expression: {sql: "length(kind) BETWEEN 4 AND 8"}
Y
(cd "$P" && "$DK" lint . >"$BENCH_TMP/lint.out" 2>&1) || { echo "dk lint failed:"; cat "$BENCH_TMP/lint.out"; exit 1; }

# ---- the dbt project: the same 20 tests on source bench.events
D=$BENCH_TMP/dbt
cp -r "$HERE/dbt" "$D"
cat >"$D/profiles.yml" <<Y
bench_checks:
  target: bench
  outputs:
    bench:
      type: postgres
      host: $PG_HOST
      port: $PG_PORT
      user: $PG_USER
      password: ""
      dbname: $DB
      schema: dbt_checks
      threads: 4
Y
# parse once (writes the partial-parse file, as a user's second run would find it) and count the tests
n_dbt=$(cd "$D"; "$DBT" --quiet ls --profiles-dir "$D" --resource-type test | grep -c .)
echo "  dbt: $n_dbt tests"

say "warming the page cache"
warm "$DB" bench.events

say "timing: $RUNS round(s), each command once per round, in turn"
for _ in $(seq "$RUNS"); do
  cd "$P"; RUNS=1 measure dk_test "$DK" test -e bench
  cd "$D"; RUNS=1 measure dbt_test "$DBT" test --profiles-dir "$D"
  cd "$BENCH_TMP"
  RUNS=1 measure count_scan psql "$DBURL" -XAtqc "SELECT count(*) FROM bench.events"
  RUNS=1 measure fused_20 psql "$DBURL" -XAtq -f "$HERE/fused_checks.sql"
  RUNS=1 measure fused_18_no_unique psql "$DBURL" -XAtq -f "$HERE/fused_checks_nounique.sql"
done

say "outcomes"
(cd "$P" && "$DK" test -e bench -o json >"$BENCH_TMP/dk_test.json") || true
psql "$DBURL" -Xx -f "$HERE/fused_checks.sql" >"$BENCH_TMP/fused.txt"
fused_email=$(awk -F'|' '$1 ~ /email_not_null/ {gsub(/ /, "", $2); print $2}' "$BENCH_TMP/fused.txt")
fused_fail=$(awk -F'|' '$1 !~ /email_not_null/ && $2 ~ /[0-9]/ {gsub(/ /, "", $2); if ($2 != "0") n++} END{print n+0}' "$BENCH_TMP/fused.txt")
dk_says=$(python3 - "$BENCH_TMP/dk_test.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
s = d["summary"]
# a failing warn-severity check: status "fail", severity "warn" (counted as a warning in the summary)
warns = [f'{r["name"]}={r.get("failing")}' for c in d["checks"] for r in c["results"] if r["status"] != "pass"]
print(f'PASS={s["pass"]} WARN={s["warn"]} FAIL={s["fail"]} ERROR={s["error"]} warned: {",".join(warns)}')
PY
)
dbt_says=$(sed 's/\x1b\[[0-9;]*m//g' "$(last_out dbt_test)" | grep -oE 'PASS=[0-9]+ WARN=[0-9]+ ERROR=[0-9]+' | tail -1)
dbt_warn=$(sed 's/\x1b\[[0-9;]*m//g' "$(last_out dbt_test)" | grep -oE 'WARN [0-9]+ [a-z_]+' | head -1)
n_dk=$(python3 -c 'import json,sys; print(sum(len(c["results"]) for c in json.load(open(sys.argv[1]))["checks"]))' "$BENCH_TMP/dk_test.json")
echo "  dk test:    $dk_says"
echo "  dbt test:   $dbt_says  ($dbt_warn)"
echo "  fused SQL:  email_not_null=$fused_email, other checks failing: $fused_fail"
expect_warn=$((ROWS / 7))
same=no
if [[ $n_dk == 20 && $n_dbt == 20 && $dk_says == "PASS=19 WARN=1 FAIL=0 ERROR=0 warned: not_null(email)=$expect_warn" &&
      $dbt_says == "PASS=19 WARN=1 ERROR=0" && $dbt_warn == "WARN $expect_warn source_not_null_bench_events_email" &&
      $fused_email == "$expect_warn" && $fused_fail == 0 ]]; then
  same=yes
fi
echo "  checks run: dk $n_dk, dbt $n_dbt"
echo "  same outcome (19 pass + 1 warn: $expect_warn NULL emails) in dk, dbt and the fused SELECT: $same"

say "results ($ROWS rows, 20 checks)"
dk_s=$(med dk_test); dbt_s=$(med dbt_test); cnt_s=$(med count_scan); f20_s=$(med fused_20); f18_s=$(med fused_18_no_unique)
{
  echo "| measurement ($ROWS rows) | median s | peak RSS MB | dk test is |"
  echo "|---|---:|---:|---|"
  echo "| dk test -e bench ($("$DK" --version)) | $dk_s | $(rss_mb dk_test) | |"
  echo "| dbt test, threads 4 (dbt-core 1.12.6 + dbt-postgres) | $dbt_s | $(rss_mb dbt_test) | $(ratio "$dbt_s" "$dk_s")× faster |"
  echo "| psql: SELECT count(*) (one scan) | $cnt_s | $(rss_mb count_scan) | $(ratio "$dk_s" "$cnt_s")× the scan |"
  echo "| psql: the 20 checks fused in one SELECT | $f20_s | $(rss_mb fused_20) | $(ratio "$dk_s" "$f20_s")× the fused SELECT |"
  echo "| psql: the 18 checks that are not unique, one SELECT | $f18_s | $(rss_mb fused_18_no_unique) | $(ratio "$dk_s" "$f18_s")× |"
} | tee "$BENCH_TMP/report.md"
echo
echo "goals:"
goal "issue: dk test ≥ 5× faster than dbt test" "$(ratio "$dbt_s" "$dk_s")" ge 5 "×"
goal "issue: dk test ≤ 1.5× one count(*) scan" "$(ratio "$dk_s" "$cnt_s")" le 1.5 "×"
goal "P3: dk test ≤ 1.1× the fused one-SELECT floor" "$(ratio "$dk_s" "$f20_s")" le 1.1 "×"
goal "P3: dk test ≥ 2.3× faster than dbt test" "$(ratio "$dbt_s" "$dk_s")" ge 2.3 "×"
[[ $same == yes ]] || { echo "dk, dbt and the fused SELECT disagree (see above)" >&2; exit 1; }

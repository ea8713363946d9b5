# Shared pieces of the benchmarks in bench/*/run.sh. Sourced, not run:
#   source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
#
# Sets BENCH (this folder), ROOT (the repository), CARGO_TARGET_DIR (default /var/tmp/dk-target),
# RUNS (default 3), PGURL (libpq keywords: DK_TEST_PG_URL, default
# "host=127.0.0.1 port=5432 user=postgres dbname=test") and PG_HOST / PG_PORT / PG_USER parsed from it,
# BENCH_TMP (a private temporary folder, removed on exit) and turns the peers' telemetry off.
# Functions:
#   dk_binary [CARGO ARGS…]   DK = a private copy of $DK_BIN, or of a fresh
#                             `cargo build --release -p dk-cli [CARGO ARGS…]`
#   on_exit 'SHELL'           run SHELL when the script exits (in reverse order; the trap is lib.sh's)
#   pg_db DB                  PGURL with dbname=DB
#   pg_ready                  exit with a message when PostgreSQL does not answer
#   measure NAME CMD…         RUNS timed runs: median wall seconds → $(med NAME), peak RSS → $(rss_mb NAME)
#   ratio A B / goal …        the ratio A/B, and a goal line that says met or NOT met
#   make_events DB ROWS       bench.events in database DB: the shape of shared/peers/sql/make_events.sql
#   dbt_bin / bench_python    the dbt of scripts/dbt-venv.sh; the python of the bench venv (dlt)
# shellcheck shell=bash

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/dk-target}
RUNS=${RUNS:-3}
PGURL=${DK_TEST_PG_URL:-"host=127.0.0.1 port=5432 user=postgres dbname=test"}
# no phoning home from the peers: it would add network time-outs to the measurements
export DBT_SEND_ANONYMOUS_USAGE_STATS=false DO_NOT_TRACK=1 DBT_VERSION_CHECK=false
export RUNTIME__DLTHUB_TELEMETRY=false

# pg_field KEY DEFAULT: one keyword of PGURL
pg_field() {
  local kv
  for kv in $PGURL; do [[ $kv == "$1="* ]] && { echo "${kv#*=}"; return; }; done
  echo "$2"
}
# shellcheck disable=SC2034  # used by the scripts that source this file
PG_HOST=$(pg_field host 127.0.0.1)
# shellcheck disable=SC2034
PG_PORT=$(pg_field port 5432)
# shellcheck disable=SC2034
PG_USER=$(pg_field user postgres)

pg_db() {
  local kv out=""
  for kv in $PGURL; do [[ $kv == dbname=* ]] || out+="$kv "; done
  echo "${out}dbname=$1"
}

pg_ready() {
  psql "$PGURL" -Xqtc "select 1" >/dev/null 2>&1 || {
    echo "PostgreSQL ($PGURL) does not answer; start it with scripts/services.sh or set DK_TEST_PG_URL" >&2
    exit 1
  }
}

_ON_EXIT=()
on_exit() { _ON_EXIT+=("$1"); }
_run_on_exit() {
  local i
  for ((i = ${#_ON_EXIT[@]} - 1; i >= 0; i--)); do eval "${_ON_EXIT[i]}" || true; done
}
trap _run_on_exit EXIT

BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/dk-bench.XXXXXX")
# shellcheck disable=SC2016  # expanded on exit
on_exit 'rm -rf "$BENCH_TMP"'

say() { printf '\n== %s\n' "$*"; }

# dk_binary [CARGO ARGS…]: DK is a private copy (another build of the same target directory must
# not swap the binary in the middle of a run) of DK_BIN, or of a release build.
# shellcheck disable=SC2120  # the cargo arguments are optional
dk_binary() {
  local src
  if [[ -n ${DK_BIN:-} ]]; then
    src=$DK_BIN
  else
    say "cargo build --release -p dk-cli $* (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$ROOT" && cargo build --release -p dk-cli "$@")
    src=$CARGO_TARGET_DIR/release/dk
  fi
  [[ -x $src ]] || { echo "no dk binary at $src" >&2; exit 1; }
  mkdir -p "$BENCH_TMP/bin"
  cp "$src" "$BENCH_TMP/bin/dk"
  DK=$BENCH_TMP/bin/dk
  echo "dk: $("$DK" --version) (from $src)"
}

now() { date +%s%N; }
median() { sort -g | awk '{a[NR]=$1} END{ if (NR == 0) print "NaN"; else print (NR % 2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2) }'; }

# measure NAME CMD…: RUNS runs under /usr/bin/time -v. Each run's output is in $BENCH_TMP/NAME.I.out.
# PRE='shell' runs (untimed) before every run; OK_RC (default 0) lists the accepted exit codes.
# The median wall seconds (date +%s%N around the command) go to $BENCH_TMP/NAME.median, the largest
# peak RSS of the runs (the largest single process of the command) to $BENCH_TMP/NAME.rss (KiB).
# Calling it again with the same NAME adds runs: `RUNS=1 measure …` in a loop over several commands
# interleaves them, so that a drift in the machine's speed hits every command alike.
measure() {
  local name=$1; shift
  local i t0 t1 rc s rss maxrss
  maxrss=$(cat "$BENCH_TMP/$name.rss" 2>/dev/null || echo 0)
  for _ in $(seq "$RUNS"); do
    i=1; [[ -f $BENCH_TMP/$name.walls ]] && i=$(($(wc -l <"$BENCH_TMP/$name.walls") + 1))
    if [[ -n ${PRE:-} ]]; then eval "$PRE"; fi
    t0=$(now)
    rc=0; /usr/bin/time -v -o "$BENCH_TMP/$name.$i.time" "$@" >"$BENCH_TMP/$name.$i.out" 2>&1 || rc=$?
    t1=$(now)
    if [[ " ${OK_RC:-0} " != *" $rc "* ]]; then
      echo "  $name: exit $rc (see $BENCH_TMP/$name.$i.out):" >&2
      tail -15 "$BENCH_TMP/$name.$i.out" >&2
      exit 1
    fi
    s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$BENCH_TMP/$name.$i.time")
    ((${rss:-0} > maxrss)) && maxrss=${rss:-0}
    echo "$s" >>"$BENCH_TMP/$name.walls"
    printf '  %-26s run %d: %8ss  %6d MB  (exit %d)\n' "$name" "$i" "$s" "$((${rss:-0} / 1024))" "$rc"
    echo "$BENCH_TMP/$name.$i.out" >"$BENCH_TMP/$name.last"
  done
  median <"$BENCH_TMP/$name.walls" >"$BENCH_TMP/$name.median"
  echo "$maxrss" >"$BENCH_TMP/$name.rss"
}
med() { cat "$BENCH_TMP/$1.median"; }
rss_mb() { echo $(($(cat "$BENCH_TMP/$1.rss") / 1024)); }
last_out() { cat "$BENCH_TMP/$1.last"; }  # the output of the last run

# ratio A B [DECIMALS]: A / B
ratio() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN{ if (b == 0) print "inf"; else printf "%.*f", d, a/b }'; }
# goal TEXT VALUE OP TARGET [UNIT]: prints "TEXT: VALUE UNIT (target OP TARGET UNIT) met|NOT met",
# OP one of le, ge. Counts the goals not met in GOALS_MISSED.
GOALS_MISSED=0
goal() {
  local text=$1 value=$2 op=$3 target=$4 unit=${5:-} ok sym
  case $op in
    le) sym="≤"; ok=$(awk -v v="$value" -v t="$target" 'BEGIN{print (v <= t) ? 1 : 0}') ;;
    ge) sym="≥"; ok=$(awk -v v="$value" -v t="$target" 'BEGIN{print (v >= t) ? 1 : 0}') ;;
    *) echo "goal: unknown op $op" >&2; return 1 ;;
  esac
  if [[ $ok == 1 ]]; then
    printf '  %-58s %10s%s (target %s %s%s)  met\n' "$text" "$value" "$unit" "$sym" "$target" "$unit"
  else
    GOALS_MISSED=$((GOALS_MISSED + 1))
    printf '  %-58s %10s%s (target %s %s%s)  NOT met\n' "$text" "$value" "$unit" "$sym" "$target" "$unit"
  fi
}

# make_events DB ROWS [AMOUNT_TYPE]: bench.events in database DB, the table of
# shared/peers/sql/make_events.sql (deterministic; id unique-constrained, 5 kinds, numeric amount,
# created_at, email NULL on 1 row in 7) with ROWS rows; amount is of AMOUNT_TYPE (default numeric,
# as the peers'). 10M rows take 1-2 minutes.
make_events() {
  local db=$1 rows=$2 amount=${3:-numeric}
  psql "$(pg_db "$db")" -Xq -v ON_ERROR_STOP=1 >/dev/null <<SQL
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;
SELECT setseed(0.42);
CREATE TABLE bench.events AS
SELECT g::bigint                                                        AS id,
       (1 + (hashint8(g) & 2147483647) % 100000)::int                  AS user_id,
       (ARRAY['view','click','purchase','signup','refund'])[1 + (g % 5)::int] AS kind,
       round((random() * 1000)::numeric, 2)::$amount                     AS amount,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '3 seconds'  AS created_at,
       CASE WHEN g % 7 = 0 THEN NULL
            ELSE 'user' || (1 + (hashint8(g) & 2147483647) % 100000) || '@example.com' END AS email
FROM generate_series(1, $rows) AS g;
ALTER TABLE bench.events ADD CONSTRAINT events_id_key UNIQUE (id);
VACUUM ANALYZE bench.events;
SQL
}

# events_ready DB ROWS [AMOUNT_TYPE]: make_events unless KEEP=1 and DB already holds bench.events with
# ROWS rows and that amount type. The database is created when missing; without KEEP=1 it is dropped
# on exit.
events_ready() {
  local db=$1 rows=$2 amount=${3:-numeric} have=""
  if [[ -z $(psql "$PGURL" -XAtqc "SELECT 1 FROM pg_database WHERE datname = '$db'") ]]; then
    psql "$PGURL" -Xqc "CREATE DATABASE $db" >/dev/null
  fi
  [[ ${KEEP:-} == 1 ]] || on_exit "psql \"\$PGURL\" -Xqc 'DROP DATABASE IF EXISTS $db WITH (FORCE)' >/dev/null 2>&1"
  if [[ ${KEEP:-} == 1 ]]; then
    have=$(psql "$(pg_db "$db")" -XAtqc "SELECT count(*) || ' ' || (SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'bench.events'::regclass AND attname = 'amount') FROM bench.events" 2>/dev/null || true)
  fi
  if [[ $have == "$rows $amount" ]]; then
    echo "  KEEP=1: reusing bench.events ($rows rows, amount $amount) in $db"
  else
    echo "  generating bench.events ($rows rows) in $db…"
    local t0; t0=$(now)
    make_events "$db" "$rows" "$amount"
    echo "  generated in $(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.0f", (b-a)/1e9}') s"
  fi
}

# warm DB TABLE: read the table once (a sequential scan: a plain count(*) may read only the index) so
# that every timed run finds it in the page cache
warm() {
  psql "$(pg_db "$1")" -XAtq -c "SET enable_indexonlyscan = off" -c "SET enable_indexscan = off" \
    -c "SET enable_bitmapscan = off" -c "SELECT count(*) FROM $2" >/dev/null
}

# dbt_bin: the dbt of scripts/dbt-venv.sh (dbt-core 1.12.6 + dbt-postgres 1.11.0, installed into
# /var/tmp/dk-dbt-venv when missing)
dbt_bin() { bash "$ROOT/scripts/dbt-venv.sh" | tail -1; }

# bench_python PACKAGE==VERSION…: the python of DK_BENCH_VENV (default /var/tmp/dk-bench-venv), created
# and filled with the packages when one of them is missing or at another version.
bench_python() {
  local venv=${DK_BENCH_VENV:-/var/tmp/dk-bench-venv}
  if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" - "$@" <<'PY' >/dev/null 2>&1; then
import sys, importlib.metadata as md
for spec in sys.argv[1:]:
    name, version = spec.split("==")
    name = name.split("[")[0]
    assert md.version(name) == version, spec
PY
    echo "  installing $* into $venv…" >&2
    [[ -x $venv/bin/python ]] || python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --upgrade pip >&2
    "$venv/bin/pip" install -q "$@" >&2
  fi
  echo "$venv/bin/python"
}

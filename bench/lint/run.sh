#!/usr/bin/env bash
# P1 benchmark (bench/lint): `dk lint` (and `dk pipeline show/order` when dk has it) on a generated project
# of 10,000 DataSets + 5,000 Transforms, against dbt-core 1.12.6 `dbt parse --no-partial-parse` / `dbt ls`
# and dbt Core v2 alpha (Rust) `parse` / `ls` on the equivalent dbt project, in the same run.
# Goals (/work/shared/BENCHMARKS.md, P1): dk lint <= 1 s and <= 200 MB peak RSS, >= 7x faster than dbt's Rust
# parser, >= 50x faster than Python `dbt parse`.  Run by hand, never in CI.  See README.md beside this file.
#
#   bash bench/lint/run.sh                      # full size: 10,000 DataSets, 5,000 Transforms, 3 runs each
#   bash bench/lint/run.sh --quick              # 1,000 / 500, 1 run each (unless RUNS is set)
#   N_DATASETS=2000 N_TRANSFORMS=1000 RUNS=5 bash bench/lint/run.sh
#   bash bench/lint/run.sh --datasets 2000 --transforms 1000 --runs 5 [--no-dbt] [--no-v2] [--no-py]
#
# Environment: N_DATASETS, N_TRANSFORMS, RUNS (3), SEED (7), DK_BIN (skip the cargo build and time this
# binary), SKIP_DBT=1 (dk only), SKIP_V2=1 (no dbt Core v2), SKIP_PY=1 (no Python dbt: its parse takes
# minutes at full size), WORK (default bench/lint/work),
# VENV (default $WORK/.venv), QUIET_PCT (25: wait before each run until the machine is under this % busy;
# 0 disables), QUIET_MAX (120 s, longest wait), RETRIES (2: re-run a run someone else disturbed),
# BUILD_WAIT (900 s: how long to wait for another cargo build to finish before building).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

QUICK=
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=1 ;;
    --datasets) N_DATASETS=$2; shift ;;
    --transforms) N_TRANSFORMS=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --no-dbt) SKIP_DBT=1 ;;
    --no-v2) SKIP_V2=1 ;;
    --no-py) SKIP_PY=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
if [[ -n $QUICK ]]; then
  N_DATASETS=${N_DATASETS:-1000} N_TRANSFORMS=${N_TRANSFORMS:-500} RUNS=${RUNS:-1}
fi
N_DATASETS=${N_DATASETS:-10000}
N_TRANSFORMS=${N_TRANSFORMS:-5000}
RUNS=${RUNS:-3}
SEED=${SEED:-7}
SKIP_DBT=${SKIP_DBT:-}
SKIP_V2=${SKIP_V2:-}
SKIP_PY=${SKIP_PY:-}
WORK=${WORK:-$HERE/work}
VENV=${VENV:-$WORK/.venv}
DKP=$WORK/dk
DBTP=$WORK/dbt
RES=$WORK/results
LOGS=$WORK/logs
TSV=$RES/runs.tsv
mkdir -p "$WORK" "$RES" "$LOGS"

# no phoning home from dbt (network time-outs would land in the measurements)
export DBT_SEND_ANONYMOUS_USAGE_STATS=false DO_NOT_TRACK=1 DBT_VERSION_CHECK=false

say() { printf '\n== %s\n' "$*"; }

# ---------------------------------------------------------------------------------------------------------
# tools: /usr/bin/time, python, the dbt venv, the dk binary

if [[ ! -x /usr/bin/time ]]; then
  say "installing GNU time (/usr/bin/time)"
  apt-get install -y -q time >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q time >/dev/null; }
fi
PY=$(command -v python3.11 || command -v python3)

if [[ -z $SKIP_DBT && ! -x $VENV/bin/dbt ]]; then
  say "creating $VENV with dbt-core 1.12.6 + dbt-duckdb (dbt-core-experimental-parser pinned to 2.0.0a4)"
  "$PY" -m venv "$VENV"
  # dbt-core 1.12.x requires dbt-core-experimental-parser>=2.0.0b1, whose PyPI releases are source archives
  # that download their real wheel at build time (fails offline). 2.0.0a4 is the newest shipped as a wheel
  # (it is dbt Core v2 alpha 4, the Rust parser); plain `dbt parse` never calls it. See BENCHMARKS.md.
  echo "dbt-core-experimental-parser==2.0.0a4" >"$WORK/overrides.txt"
  if command -v uv >/dev/null 2>&1; then UV=$(command -v uv); else
    "$VENV/bin/pip" install -q --upgrade pip uv; UV=$VENV/bin/uv
  fi
  "$UV" pip install --python "$VENV/bin/python" --prerelease=if-necessary-or-explicit \
    --override "$WORK/overrides.txt" "dbt-core==1.12.6" "dbt-duckdb==1.11.1"
fi
DBT=$VENV/bin/dbt
DBTV2=$VENV/bin/dbt-core-experimental-parser
[[ -n $SKIP_DBT || -x $DBTV2 ]] || { echo "note: $DBTV2 is missing: no dbt Core v2 figures" >&2; SKIP_V2=1; }

if [[ -n ${DK_BIN:-} ]]; then
  DK=$DK_BIN
else
  # two cores: let another cargo build finish first rather than compete with it
  waited=0
  while pgrep -f "cargo build" >/dev/null 2>&1 && (( waited < ${BUILD_WAIT:-900} )); do
    (( waited == 0 )) && echo "waiting for another cargo build to finish (at most ${BUILD_WAIT:-900} s)..."
    sleep 5; waited=$((waited + 5))
  done
  say "cargo build --release -p dk-cli"
  (cd "$ROOT" && cargo build --release -p dk-cli)
  # a private copy: someone else's rebuild of target/ during the run must not change what is timed
  mkdir -p "$WORK/bin" && cp "$ROOT/target/release/dk" "$WORK/bin/dk.tmp" && mv "$WORK/bin/dk.tmp" "$WORK/bin/dk"
  DK=$WORK/bin/dk
fi
[[ -x $DK ]] || { echo "no dk binary at $DK" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------------------
# the projects

say "generating $N_DATASETS DataSets / $N_TRANSFORMS Transforms (seed $SEED) into $WORK/{dk,dbt}"
only=(); [[ -n $SKIP_DBT ]] && only=(--only dk)
"$PY" "$HERE/gen.py" "$WORK" --datasets "$N_DATASETS" --transforms "$N_TRANSFORMS" --seed "$SEED" "${only[@]}" \
  | tee "$RES/shape.txt"
proj_size() { find "$1" -type f -not -path '*/target/*' -not -path '*/logs/*' -printf '%s\n' | awk '{n++; s+=$1} END{printf "%d files, %.1f MiB", n, s/1048576}'; }
echo "dk project:  $(proj_size "$DKP")" | tee -a "$RES/shape.txt"
[[ -n $SKIP_DBT ]] || echo "dbt project: $(proj_size "$DBTP")" | tee -a "$RES/shape.txt"

# ---------------------------------------------------------------------------------------------------------
# measuring

_elapsed() { awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }' <<<"$1"; }
busy_jiffies() { awk 'NR==1{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }
cpu_busy() {  # percent of all CPUs busy during the next second
  local a b t=0 i idle
  a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
  for i in 1 2 3 4 5 6 7 8; do t=$((t + b[i] - a[i])); done
  idle=$(( (b[4] - a[4]) + (b[5] - a[5]) ))
  echo $(( t > 0 ? 100 * (t - idle) / t : 0 ))
}
wait_quiet() {  # until under QUIET_PCT % busy for 2 s in a row (at most QUIET_MAX s); prints the last figure
  local pct=${QUIET_PCT:-25} start=$SECONDS ok=0 b=0 warned=
  (( pct > 0 )) || { echo -; return; }
  while (( SECONDS - start < ${QUIET_MAX:-120} )); do
    b=$(cpu_busy)
    if (( b < pct )); then ok=$((ok + 1)); (( ok >= 2 )) && break; else ok=0
      [[ -n $warned ]] || { echo "    waiting for the machine to be quiet (busy ${b}%: $(ps -eo pcpu,comm --sort=-pcpu | sed -n 2,3p | xargs))" >&2; warned=1; }
    fi
  done
  echo "$b"
}

printf 'id\ttool\trun\trc\twall_s\tmax_rss_kb\tbusy_pct\tforeign_cpu_s\tcpu_s\n' >"$TSV"

# measure ID TOOL -- CMD...: RUNS timed runs under /usr/bin/time -v (env PRE: untimed shell snippet before
# each run). Wall time is a date +%s%N timer around the call; RSS is time -v's "Maximum resident set size".
# A run during which other processes used more than 0.3 s + 5% of its wall in CPU is run again (RETRIES).
# Returns the last run's exit code.
measure() {
  local id=$1 tool=$2; shift 2; [[ $1 == -- ]] && shift
  local i try rc=0
  for i in $(seq "$RUNS"); do
    for try in $(seq 0 "${RETRIES:-2}"); do
      [[ -z ${PRE:-} ]] || eval "$PRE"
      local bg tf=$LOGS/$id.$i.time out=$LOGS/$id.$i.out t0 t1 j0 j1
      bg=$(wait_quiet)
      j0=$(busy_jiffies); t0=$(date +%s%N)
      rc=0; /usr/bin/time -v -o "$tf" "$@" >"$out" 2>&1 || rc=$?
      t1=$(date +%s%N); j1=$(busy_jiffies)
      local wall rss own foreign fmax
      wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
      rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tf"); rss=${rss:-0}
      own=$(awk -F': ' '/User time \(seconds\)|System time \(seconds\)/ {s+=$2} END{print s+0}' "$tf")
      foreign=$(awk -v a="$j0" -v b="$j1" -v o="$own" 'BEGIN{x=(b-a)/100-o; if (x<0) x=0; printf "%.2f", x}')
      fmax=$(awk -v w="$wall" 'BEGIN{printf "%.2f", 0.3+0.05*w}')
      printf '  %-18s run %d: rc=%d wall=%6ss rss=%5sMB cpu=%ss foreign_cpu=%ss busy_before=%s%%\n' \
        "$id" "$i" "$rc" "$wall" "$((rss / 1024))" "$own" "$foreign" "$bg"
      if awk -v f="$foreign" -v m="$fmax" 'BEGIN{exit !(f>m)}' && (( try < ${RETRIES:-2} )); then
        echo "    (other processes used ${foreign}s of CPU during it, more than ${fmax}s: run again)"; continue
      fi
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$tool" "$i" "$rc" "$wall" "$rss" "$bg" "$foreign" "$own" >>"$TSV"
      break
    done
    if (( rc != 0 )); then
      echo "  $id: exit $rc; last lines of $out:"; tail -5 "$out" | sed 's/^/    /'; return "$rc"
    fi
  done
  return 0
}

DKV=$("$DK" --version 2>/dev/null || echo "dk ?")

# ---- dk lint: first an untimed check that the generated project is clean (0 errors, 0 warnings)
say "dk lint: checking the generated project is clean ($DKV, $DK)"
rc=0; "$DK" lint -o json "$DKP" >"$LOGS/dk_lint_check.json" 2>"$LOGS/dk_lint_check.err" || rc=$?
read -r errs warns <<<"$("$PY" -c 'import json,sys
try:
    s = json.load(open(sys.argv[1]))["summary"]; print(s["errors"], s["warnings"])
except Exception:
    print("? ?")' "$LOGS/dk_lint_check.json")"
echo "  exit $rc, errors=$errs warnings=$warns"
if [[ $rc -ne 0 || $errs != 0 || $warns != 0 ]]; then
  echo "dk lint does not pass cleanly on the generated project; first diagnostics:" >&2
  "$DK" lint -o short "$DKP" 2>&1 | head -20 >&2 || true
  exit 1
fi

say "timing ($RUNS run(s) each; logs in $LOGS)"
measure dk_lint "$DKV" -- "$DK" lint "$DKP"

# ---- dk pipeline show / order, if this dk has them
HAVE_PIPELINE=
if "$DK" pipeline --help >/dev/null 2>&1; then
  ok=1
  for sub in "show --output json" "order"; do
    # shellcheck disable=SC2086
    if ! (cd "$DKP" && "$DK" pipeline $sub >"$LOGS/dk_pipeline_check.out" 2>&1); then
      echo "note: 'dk pipeline $sub' failed on the project; skipping the pipeline timings:"; tail -5 "$LOGS/dk_pipeline_check.out" | sed 's/^/    /'
      ok=
      break
    fi
  done
  if [[ -n $ok ]]; then
    HAVE_PIPELINE=1
    (cd "$DKP" && "$DK" pipeline show --output json >"$LOGS/dk_pipeline_show_check.json")
    "$PY" -c 'import json,sys
d = json.load(open(sys.argv[1])); n, e = len(d.get("nodes", [])), len(d.get("edges", []))
want = int(sys.argv[2]) + int(sys.argv[3])
print(f"  dk pipeline show: {n} nodes, {e} edges" + ("" if n == want else f"  (expected {want} nodes: check the graph!)"))' \
      "$LOGS/dk_pipeline_show_check.json" "$N_DATASETS" "$N_TRANSFORMS" || true
    echo "  dk pipeline order: $(wc -l <"$LOGS/dk_pipeline_check.out") lines (transforms: $N_TRANSFORMS)"
    (cd "$DKP" && measure dk_pipeline_show "$DKV" -- "$DK" pipeline show --output json) || true
    (cd "$DKP" && measure dk_pipeline_order "$DKV" -- "$DK" pipeline order) || true
  fi
else
  echo "note: this dk has no 'pipeline' command yet ('dk pipeline --help' fails): skipping dk pipeline show/order"
fi

# ---- dbt
if [[ -z $SKIP_DBT ]]; then
  DBTVER=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("dbt-core"))' 2>/dev/null || echo "?")
  cd "$DBTP"
  if [[ -z $SKIP_PY ]]; then
    PRE="rm -rf '$DBTP/target' '$DBTP/logs'" measure dbt_parse "dbt-core $DBTVER (python)" -- \
      "$DBT" parse --no-partial-parse --profiles-dir "$DBTP" || true
    if [[ -n $HAVE_PIPELINE ]]; then
      # right after a parse: partial parsing is on by default, so this is dbt's warm path
      measure dbt_ls "dbt-core $DBTVER (python)" -- "$DBT" ls --profiles-dir "$DBTP" || true
    fi
  fi
  if [[ -z $SKIP_V2 ]]; then
    V2T=$WORK/v2target
    V2VER=$("$DBTV2" --version 2>/dev/null | head -1 || echo "dbt v2 ?")
    PRE="rm -rf '$V2T'" measure dbtv2_parse "$V2VER (rust)" -- \
      "$DBTV2" parse --profiles-dir "$DBTP" --project-dir "$DBTP" --target-path "$V2T" || true
    if [[ -n $HAVE_PIPELINE ]]; then
      PRE="rm -rf '$V2T'" measure dbtv2_ls "$V2VER (rust)" -- \
        "$DBTV2" ls --profiles-dir "$DBTP" --project-dir "$DBTP" --target-path "$V2T" || true
    fi
  fi
  cd "$HERE"
fi

# ---------------------------------------------------------------------------------------------------------
say "results ($RES/report.md)"
"$PY" "$HERE/report.py" "$TSV" "$RES/shape.txt" | tee "$RES/report.md"

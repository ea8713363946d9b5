#!/usr/bin/env bash
# The quickstart: builds dk, creates a project from the quickstart template and walks through it.
# Needs only the Rust toolchain. Usage: scripts/quickstart.sh [DIR]  (default: a new temp dir)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cargo build --quiet --locked --manifest-path "$repo/Cargo.toml" -p dk-cli
dk="${CARGO_TARGET_DIR:-$repo/target}/debug/dk"

dir="${1:-$(mktemp -d -t dk-quickstart-XXXXXX)/shop}"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step dk init "$dir" --template quickstart
"$dk" init "$dir" --template quickstart
cd "$dir"
step dk lint
"$dk" lint
if "$dk" pipeline --help >/dev/null 2>&1; then
  step dk pipeline show
  "$dk" pipeline show
  step dk pipeline order
  "$dk" pipeline order
fi
step dk dataset list
"$dk" dataset list
step dk plan -e dev --out .dk/plan.json
"$dk" plan -e dev --out .dk/plan.json
step dk apply -e dev .dk/plan.json
"$dk" apply -e dev .dk/plan.json
step dk plan -e dev --detailed-exitcode
"$dk" plan -e dev --detailed-exitcode
step dk state list -e dev
"$dk" state list -e dev
step dk run -e dev
"$dk" run -e dev
step dk test -e dev
"$dk" test -e dev
step dk test --unit
"$dk" test --unit
step dk runs list -e dev
"$dk" runs list -e dev

cat <<TXT

Your project is in $dir. Next:
  - read the manifests: project.yaml, dataset/*.yaml, transforms/*/dk.yaml
  - the warehouse is the DuckDB file .dk/warehouse.duckdb (raw CSV files under data/); state, run and
    test records are in .dk/state/dev/
  - run again only what is due:  $dk run -e dev --due ; changes made outside dk:  $dk drift -e dev
  - add a dataset:   $dk dataset create customers --store warehouse --table main.customers --column id:bigint
  - check it again:  $dk lint   (--output json|sarif|junit for CI)
  - see docs/ in the dk repository for every manifest field and diagnostic code.
TXT

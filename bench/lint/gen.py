#!/usr/bin/env python3
"""P1 generator: one pipeline graph written twice, as a dk project and as the equivalent dbt project.

    gen.py OUTDIR [--datasets 10000] [--transforms 5000] [--seed 7] [--per-dir 100]

Writes OUTDIR/dk/ and OUTDIR/dbt/ (both replaced) and prints the shape on one line.
Defaults come from the environment (N_DATASETS, N_TRANSFORMS, SEED) when set. Python standard library
only; the output is deterministic for a given (datasets, transforms, seed).

The graph (the same in both projects):
  - D DataSets ds-00001..; S = D - T of them are sources (nobody writes them: ds-00001..ds-S),
    Transform t-i (i = 1..T) writes exactly one DataSet, ds-(S+i).  No two Transforms write one DataSet.
  - Every Transform reads 1-3 DataSets, only sources or outputs of EARLIER transforms, so there is no
    cycle.  Shaped like /work/shared/peers/gen_dbt_project.py: the first T/20 transforms ("staging")
    read 1-2 sources; the rest read 1-3 upstream outputs picked from a window of the 40 previous
    transforms (long chains; half of them read their immediate predecessor), with a few "hub" outputs
    that many later transforms read (fan-out), and 1 in 4 also joins a source (when under 3 inputs).
    Sources are handed out round-robin.
  - Every DataSet has 3-6 columns (id bigint, updated_at timestamp, 1-4 more from a pool of logical
    types) and 2-3 checks: not_null + unique on id, plus range {min: 0} on `amount` or accepted_values
    on `status` when the DataSet has that column.

dk project (OUTDIR/dk): project.yaml, connector/duckdb.yaml, store/warehouse.yaml,
environments/dev.yaml, dataset/<name>.yaml (one per DataSet), transforms/<name>/dk.yaml + query.sql
(runtime sql; view or table; on-change or a cron schedule; the SQL reads its inputs with
{{ ref('ds-…') }}).

dbt project (OUTDIR/dbt): the S sources in models/sources.yml (source `raw`), one model per Transform
named after the DataSet it writes (ds_XXXXX), in folders of PER_DIR with one schema.yml each, SQL
using {{ ref() }} / {{ source() }} for the same edges; the same columns (with data_type) and the same
tests (not_null, unique, accepted_values, and a project-local generic test `in_range` for range).
dbt_project.yml and profiles.yml for dbt-duckdb (the database is never opened by parse or ls).
"""
import argparse
import os
import random
import shutil

API = "datakit.infoblox.dev/v1alpha1"

# Extra columns beyond id/updated_at: (name, logical type, dbt/duckdb data_type).
POOL = [
    ("amount", "double", "double"),
    ("status", "string", "varchar"),
    ("customer_id", "bigint", "bigint"),
    ("name", "string", "varchar"),
    ("quantity", "integer", "integer"),
    ("is_active", "boolean", "boolean"),
    ("created_at", "timestamp", "timestamp"),
    ("price", "decimal(12,2)", "decimal(12,2)"),
    ("event_date", "date", "date"),
    ("region", "string", "varchar"),
]
SQL_NULL = {"double": "double", "string": "varchar", "bigint": "bigint", "integer": "integer",
            "boolean": "boolean", "timestamp": "timestamp", "decimal(12,2)": "decimal(12,2)", "date": "date"}
STATUSES = ["new", "active", "closed"]
CRONS = ["0 */6 * * *", "0 2 * * *", "30 1 * * 1-5", "*/15 * * * *", "0 0 1 * *", "15 4 * * 0"]
CLASSES = ["internal", "internal", "internal", "confidential", "public"]


def env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v.strip() else default


def build_graph(n_ds, n_tr, seed):
    """Returns (datasets, sources, outputs, transforms, inputs per transform, columns per dataset, hub indexes,
    source reads handed out, materialization per transform, cron (or None) per transform)."""
    if n_tr < 1 or n_ds <= n_tr:
        raise SystemExit(f"need 1 <= transforms < datasets (got datasets={n_ds}, transforms={n_tr})")
    rng = random.Random(seed)
    width = max(5, len(str(n_ds)))
    ds = [f"ds-{i:0{width}d}" for i in range(1, n_ds + 1)]
    n_src = n_ds - n_tr
    sources = ds[:n_src]
    outputs = ds[n_src:]  # outputs[i] is written by transform i
    tr = [f"t-{i:0{width}d}" for i in range(1, n_tr + 1)]

    columns = {}
    for d in ds:
        extra = rng.sample(POOL, rng.randint(1, 4))
        columns[d] = [("id", "bigint", "bigint"), ("updated_at", "timestamp", "timestamp")] + extra

    roots = max(1, n_tr // 20)
    window = 40
    hubs = set()
    inputs = {}
    cursor = 0

    def next_source():
        nonlocal cursor
        s = sources[cursor % n_src]
        cursor += 1
        return s

    for i in range(n_tr):
        if i < roots:
            k = rng.randint(1, 2)
            ins = []
            while len(ins) < min(k, n_src):
                s = next_source()
                if s not in ins:
                    ins.append(s)
            inputs[tr[i]] = ins
            if rng.random() < 0.2:
                hubs.add(i)
            continue
        k = rng.choice([1, 1, 2, 2, 3])
        chosen = {i - 1 if rng.random() < 0.5 else rng.randint(max(0, i - window), i - 1)}
        while len(chosen) < min(k, i):
            if hubs and rng.random() < 0.25:
                chosen.add(rng.choice(sorted(hubs)))
            else:
                chosen.add(rng.randint(max(0, i - window), i - 1))
        ins = [outputs[j] for j in sorted(chosen)]
        if len(ins) < 3 and rng.random() < 0.25:
            ins.append(next_source())
        inputs[tr[i]] = ins
        if rng.random() < 0.02:
            hubs.add(i)
    # materialization and trigger per transform (a second stream, so the graph does not depend on them)
    rng2 = random.Random(seed + 1)
    mat, cron = {}, {}
    for i, t in enumerate(tr):
        mat[t] = "table" if rng2.random() < 0.3 else "view"
        cron[t] = CRONS[i % len(CRONS)] if rng2.random() < 0.2 else None
    return ds, sources, outputs, tr, inputs, columns, hubs, cursor, mat, cron


def checks_of(cols):
    """dk checks per column name: id -> not_null, unique; amount -> range; status -> accepted_values."""
    names = [c[0] for c in cols]
    out = {"id": ["not_null", "unique"]}
    if "amount" in names:
        out["amount"] = [("range", 0)]
    elif "status" in names:
        out["status"] = [("accepted_values", STATUSES)]
    return out


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def select_sql(columns, out, ups, call):
    """A SELECT producing the columns of `out` from the upstreams `ups`; `call(u)` renders u's relation."""
    cols = columns[out]
    lines = []
    have = {}
    for j, u in enumerate(ups):
        for c in columns[u]:
            have.setdefault(c[0], j)
    sel = []
    for name, typ, _ in cols:
        if name in have:
            sel.append(f"u{have[name]}.{name}")
        else:
            sel.append(f"cast(null as {SQL_NULL[typ]}) as {name}")
    lines.append("select " + ",\n       ".join(sel))
    lines.append(f"from {call(ups[0])} as u0")
    for j in range(1, len(ups)):
        lines.append(f"left join {call(ups[j])} as u{j} on u{j}.id = u0.id")
    return "\n".join(lines) + "\n"


def yq(s):
    """A YAML double-quoted scalar."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def gen_dk(root, ds, sources, outputs, tr, inputs, columns, mat, cron):
    os.makedirs(root)
    write(os.path.join(root, "project.yaml"),
          f"apiVersion: {API}\nkind: Project\nmetadata:\n  name: bench\n"
          "spec:\n  description: P1 benchmark project (generated by bench/lint/gen.py)\n"
          "  defaultEnvironment: dev\n  stateBackend:\n    type: local\n")
    for d in ("connector", "store", "environments", "dataset", "transforms"):
        os.makedirs(os.path.join(root, d))
    write(os.path.join(root, "connector", "duckdb.yaml"),
          f"apiVersion: {API}\nkind: Connector\nmetadata:\n  name: duckdb\n"
          "spec:\n  type: duckdb\n  capabilities: [source, destination]\n")
    write(os.path.join(root, "store", "warehouse.yaml"),
          f"apiVersion: {API}\nkind: Store\nmetadata:\n  name: warehouse\n"
          "spec:\n  connector: duckdb\n  connection:\n    path: .dk/warehouse.duckdb\n")
    write(os.path.join(root, "environments", "dev.yaml"),
          f"apiVersion: {API}\nkind: Environment\nmetadata:\n  name: dev\nspec:\n  tier: dev\n")

    src_set = set(sources)
    writer = {o: t for t, o in zip(tr, outputs)}
    for i, d in enumerate(ds):
        cols = columns[d]
        chk = checks_of(cols)
        origin = "landed by the loader" if d in src_set else f"written by {writer[d]}"
        s = [f"apiVersion: {API}", "kind: DataSet", "metadata:", f"  name: {d}", "  labels:",
             f"    domain: d{i % 10}", "spec:", "  store: warehouse", f"  table: main.{d.replace('-', '_')}",
             f"  classification: {CLASSES[i % len(CLASSES)]}", f"  description: Table {d}, {origin}.",
             "  schema:"]
        for name, typ, _ in cols:
            s.append(f"    - name: {name}")
            s.append(f"      type: {yq(typ) if '(' in typ else typ}")
            if name == "id":
                s.append("      nullable: false")
                s.append("      description: Primary key.")
            elif name == "updated_at":
                s.append("      description: Last change time.")
            items = []
            for c in chk.get(name, []):
                if c in ("not_null", "unique"):
                    items.append(c)
                elif c[0] == "range":
                    items.append(f"range: {{min: {c[1]}}}")
                elif c[0] == "accepted_values":
                    items.append(f"accepted_values: {{values: [{', '.join(c[1])}]}}")
            if items:
                s.append("      checks:")
                s += [f"        - {x}" for x in items]
        write(os.path.join(root, "dataset", d + ".yaml"), "\n".join(s) + "\n")

    for i, (t, out) in enumerate(zip(tr, outputs)):
        tdir = os.path.join(root, "transforms", t)
        os.mkdir(tdir)
        ins = inputs[t]
        s = [f"apiVersion: {API}", "kind: Transform", "metadata:", f"  name: {t}", "  labels:",
             f"    domain: d{i % 10}", "spec:", "  runtime: sql",
             f"  description: Builds {out} from {', '.join(ins)}.", "  sql: query.sql",
             f"  materialized: {mat[t]}", "  inputs:"]
        s += [f"    - dataset: {u}" for u in ins]
        s += ["  outputs:", f"    - dataset: {out}"]
        if cron[t]:
            s += ["  trigger:", "    policy: schedule", "    schedule:",
                  f"      cron: {yq(cron[t])}", "      timezone: UTC"]
        else:
            s += ["  trigger:", "    policy: on-change"]
        write(os.path.join(tdir, "dk.yaml"), "\n".join(s) + "\n")
        sql = f"-- {t}: {out} from {len(ins)} input(s)\n" + select_sql(
            columns, out, ins, lambda u: "{{ ref('" + u + "') }}")
        write(os.path.join(tdir, "query.sql"), sql)


def dbt_name(d):
    return d.replace("-", "_")


def dbt_columns_yaml(cols, indent):
    p = " " * indent
    chk = checks_of(cols)
    out = [f"{p}columns:"]
    for name, _, dtype in cols:
        out.append(f"{p}  - name: {name}")
        out.append(f"{p}    data_type: {yq(dtype) if '(' in dtype else dtype}")
        if name == "id":
            out.append(f"{p}    description: Primary key.")
        elif name == "updated_at":
            out.append(f"{p}    description: Last change time.")
        tests = []
        for c in chk.get(name, []):
            if c in ("not_null", "unique"):
                tests.append(f"{p}      - {c}")
            elif c[0] == "range":
                tests.append(f"{p}      - in_range:\n{p}          arguments:\n{p}            min: {c[1]}")
            elif c[0] == "accepted_values":
                tests.append(f"{p}      - accepted_values:\n{p}          arguments:\n"
                             f"{p}            values: [{', '.join(yq(v) for v in c[1])}]")
        if tests:
            out.append(f"{p}    data_tests:")
            out += tests
    return out


def gen_dbt(root, ds, sources, outputs, tr, inputs, columns, mat, per_dir, dbpath):
    os.makedirs(os.path.join(root, "models"))
    os.makedirs(os.path.join(root, "macros"))
    name = "bench"
    write(os.path.join(root, "dbt_project.yml"),
          f"name: {name}\nversion: '1.0.0'\nconfig-version: 2\nprofile: {name}\n"
          "model-paths: ['models']\nmacro-paths: ['macros']\ntarget-path: target\nclean-targets: ['target']\n"
          "models:\n  " + name + ":\n    +materialized: view\n")
    write(os.path.join(root, "profiles.yml"),
          f"{name}:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: {dbpath}\n      threads: 4\n")
    # dk's `range: {min: 0}` has no dbt built-in: a project-local generic test (as dbt_utils' accepted_range)
    write(os.path.join(root, "macros", "in_range.sql"),
          "{% test in_range(model, column_name, min=none, max=none) %}\n"
          "select * from {{ model }}\nwhere {{ column_name }} is not null\n"
          "{% if min is not none %}  and not ({{ column_name }} >= {{ min }}){% endif %}\n"
          "{% if max is not none %}  and not ({{ column_name }} <= {{ max }}){% endif %}\n"
          "{% endtest %}\n")
    src_set = set(sources)
    s = ["version: 2", "", "sources:", "  - name: raw", "    schema: raw", "    tables:"]
    for d in sources:
        s.append(f"      - name: {dbt_name(d)}")
        s.append(f"        description: Table {d}, landed by the loader.")
        s += dbt_columns_yaml(columns[d], 8)
    write(os.path.join(root, "models", "sources.yml"), "\n".join(s) + "\n")

    def call(u):
        return ("{{ source('raw', '" + dbt_name(u) + "') }}") if u in src_set else ("{{ ref('" + dbt_name(u) + "') }}")

    for start in range(0, len(tr), per_dir):
        ddir = os.path.join(root, "models", f"d_{start // per_dir:03d}")
        os.makedirs(ddir)
        sch = ["version: 2", "", "models:"]
        for i in range(start, min(len(tr), start + per_dir)):
            t, out = tr[i], outputs[i]
            ins = inputs[t]
            head = f"-- {t}: {out} from {len(ins)} input(s)\n"
            if mat[t] == "table":
                head += "{{ config(materialized='table') }}\n"
            write(os.path.join(ddir, dbt_name(out) + ".sql"), head + select_sql(columns, out, ins, call))
            sch.append(f"  - name: {dbt_name(out)}")
            sch.append(f"    description: Builds {out} from {', '.join(ins)}.")
            sch += dbt_columns_yaml(columns[out], 4)
        write(os.path.join(ddir, "schema.yml"), "\n".join(sch) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--datasets", type=int, default=env_int("N_DATASETS", 10000))
    ap.add_argument("--transforms", type=int, default=env_int("N_TRANSFORMS", 5000))
    ap.add_argument("--seed", type=int, default=env_int("SEED", 7))
    ap.add_argument("--per-dir", type=int, default=100)
    ap.add_argument("--only", choices=["dk", "dbt"], default=None, help="write one of the two projects")
    a = ap.parse_args()

    ds, sources, outputs, tr, inputs, columns, hubs, cursor, mat, cron = build_graph(a.datasets, a.transforms, a.seed)
    out = os.path.abspath(a.outdir)
    dk_root, dbt_root = os.path.join(out, "dk"), os.path.join(out, "dbt")
    if a.only in (None, "dk"):
        if os.path.exists(dk_root):
            shutil.rmtree(dk_root)
        gen_dk(dk_root, ds, sources, outputs, tr, inputs, columns, mat, cron)
    if a.only in (None, "dbt"):
        if os.path.exists(dbt_root):
            shutil.rmtree(dbt_root)
        gen_dbt(dbt_root, ds, sources, outputs, tr, inputs, columns, mat, a.per_dir, os.path.join(out, "dbt.duckdb"))

    edges = sum(len(v) for v in inputs.values())
    src_set = set(sources)
    src_reads = sum(1 for v in inputs.values() for u in v if u in src_set)
    fan_out = {}
    for v in inputs.values():
        for u in v:
            fan_out[u] = fan_out.get(u, 0) + 1
    checks = sum(len(c) for d in ds for c in checks_of(columns[d]).values())
    depth = {}
    for t, o in zip(tr, outputs):
        depth[o] = 1 + max((depth.get(u, 0) for u in inputs[t]), default=0)
    print(f"generated {out}/{{dk,dbt}}: datasets={len(ds)} sources={len(sources)} transforms={len(tr)} "
          f"edges={edges} source_reads={src_reads} unread_sources={len(src_set - {u for v in inputs.values() for u in v})} "
          f"checks={checks} tables={sum(1 for m in mat.values() if m == 'table')} "
          f"scheduled={sum(1 for c in cron.values() if c)} max_fan_in={max(len(v) for v in inputs.values())} "
          f"max_fan_out={max(fan_out.values())} longest_chain={max(depth.values())} hubs={len(hubs)}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""bench/sync's peer: copy a PostgreSQL table into a fresh DuckDB file with dlt's sql_database source.

    dlt_sync.py --dsn postgresql+psycopg2://USER@HOST:PORT/DB --schema bench --table events \
                --duckdb FILE --workdir DIR [--backend pyarrow]

As shared/peers/dlt_sync.py (P4): `sql_table(..., backend=pyarrow)` (Arrow tables -> parquet -> DuckDB),
everything else at dlt's defaults (chunk_size 50000, one normalize worker). The pipeline's working folder
and the DuckDB file are removed first, so every run is a full first load. Prints dlt's step timings and
the rows read back from DuckDB (`rows=N`).
"""
import argparse
import os
import shutil
import time

import dlt
import duckdb
from dlt.sources.sql_database import sql_table

ap = argparse.ArgumentParser()
ap.add_argument("--dsn", required=True, help="SQLAlchemy URL; postgresql+psycopg2:// (psycopg 3 is not installed)")
ap.add_argument("--schema", default="bench")
ap.add_argument("--table", default="events")
ap.add_argument("--duckdb", required=True)
ap.add_argument("--workdir", required=True)
ap.add_argument("--backend", default="pyarrow")
a = ap.parse_args()

name = f"bench_sync_{a.backend}"
shutil.rmtree(a.workdir, ignore_errors=True)
for f in (a.duckdb, a.duckdb + ".wal"):
    if os.path.exists(f):
        os.remove(f)

t0 = time.time()
pipe = dlt.pipeline(pipeline_name=name, pipelines_dir=a.workdir,
                    destination=dlt.destinations.duckdb(a.duckdb), dataset_name=a.schema)
pipe.run(sql_table(credentials=a.dsn, schema=a.schema, table=a.table, backend=a.backend))
t1 = time.time()
for step in pipe.last_trace.steps:
    if step.finished_at and step.started_at:
        print(f"step {step.step}: {(step.finished_at - step.started_at).total_seconds():.2f}s")
con = duckdb.connect(a.duckdb, read_only=True)
n = con.execute(f'select count(*) from "{a.schema}"."{a.table}"').fetchone()[0]
cols = con.execute("select column_name, data_type from information_schema.columns "
                   "where table_schema = ? and table_name = ? order by ordinal_position",
                   [a.schema, a.table]).fetchall()
print(f"backend={a.backend} rows={n} seconds={t1 - t0:.2f} file_mb={os.path.getsize(a.duckdb) / 2**20:.0f}")
print("columns:", ", ".join(f"{c} {t}" for c, t in cols))

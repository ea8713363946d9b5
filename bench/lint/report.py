#!/usr/bin/env python3
"""P1 report: the table of medians, the ratios dbt/dk and the goals of BENCHMARKS.md (P1).

    report.py RUNS_TSV [SHAPE_TXT]

RUNS_TSV is what bench/lint/run.sh writes (one line per kept run: id, tool, run, rc, wall_s, max_rss_kb,
busy_pct, foreign_cpu_s). Python standard library only.
"""
import csv
import statistics
import sys

# (id, what it is)
ROWS = [
    ("dk_lint", "dk lint"),
    ("dbt_parse", "dbt parse --no-partial-parse"),
    ("dbtv2_parse", "dbt Core v2 parse"),
    ("dk_pipeline_show", "dk pipeline show --output json"),
    ("dk_pipeline_order", "dk pipeline order"),
    ("dbt_ls", "dbt ls (after a parse: partial parse)"),
    ("dbtv2_ls", "dbt Core v2 ls"),
]
GOAL_WALL_S = 1.0
GOAL_RSS_MB = 200
GOAL_VS_V2 = 7.0
GOAL_VS_PY = 50.0


def main():
    tsv = sys.argv[1]
    shape = open(sys.argv[2]).read().strip() if len(sys.argv) > 2 else ""
    runs = {}
    tools = {}
    with open(tsv) as f:
        for r in csv.DictReader(f, delimiter="\t"):
            runs.setdefault(r["id"], []).append(r)
            tools[r["id"]] = r["tool"]

    stat = {}
    for id_, rs in runs.items():
        ok = [r for r in rs if r["rc"] == "0"]
        walls = [float(r["wall_s"]) for r in ok]
        if not walls:
            stat[id_] = None
            continue
        stat[id_] = {
            "median": statistics.median(walls),
            "min": min(walls),
            "rss_mb": max(int(r["max_rss_kb"]) for r in ok) / 1024,
            "n": len(walls),
            "failed": len(rs) - len(ok),
            "disturbed": max(float(r["foreign_cpu_s"]) for r in ok),
            "cpu": statistics.median(float(r["cpu_s"]) for r in ok) if all(r.get("cpu_s") for r in ok) else None,
        }

    if shape:
        print("Shape: " + shape.replace("\n", "; "))
        print()
    print("| measurement | tool | median s | min s | median CPU s | peak RSS MB | runs |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for id_, what in ROWS:
        if id_ not in runs:
            continue
        s = stat[id_]
        if s is None:
            print(f"| {what} | {tools[id_]} | failed | | | | {len(runs[id_])} |")
            continue
        fail = f" ({s['failed']} failed)" if s["failed"] else ""
        cpu = f"{s['cpu']:.3f}" if s["cpu"] is not None else ""
        print(f"| {what} | {tools[id_]} | {s['median']:.3f} | {s['min']:.3f} | {cpu} | {s['rss_mb']:.0f} | {s['n']}{fail} |")
    print()

    def med(id_):
        s = stat.get(id_)
        return s["median"] if s else None

    def ratio(num, den):
        a, b = med(num), med(den)
        return a / b if a is not None and b else None

    print("Ratios (medians; how many times faster dk is):")
    pairs = [
        ("dbt_parse", "dk_lint"), ("dbtv2_parse", "dk_lint"),
        ("dbt_ls", "dk_pipeline_show"), ("dbtv2_ls", "dk_pipeline_show"),
        ("dbt_ls", "dk_pipeline_order"), ("dbtv2_ls", "dk_pipeline_order"),
    ]
    names = dict(ROWS)
    any_ratio = False
    for num, den in pairs:
        r = ratio(num, den)
        if r is not None:
            any_ratio = True
            print(f"- {names[num]} / {names[den]}: {r:.1f}x ({med(num):.3f} s / {med(den):.3f} s)")
    if not any_ratio:
        print("- (no dbt figures in this run)")
    print()

    print("Goals (BENCHMARKS.md, P1):")
    results = []

    def goal(text, value, ok):
        verdict = "n/a " if ok is None else ("PASS" if ok else "FAIL")
        results.append(ok)
        print(f"- [{verdict}] {text}: {value}")

    lint = stat.get("dk_lint")
    if lint:
        goal(f"dk lint wall <= {GOAL_WALL_S:g} s", f"{lint['median']:.3f} s", lint["median"] <= GOAL_WALL_S)
        goal(f"dk lint peak RSS <= {GOAL_RSS_MB} MB", f"{lint['rss_mb']:.0f} MB", lint["rss_mb"] <= GOAL_RSS_MB)
    else:
        goal("dk lint", "not measured", None)
    r = ratio("dbtv2_parse", "dk_lint")
    goal(f">= {GOAL_VS_V2:g}x dbt Core v2 (Rust) parse", f"{r:.1f}x" if r else "not measured", None if r is None else r >= GOAL_VS_V2)
    r = ratio("dbt_parse", "dk_lint")
    goal(f">= {GOAL_VS_PY:g}x Python dbt parse", f"{r:.1f}x" if r else "not measured", None if r is None else r >= GOAL_VS_PY)
    if "dk_pipeline_show" not in runs:
        print("- (dk pipeline show/order not measured: this dk has no `pipeline` command, or it failed)")
    disturbed = [k for k, s in stat.items() if s and s["disturbed"] > 0.3 + 0.05 * s["median"]]
    if disturbed:
        print(f"\nNote: other processes used noticeable CPU during some kept runs of: {', '.join(disturbed)}. "
              "Their wall times are inflated; Python dbt is single-threaded, so its median CPU time is the "
              "better estimate of its wall time on a quiet machine.")
    if any(v is False for v in results):
        print("\nVerdict: at least one P1 goal is missed at this size.")
    elif all(v is True for v in results):
        print("\nVerdict: every P1 goal is met at this size.")
    else:
        print("\nVerdict: the goals measured are met; some were not measured.")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""run.sh's table, from the JSON that engines.py and ours.py left in WORK, and whether the
answers agree: the engines' top-10 rows with each other (exactly), ours with them (events
exactly, unique users within 2%, issue 25's bound for sketches).

  report.py WORK
"""
import json
import os
import sys


def load(work, name):
    path = os.path.join(work, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as saved:
        return json.load(saved)


def agrees(ours, exact):
    if [row[:2] for row in ours] != [row[:2] for row in exact]:
        return False
    return all(abs(mine[2] - truth[2]) <= 0.02 * truth[2] for mine, truth in zip(ours, exact))


def main():
    work = sys.argv[1]
    chdb, duckdb = load(work, "chdb"), load(work, "duckdb")
    cold, warm = load(work, "cold"), load(work, "warm")
    print()
    print("| question | chDB median (cold) | DuckDB median (cold) | Volcanion cold p99 (first) | warm p99 |")
    print("|---|---|---|---|---|")
    notes = []
    for question in chdb:
        c, d = chdb[question], duckdb[question]
        ours_cold = ours_warm = "skipped (no endpoint)"
        if cold:
            o = cold[question]
            ours_cold = f"{o['p99_ms']:.1f} ms ({o['first_ms']:.1f} ms)"
            ours_warm = f"{warm[question]['p99_ms']:.2f} ms"
            verdict = "agree" if agrees(o["rows"], d["rows"]) else "DIFFER"
            notes.append(f"- {question}: ours and DuckDB {verdict} (events exact, users within 2%)")
        print(f"| {question} | {c['median_ms']:.0f} ms ({c['cold_ms']:.0f} ms) | "
              f"{d['median_ms']:.0f} ms ({d['cold_ms']:.0f} ms) | {ours_cold} | {ours_warm} |")
        if c["rows"] != d["rows"]:
            notes.append(f"- {question}: chDB and DuckDB DIFFER: {c['rows'][:3]} vs {d['rows'][:3]}")
    print()
    if not cold:
        print("GET /api/v1/reports/breakdown answered 404: our row is skipped.")
    print("\n".join(notes) or "- chDB and DuckDB agree on every row")
    if any("DIFFER" in note for note in notes):
        sys.exit(1)


if __name__ == "__main__":
    main()

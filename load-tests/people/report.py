#!/usr/bin/env python3
"""run.sh's table, from the JSON that engines.py and ours.py left in WORK, and whether the
answers agree exactly: our funnel's users per step with chDB's windowFunnel, our
retention grid with chDB's recount, our visits (count, bounces, median duration) and top
entry pages with chDB's window-function recount.

  report.py WORK
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "breakdowns"))
from report import load  # noqa: E402


def main():
    work = sys.argv[1]
    by_time, by_type = load(work, "chdb-ts"), load(work, "chdb-event_type")
    grid = load(work, "chdb-retention")
    visits = load(work, "chdb-sessions")
    cold, warm = load(work, "cold"), load(work, "warm")
    # ours.py asks the funnel first, then the retention grid, the summary, the entry pages.
    funnel, retention, summary, entries, cut = list(cold)
    print()
    print("| question | chDB by time, median (cold) | chDB by type, median (cold) "
          "| Volcanion cold p99 (first) | warm p99 |")
    print("|---|---|---|---|---|")
    for question in (funnel, retention, summary, entries, cut):
        engines = [f"{run['median_ms']:.0f} ms ({run['cold_ms']:.0f} ms)" if question == funnel else "—"
                   for run in (by_time, by_type)]
        if question == summary:
            engines[0] = f"{visits['median_ms']:.0f} ms ({visits['cold_ms']:.0f} ms)"
        o = cold[question]
        print(f"| {question} | {' | '.join(engines)} | {o['p99_ms']:.1f} ms ({o['first_ms']:.1f} ms) | "
              f"{warm[question]['p99_ms']:.2f} ms |")
    print()
    ours_funnel = cold[funnel]["answer"]
    ours_grid = [[cohort["start"][:10], cohort["users"]] + cohort["returned"] for cohort in cold[retention]["answer"]]
    verdicts = [("funnel users per step", ours_funnel, by_time["users"]),
                ("funnel users per step (by type)", ours_funnel, by_type["users"]),
                ("retention grid", ours_grid, grid)]
    count, rate, seconds = cold[summary]["answer"]
    verdicts.append(("visits, bounces, median seconds", [count, round(rate * count), seconds],
                     [visits["visits"], visits["bounces"], visits["median_seconds"]]))
    verdicts.append(("top entry pages", cold[entries]["answer"], visits["entries"]))
    failed = False
    for name, ours, theirs in verdicts:
        same = ours == theirs
        failed |= not same
        print(f"- {name}: ours {ours} {'equals' if same else 'DIFFERS from'} chDB's {theirs}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

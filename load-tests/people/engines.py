#!/usr/bin/env python3
"""The people benchmark's funnel on chDB (ClickHouse in process), over a native table.

  engines.py load PARQUET DIR ORDER    builds the table `events` in DIR, sorted by ORDER
                                       (`ts`, or `event_type, ts`)
  engines.py funnel DIR FROM TO        in a fresh process: prints JSON {cold_ms, median_ms,
                                       users}, cold the first run, median of the 5 after it
  engines.py retention DIR FROM TO     prints JSON [[week start, users, returned…]…]: the
                                       exact answer our retention question must give
  engines.py sessions DIR FROM TO      in a fresh process: prints JSON {cold_ms, median_ms,
                                       visits, bounces, median_seconds, entries}: visits
                                       as our summary and entryPage breakdown count them

The funnel is ours (view_pricing → signup → purchase, 7-day window, step 1 in [FROM, TO))
as ClickHouse's `windowFunnel` counts it, over the person each event belongs to (resolved
in the dataset: chDB is given the joins, which our service works out itself). `users[k]`
is the people whose deepest step is k + 1 or more.
"""
import json
import statistics
from datetime import date, datetime, timedelta, timezone
import sys
import time

RUNS = 5
WINDOW_MS = 7 * 86_400_000
STEPS = ["view_pricing", "signup", "purchase"]


def connect(path):
    import chdb

    return chdb.connect(path)


def load(parquet, path, order):
    connection = connect(path)
    connection.query(
        "CREATE TABLE events (ts DateTime64(3, 'UTC'), event_type LowCardinality(String), person String, "
        f"page LowCardinality(Nullable(String))) ENGINE = MergeTree ORDER BY ({order})")
    connection.query(f"INSERT INTO events SELECT ts, event_type, person, page FROM file('{parquet}', Parquet)")
    connection.query("OPTIMIZE TABLE events FINAL")


def funnel_sql(start, end):
    steps = ", ".join(f"event_type = '{step}'" for step in STEPS)
    first = f"event_type = '{STEPS[0]}' AND ts < '{end}'"
    steps = steps.replace(f"event_type = '{STEPS[0]}'", first, 1)
    listed = ", ".join(f"'{step}'" for step in STEPS)
    return (f"SELECT level, count() FROM (SELECT person, windowFunnel({WINDOW_MS})("
            f"toUInt64(toUnixTimestamp64Milli(ts)), {steps}) AS level FROM events "
            f"WHERE event_type IN ({listed}) AND ts >= '{start}' "
            f"AND ts < addMilliseconds(toDateTime64('{end}', 3, 'UTC'), {WINDOW_MS}) "
            f"GROUP BY person) WHERE level > 0 GROUP BY level ORDER BY level")


def retention(connection, start, end, periods=4):
    """Cohorts by the week (from Monday, UTC) of each person's first signup ever, within
    [start, end); per cohort, who did action_00 in each of the `periods` following weeks
    that have begun."""
    sql = (f"SELECT toString(toMonday(first)) AS week, count() AS users, "
           + ", ".join(f"countIf(has(weeks, addWeeks(toMonday(first), {k})))" for k in range(1, periods + 1))
           + " FROM (SELECT person, min(ts) AS first FROM events WHERE event_type = 'signup' GROUP BY person) "
           f"AS f LEFT JOIN (SELECT person, groupUniqArray(toMonday(ts)) AS weeks FROM events "
           f"WHERE event_type = 'action_00' GROUP BY person) AS r ON f.person = r.person "
           f"WHERE first >= '{start}' AND first < '{end}' GROUP BY week ORDER BY week")
    rows = json.loads(connection.query(sql, "JSONCompact").bytes())["data"]
    today = datetime.now(timezone.utc).date()
    grid = []
    for week, users, *returned in rows:
        monday = date.fromisoformat(week)
        begun = [int(n) for k, n in enumerate(returned, 1) if monday + timedelta(weeks=k) <= today]
        grid.append([week, int(users)] + begun)
    return grid


def visits_sql(start, end):
    """Each visit of [start, end): a person's events (one type at the same millisecond
    once) split where the gap from the one before is over 30 minutes or crosses UTC
    midnight, with its events, page views, duration in whole seconds and entry page."""
    return (
        "SELECT person, visit, count() AS events, countIf(event_type = 'page_view') AS views, "
        "intDiv(max(ms) - min(ms), 1000) AS seconds, "
        "argMinIf(page, (ms, event_type), event_type = 'page_view') AS entry FROM ("
        "SELECT person, ms, event_type, page, sum(if(previous < 0 OR ms - previous > 1800000 "
        "OR intDiv(ms, 86400000) != intDiv(previous, 86400000), 1, 0)) OVER (PARTITION BY person "
        "ORDER BY ms, event_type ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS visit FROM ("
        "SELECT person, ms, event_type, page, lagInFrame(ms, 1, toInt64(-1)) OVER (PARTITION BY person "
        "ORDER BY ms, event_type ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS previous FROM ("
        "SELECT person, toUnixTimestamp64Milli(ts) AS ms, event_type, min(page) AS page FROM events "
        f"WHERE ts >= '{start}' AND ts < '{end}' GROUP BY person, event_type, ts))) "
        "GROUP BY person, visit")


def sessions(connection, start, end):
    visits = visits_sql(start, end)
    tally = (f"SELECT count(), countIf(events = 1 AND views = 1), quantileExactLow(0.5)(seconds), "
             f"quantileExactHigh(0.5)(seconds) FROM ({visits})")

    def timed():
        began = time.perf_counter()
        rows = json.loads(connection.query(tally, "JSONCompact").bytes())["data"]
        return (time.perf_counter() - began) * 1000, rows

    cold, rows = timed()
    times = [timed()[0] for _ in range(RUNS)]
    count, bounces, low, high = (int(value) for value in rows[0])
    entries = json.loads(connection.query(
        f"SELECT entry, count() AS n FROM ({visits}) WHERE views > 0 GROUP BY entry "
        "ORDER BY n DESC, entry LIMIT 10", "JSONCompact").bytes())["data"]
    return {"cold_ms": cold, "median_ms": statistics.median(times), "visits": count, "bounces": bounces,
            "median_seconds": (low + high) / 2, "entries": [[page, int(n)] for page, n in entries]}


def main():
    command = sys.argv[1]
    if command == "load":
        load(sys.argv[2], sys.argv[3], sys.argv[4])
        return
    path, start, end = sys.argv[2:5]
    connection = connect(path)
    if command == "retention":
        print(json.dumps(retention(connection, start, end)))
        return
    if command == "sessions":
        print(json.dumps(sessions(connection, start, end)))
        return
    sql = funnel_sql(start, end)

    def timed():
        began = time.perf_counter()
        rows = json.loads(connection.query(sql, "JSONCompact").bytes())["data"]
        return (time.perf_counter() - began) * 1000, rows

    cold, rows = timed()
    times = [timed()[0] for _ in range(RUNS)]
    deepest = {int(level): int(count) for level, count in rows}
    users = [sum(n for level, n in deepest.items() if level >= step) for step in range(1, len(STEPS) + 1)]
    print(json.dumps({"cold_ms": cold, "median_ms": statistics.median(times), "users": users}))


if __name__ == "__main__":
    main()

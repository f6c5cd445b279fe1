#!/usr/bin/env python3
"""The breakdown questions (and the filtered summary) on chDB (ClickHouse in process) and DuckDB, over native tables.

  engines.py load ENGINE PARQUET DIR     builds the engine's native table `events` in DIR
  engines.py query ENGINE DIR FROM TO COUNTRY
      in a fresh process (so the engine's own caches are empty; the OS page cache may hold
      the files): prints JSON {question: {cold_ms, median_ms, rows}}, where cold is the
      first run (also the warm-up) and median the median of the 5 runs after it.

The questions are the breakdown endpoint's: top-10 pages by events with distinct users
over [FROM, TO), bots left out (the endpoint's default); then the same for one country.
Distinct users are exact here (`count(DISTINCT)`, uniqExact in ClickHouse).
"""
import json
import statistics
import sys
import time

RUNS = 5


def questions(start, end, country):
    where = f"ts >= '{start}' AND ts < '{end}' AND NOT bot"
    top = "SELECT page, count(*) AS events, count(DISTINCT user_id) AS users FROM events WHERE {} " \
          "GROUP BY page ORDER BY events DESC, page LIMIT 10"
    summary = "SELECT 'all', count(*), count(DISTINCT user_id) FROM events WHERE {}"
    return {
        "top-10 pages, unique users, 30 days": top.format(where),
        f"the same, where=country:{country}": top.format(f"{where} AND country = '{country}'"),
        f"summary (events, unique users), where=country:{country}": summary.format(f"{where} AND country = '{country}'"),
    }


class Chdb:
    def __init__(self, path):
        import chdb

        self.connection = chdb.connect(path)

    def run(self, sql):
        return json.loads(self.connection.query(sql, "JSONCompact").bytes())["data"]

    def load(self, parquet):
        self.connection.query(
            "CREATE TABLE events (ts DateTime('UTC'), event_type LowCardinality(String), user_id String, "
            "page String, referrer LowCardinality(String), country LowCardinality(String), "
            "device LowCardinality(String), bot Bool) ENGINE = MergeTree ORDER BY ts")
        self.connection.query(f"INSERT INTO events SELECT * FROM file('{parquet}', Parquet)")
        self.connection.query("OPTIMIZE TABLE events FINAL")


class Duckdb:
    def __init__(self, path):
        import duckdb

        self.connection = duckdb.connect(f"{path}/events.duckdb")

    def run(self, sql):
        return [list(row) for row in self.connection.execute(sql).fetchall()]

    def load(self, parquet):
        self.connection.execute(f"CREATE TABLE events AS SELECT * FROM read_parquet('{parquet}') ORDER BY ts")
        self.connection.execute("CHECKPOINT")


ENGINES = {"chdb": Chdb, "duckdb": Duckdb}


def timed(engine, sql):
    began = time.perf_counter()
    rows = engine.run(sql)
    return (time.perf_counter() - began) * 1000, rows


def main():
    command, name = sys.argv[1], sys.argv[2]
    if command == "load":
        parquet, path = sys.argv[3], sys.argv[4]
        ENGINES[name](path).load(parquet)
        return
    path, start, end, country = sys.argv[3:7]
    engine = ENGINES[name](path)
    answers = {}
    for question, sql in questions(start, end, country).items():
        cold, rows = timed(engine, sql)
        times = [timed(engine, sql)[0] for _ in range(RUNS)]
        answers[question] = {"cold_ms": cold, "median_ms": statistics.median(times),
                             "rows": [[str(row[0]), int(row[1]), int(row[2])] for row in rows]}
    print(json.dumps(answers))


if __name__ == "__main__":
    main()

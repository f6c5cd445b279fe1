#!/usr/bin/env python3
"""Times our breakdown endpoint (and the summary under the same filter): one connection, REQUESTS sequential requests per question,
each timed with time.perf_counter around request and full response.

  ours.py API KEY FROM TO COUNTRY REQUESTS

Prints JSON {question: {first_ms, p50_ms, p99_ms, ok, rows}} (first: the first request of
this process, so the first after a restart when run.sh has just started the service; ok:
the 2xx answers, the only ones timed). Exits 3, printing why, when the endpoint answers
404 (not built yet).
"""
import http.client
import json
import sys
import time
import urllib.parse

import numpy as np


def timed_requests(connection, path, key, requests):
    """`requests` sequential GETs of `path`: (times of the 2xx answers in ms, the first 2xx
    body); exits 3 on a 404 (the endpoint is not there)."""
    times, first = [], None
    for _ in range(int(requests)):
        began = time.perf_counter()
        connection.request("GET", path, headers={"X-API-Key": key})
        response = connection.getresponse()
        answer = response.read()
        elapsed = (time.perf_counter() - began) * 1000
        if response.status == 404:
            print(f"GET {path}: 404, no such endpoint yet: {answer[:200]!r}", file=sys.stderr)
            sys.exit(3)
        if not 200 <= response.status < 300:
            print(f"GET {path}: {response.status} {answer[:300]!r}", file=sys.stderr)
            continue
        times.append(elapsed)
        if first is None:
            first = json.loads(answer)
    if not times:
        sys.exit(f"GET {path}: no 2xx answer")
    return times, first


def summary_of(times):
    return {"first_ms": times[0], "p50_ms": float(np.percentile(times, 50)),
            "p99_ms": float(np.percentile(times, 99)), "ok": len(times)}


def main():
    api, key, start, end, country, requests = sys.argv[1:7]
    host = urllib.parse.urlparse(api).netloc
    connection = http.client.HTTPConnection(host, timeout=60)
    base = "/api/v1/reports/breakdown?" + urllib.parse.urlencode(
        {"from": start, "to": end, "dimension": "page", "limit": 10})
    where = urllib.parse.urlencode({"where": f"country:{country}"})
    summary = "/api/v1/reports/summary?" + urllib.parse.urlencode({"from": start, "to": end}) + "&" + where
    questions = {
        "top-10 pages, unique users, 30 days": base,
        f"the same, where=country:{country}": base + "&" + where,
        f"summary (events, unique users), where=country:{country}": summary,
    }
    answers = {}
    for question, path in questions.items():
        times, body = timed_requests(connection, path, key, requests)
        if "items" in body:
            rows = [[item["value"], item["events"], item["uniqueUsers"]] for item in body["items"]]
        else:
            rows = [["all", body["totalEvents"], body["uniqueUsers"]]]
        answers[question] = dict(summary_of(times), rows=rows)
    print(json.dumps(answers))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Times our funnel, retention, summary (visits) and entry page endpoints: one connection, REQUESTS sequential requests
per question (breakdowns/ours.py's timing).

  ours.py API KEY FROM TO REQUESTS

Prints JSON {question: {first_ms, p50_ms, p99_ms, ok, answer}} (answer: the funnel's users
per step, the retention cohorts, the summary's [visits, bounceRate, visitDurationSeconds],
or the top 10 entry pages as [page, visits]).
"""
import http.client
import json
import os
import sys
import urllib.parse
from datetime import datetime, timedelta

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "breakdowns"))
from ours import summary_of, timed_requests  # noqa: E402

FUNNEL = "3-step funnel (view_pricing, signup, purchase), 7-day window, 30 days"
RETENTION = "retention grid, signup then action_00, 4 weekly periods, 30 days"
SESSIONS = "summary with visits, bounce rate, median visit duration, 30 days"
ENTRIES = "top 10 entry pages (visits), 30 days"
CUT = "summary with visits, 29 days cut at noon at both ends"


def shifted(instant, hours):
    """`instant` (…Z) moved by `hours`."""
    moved = datetime.fromisoformat(instant.replace("Z", "+00:00")) + timedelta(hours=hours)
    return moved.strftime("%Y-%m-%dT%H:%M:%SZ")


def main():
    api, key, start, end, requests = sys.argv[1:6]
    connection = http.client.HTTPConnection(urllib.parse.urlparse(api).netloc, timeout=120)
    span = {"from": start, "to": end}
    questions = {
        FUNNEL: "/api/v1/reports/funnel?" + urllib.parse.urlencode(
            dict(span, steps="view_pricing,signup,purchase", window="7d")),
        RETENTION: "/api/v1/reports/retention?" + urllib.parse.urlencode(
            dict(span, startEvent="signup", returnEvent="action_00", interval="week", periods=4)),
        SESSIONS: "/api/v1/reports/summary?" + urllib.parse.urlencode(span),
        ENTRIES: "/api/v1/reports/breakdown?" + urllib.parse.urlencode(dict(span, dimension="entryPage")),
        CUT: "/api/v1/reports/summary?" + urllib.parse.urlencode(
            {"from": start.replace("T00:", "T12:"), "to": shifted(end, -12)}),
    }
    answers = {}
    for question, path in questions.items():
        times, body = timed_requests(connection, path, key, requests)
        if "steps" in body:
            answer = [step["users"] for step in body["steps"]]
        elif "cohorts" in body:
            answer = body["cohorts"]
        elif "visits" in body:
            answer = [body["visits"], body["bounceRate"], body["visitDurationSeconds"]]
        else:
            answer = [[item["value"], item["events"]] for item in body["items"]]
        answers[question] = dict(summary_of(times), answer=answer)
    print(json.dumps(answers))


if __name__ == "__main__":
    main()

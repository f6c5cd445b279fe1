#!/usr/bin/env python3
"""Checks that our enrichment gave the stored events the dataset's dimensions: lists the
newest 1000 events of the range (`enrichment` in the listing) and compares page,
referrerHost, country, deviceType and bot with the dataset's columns for the same event
(by its fixed eventId). Exits 1 on any difference, else says how many matched.

  check.py API KEY DIR FROM TO
"""
import http.client
import json
import os
import sys
import urllib.parse

import pyarrow.parquet as pq


def main():
    api, key, folder, start, end = sys.argv[1:6]
    connection = http.client.HTTPConnection(urllib.parse.urlparse(api).netloc, timeout=60)
    query = urllib.parse.urlencode({"from": start, "to": end, "limit": 1000})
    connection.request("GET", f"/api/v1/events?{query}", headers={"X-API-Key": key})
    response = connection.getresponse()
    answer = response.read()
    if response.status != 200:
        sys.exit(f"listing: {response.status} {answer[:300]!r}")
    items = json.loads(answer)["items"]
    rows = [int(item["eventId"].rsplit("-", 1)[1]) for item in items]
    # Only the listed rows become Python values (10 M of them would take gigabytes).
    columns = pq.read_table(os.path.join(folder, "events.parquet"),
                            columns=["page", "referrer", "country", "device", "bot"]).take(rows).to_pydict()
    differences = []
    for row, item in enumerate(items):
        enrichment = item.get("enrichment") or {}
        wanted = {"page": columns["page"][row], "referrerHost": columns["referrer"][row] or None,
                  "country": columns["country"][row], "deviceType": columns["device"][row],
                  "bot": columns["bot"][row]}
        got = {field: enrichment.get(field) for field in wanted}
        if got != wanted:
            differences.append((item["eventId"], wanted, got))
    for event_id, wanted, got in differences[:5]:
        print(f"enrichment of {event_id}: wanted {wanted}, got {got}", file=sys.stderr)
    if differences or not items:
        sys.exit(f"enrichment: {len(differences)} of {len(items)} listed events differ from the dataset")
    print(f"enrichment: {len(items)} of {len(items)} listed events match the dataset "
          "(page, referrerHost, country, deviceType, bot)", file=sys.stderr)


if __name__ == "__main__":
    main()

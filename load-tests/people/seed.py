#!/usr/bin/env python3
"""Posts the dataset dataset.py wrote to a running service, through the native batch endpoint
(in time order, CONCURRENCY batches at a time; the loop is breakdowns/seed.py's).

  seed.py API KEY DIR [--batch 500] [--concurrency 6]

Each event carries its `userId`, its `anonymousId` or both (an `identify`), as dataset.py
says, and a page view its page (`context.page.path`). Event ids are fixed, so a batch sent again stores nothing twice. Only 2xx answers
count: prints the accepted events, and exits 1 when any batch was refused or any event
rejected.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "breakdowns"))
from seed import seed_main  # noqa: E402


def body(codes, tables, first, last):
    types, pages, seed = tables["types"], tables["pages"], tables["seed"]
    stamps = np.datetime_as_string(codes["ts"][first:last].astype("datetime64[ms]"), unit="ms")
    person, event_type, carries, page = codes["person"], codes["event_type"], codes["carries"], codes["page"]
    parts = []
    for offset, i in enumerate(range(first, last)):
        p, carried = person[i], carries[i]
        ids = {1: f'"userId":"user_{p}"', 2: f'"anonymousId":"anon_{p}"',
               3: f'"userId":"user_{p}","anonymousId":"anon_{p}"'}[carried]
        context = f',"context":{{"page":{{"path":{pages[page[i]]}}}}}' if page[i] >= 0 else ""
        parts.append(f'{{"eventId":"pp{seed}-{i}","eventType":{types[event_type[i]]},{ids},'
                     f'"subsystem":"web","timestamp":"{stamps[offset]}Z"{context}}}')
    return ('{"events":[' + ",".join(parts) + "]}").encode()


def main():
    def body_maker(codes, tables):
        quoted = {"types": [json.dumps(name) for name in tables["eventTypes"]],
                  "pages": [json.dumps(page) for page in tables["pages"]], "seed": tables["seed"]}
        return lambda first, last: body(codes, quoted, first, last)
    seed_main(body_maker)


if __name__ == "__main__":
    main()

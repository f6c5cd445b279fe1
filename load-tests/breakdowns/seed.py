#!/usr/bin/env python3
"""Posts the dataset dataset.py wrote to a running service, through the native batch endpoint.

  seed.py API KEY DIR [--batch 500] [--concurrency 6]

Batches go out in time order (as live traffic arrives), CONCURRENCY at a time, each event
shaped so that our enrichment yields the dataset's columns: `context.page.url` on the
partner's host (page path), `context.page.referrer` (referrer host; none when direct),
`context.userAgent` (device, bot) and `context.ip` (country, through `enrich.geoip_db`).
Event ids are fixed, so a batch sent again after a 429/503 stores nothing twice. Only 2xx
answers count: prints the accepted events, and exits 1 when any batch was refused or any
event rejected.
"""
import argparse
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

import numpy as np

SITE = "https://shop.example.com"


def fragments(tables):
    """Pre-encoded JSON pieces, one per distinct page, referrer, address and agent."""
    quote = json.dumps
    return {
        "page": [quote(SITE + path) for path in tables["pages"]],
        "referrer": [""] + [',"referrer":' + quote(f"https://{host}/") for host in tables["referrers"]],
        "address": [quote(address) for address in tables["addresses"]],
        "agent": [quote(agent) for agent in tables["agents"]],
        "type": [quote(name) for name in tables["eventTypes"]],
    }


def body(codes, pieces, seed, first, last):
    stamps = np.datetime_as_string(codes["ts"][first:last].astype("datetime64[s]"), unit="s")
    user, page, referrer = codes["user"], codes["page"], codes["referrer"]
    event_type, address, agent = codes["event_type"], codes["user_address"], codes["user_agent"]
    parts = []
    for offset, i in enumerate(range(first, last)):
        u = user[i]
        parts.append(
            f'{{"eventId":"bd{seed}-{i}","eventType":{pieces["type"][event_type[i]]},"userId":"user_{u}",'
            f'"subsystem":"web","timestamp":"{stamps[offset]}Z","context":{{"page":{{"url":'
            f'{pieces["page"][page[i]]}{pieces["referrer"][referrer[i]]}}},'
            f'"userAgent":{pieces["agent"][agent[u]]},"ip":{pieces["address"][address[u]]}}}}}')
    return ('{"events":[' + ",".join(parts) + "]}").encode()


def load_dataset(directory):
    """What dataset.py wrote into `directory`: its codes (numpy arrays) and tables."""
    with np.load(os.path.join(directory, "codes.npz")) as saved:
        codes = {name: saved[name] for name in saved.files}
    with open(os.path.join(directory, "tables.json")) as saved:
        return codes, json.load(saved)


def post_batches(api, key, total, batch, concurrency, body_of):
    """Posts events 0..total in batches of `batch` (`body_of(first, last)` the JSON body),
    `concurrency` at a time, in order; a 429/503 is sent again. Prints the tally to stderr
    and returns it ({accepted, rejected, refused})."""
    starts = iter(range(0, total, batch))
    lock = threading.Lock()
    tally = {"accepted": 0, "rejected": 0, "refused": 0}
    host = urllib.parse.urlparse(api).netloc
    headers = {"X-API-Key": key, "Content-Type": "application/json"}

    def worker():
        connection = http.client.HTTPConnection(host, timeout=60)
        while True:
            with lock:
                first = next(starts, None)
            if first is None:
                return
            payload = body_of(first, min(first + batch, total))
            while True:
                connection.request("POST", "/api/v1/events/batch", payload, headers)
                response = connection.getresponse()
                answer = response.read()
                if response.status in (429, 503):
                    time.sleep(min(float(response.getheader("Retry-After", "1")), 5) / 10)
                    continue
                break
            with lock:
                if 200 <= response.status < 300:
                    counts = json.loads(answer)
                    tally["accepted"] += counts["accepted"]
                    tally["rejected"] += counts["rejected"]
                else:
                    tally["refused"] += 1
                    print(f"batch at {first}: {response.status} {answer[:300]!r}", file=sys.stderr)

    began = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    print(f"seeded: {tally['accepted']} of {total} events accepted (2xx) in {elapsed:.0f} s, "
          f"{tally['accepted'] / elapsed:.0f} events/s; {tally['rejected']} rejected, "
          f"{tally['refused']} batches refused", file=sys.stderr)
    return tally


def seed_main(body_maker):
    """The command line both seeders share: `API KEY DIR [--batch] [--concurrency]`; posts the
    dataset in DIR with the batch bodies `body_maker(codes, tables)` returns a maker of
    (`body_of(first, last)`), prints the accepted events, exits 1 on any refusal."""
    parser = argparse.ArgumentParser()
    parser.add_argument("api")
    parser.add_argument("key")
    parser.add_argument("dir")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=6)
    args = parser.parse_args()
    codes, tables = load_dataset(args.dir)
    tally = post_batches(args.api, args.key, len(codes["ts"]), args.batch, args.concurrency,
                         body_maker(codes, tables))
    print(tally["accepted"])
    sys.exit(1 if tally["rejected"] or tally["refused"] else 0)


def main():
    def body_maker(codes, tables):
        pieces = fragments(tables)
        return lambda first, last: body(codes, pieces, tables["seed"], first, last)
    seed_main(body_maker)


if __name__ == "__main__":
    main()

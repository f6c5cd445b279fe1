#!/usr/bin/env python3
"""The people benchmark's dataset (issue 26), the same for a given seed and size.

One partner, EVENTS events over the 30 days before START (epoch seconds), 200,000 people,
50 event types, sorted by time:
- a planted funnel: 100,000 people view the pricing page (`view_pricing`, 1 to 3 times),
  40% of them sign up (`signup`) 1 minute to 6 days after a view, 30% of those buy
  (`purchase`) 1 minute to 4 days after signing up, and a tenth of the sign-ups and
  purchases come too late for a 7-day window; some sign-ups and purchases have no view;
- the rest spread over 47 other types (Zipf) and every person uniformly;
- page views: the second most frequent of the other types is `page_view`, each on one of
  30 pages (Zipf), so visits have bounces and entry and exit pages;
- identity as a web tracker sees it: 40% of people browse anonymously (`anonymousId`
  only) until they sign in at a random instant (an `identify` carrying both ids), then
  carry their `userId`; 10% never sign in (their person is the anonymous id); the rest
  always carry their `userId`.

Writes into OUT: events.parquet (what chDB reads: ts in ms, event_type, person as the
service resolves it, user_id and anonymous_id as sent, a page view's page) and codes.npz with tables.json
(what seed.py turns into batch events).

Usage: dataset.py --events N --start EPOCH --out DIR [--seed 26]
"""
import argparse
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DAYS = 30
PEOPLE = 200_000
FUNNEL = ["view_pricing", "signup", "purchase"]
OTHER_TYPES = [f"action_{n:02}" for n in range(47)]
OTHER_TYPES[1] = "page_view"
PAGES = [f"/p/{n:02}" for n in range(30)]
TYPES = FUNNEL + OTHER_TYPES
VIEWERS = 100_000
SIGN_UP_SHARE, PURCHASE_SHARE, LATE_SHARE = 0.40, 0.30, 0.10
ANONYMOUS_FIRST, NEVER_SIGNED_IN = 0.40, 0.10
IDENTIFY = len(TYPES)  # the identify call, as its own code
MINUTE, DAY = 60_000, 86_400_000


def zipf(n, s=1.0):
    weights = 1.0 / np.arange(1, n + 1) ** s
    return weights / weights.sum()


def planted(rng, start_ms):
    """(ts, person, type) of the planted funnel's events."""
    ts, people, types = [], [], []
    viewers = rng.choice(PEOPLE, VIEWERS, replace=False)
    views = rng.integers(1, 4, VIEWERS)
    # Views early enough that most windows end inside the 30 days.
    first = rng.integers(start_ms, start_ms + (DAYS - 2) * DAY, VIEWERS)
    for person, count, at in zip(viewers, views, first):
        for extra in range(count):
            ts.append(at + extra * rng.integers(MINUTE, DAY))
            people.append(person)
            types.append(0)
    signed = rng.random(VIEWERS) < SIGN_UP_SHARE
    late = rng.random(VIEWERS) < LATE_SHARE
    gap = np.where(late, rng.integers(8 * DAY, 12 * DAY, VIEWERS), rng.integers(MINUTE, 6 * DAY, VIEWERS))
    bought = signed & (rng.random(VIEWERS) < PURCHASE_SHARE)
    gap2 = np.where(rng.random(VIEWERS) < LATE_SHARE, rng.integers(8 * DAY, 12 * DAY, VIEWERS),
                    rng.integers(MINUTE, 4 * DAY, VIEWERS))
    for i in np.nonzero(signed)[0]:
        ts.append(first[i] + gap[i])
        people.append(viewers[i])
        types.append(1)
        if bought[i]:
            ts.append(first[i] + gap[i] + gap2[i])
            people.append(viewers[i])
            types.append(2)
    # Sign-ups and purchases without a view.
    strays = rng.integers(0, PEOPLE, 20_000)
    ts.extend(rng.integers(start_ms, start_ms + DAYS * DAY, len(strays)))
    people.extend(strays)
    types.extend(rng.integers(1, 3, len(strays)))
    return np.array(ts, np.int64), np.array(people, np.int32), np.array(types, np.int32)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--start", type=int, required=True, help="end of the 30 days, epoch seconds")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=26)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    start_ms = (args.start - DAYS * 86400) * 1000
    end_ms = args.start * 1000

    # Identity per person: 0 always signed in, 1 anonymous until sign-in, 2 never signs in.
    kind = rng.choice(3, PEOPLE, p=[1 - ANONYMOUS_FIRST - NEVER_SIGNED_IN, ANONYMOUS_FIRST, NEVER_SIGNED_IN])
    sign_in = rng.integers(start_ms, end_ms, PEOPLE)
    anonymous_first = np.nonzero(kind == 1)[0]

    ts, person, event_type = planted(rng, start_ms)
    n_other = args.events - len(ts) - len(anonymous_first)
    if n_other < 0:
        raise SystemExit(f"--events must be at least {len(ts) + len(anonymous_first)}")
    ts = np.concatenate([ts, rng.integers(start_ms, end_ms, n_other), sign_in[anonymous_first]])
    person = np.concatenate([person, rng.integers(0, PEOPLE, n_other, dtype=np.int32),
                             anonymous_first.astype(np.int32)])
    others = 3 + rng.choice(len(OTHER_TYPES), n_other, p=zipf(len(OTHER_TYPES)))
    event_type = np.concatenate([event_type, others.astype(np.int32),
                                 np.full(len(anonymous_first), IDENTIFY, np.int32)])
    keep = (ts >= start_ms) & (ts < end_ms)
    ts, person, event_type = ts[keep], person[keep], event_type[keep]
    order = np.argsort(ts, kind="stable")
    ts, person, event_type = ts[order], person[order], event_type[order]

    # What each event carries: 1 user id, 2 anonymous id, 3 both (the identify).
    carries = np.where(kind[person] == 0, 1, np.where(kind[person] == 2, 2, np.where(ts < sign_in[person], 2, 1)))
    carries = np.where(event_type == IDENTIFY, 3, carries)

    views = event_type == TYPES.index("page_view")
    page = np.where(views, rng.choice(len(PAGES), len(ts), p=zipf(len(PAGES))), -1).astype(np.int16)

    os.makedirs(args.out, exist_ok=True)
    np.savez(os.path.join(args.out, "codes.npz"), ts=ts, person=person, event_type=event_type, carries=carries,
             page=page)
    with open(os.path.join(args.out, "tables.json"), "w") as out:
        json.dump({"eventTypes": TYPES + ["identify"], "pages": PAGES, "seed": args.seed}, out)
    users = np.array([f"user_{p}" for p in range(PEOPLE)], dtype=object)
    anonymous = np.array([f"anon_{p}" for p in range(PEOPLE)], dtype=object)
    resolved = np.where(kind == 2, anonymous, users)
    table = pa.table({
        "ts": pa.array(ts, pa.timestamp("ms", tz="UTC")),
        "event_type": pa.DictionaryArray.from_arrays(pa.array(event_type), pa.array(TYPES + ["identify"])),
        "person": pa.array(resolved[person], pa.string()),
        "user_id": pa.array(np.where(carries != 2, users[person], None), pa.string()),
        "anonymous_id": pa.array(np.where(carries != 1, anonymous[person], None), pa.string()),
        "page": pa.array(np.where(page >= 0, np.array(PAGES, dtype=object)[np.maximum(page, 0)], None), pa.string()),
    })
    pq.write_table(table, os.path.join(args.out, "events.parquet"), row_group_size=1_000_000)
    print(f"dataset: {len(ts)} events, {PEOPLE} people, {len(TYPES)} event types (and identify), "
          f"seed {args.seed}, in {args.out}")


if __name__ == "__main__":
    main()

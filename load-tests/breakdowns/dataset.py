#!/usr/bin/env python3
"""The breakdown benchmark's dataset (issue 25), the same for a given seed, size and GeoIP db.

One partner, EVENTS events over the 30 days before START (epoch seconds), sorted by time:
10,000 page paths on a Zipf law (s = 1), 500 referrer hosts on a Zipf law with 40% of the
traffic direct, 200,000 users drawn uniformly (so every one appears at 10 M events), and
per user (as a browser would be) one of 50 countries on a Zipf law, one public IPv4
address in it, and one user agent: desktop and mobile browsers, a tablet, and 5% crawlers
and monitors (bots, which breakdowns leave out by default). Event types: 80% page_view.

Country addresses are drawn at random from IPv4 and kept when the GeoIP db (the one the
service reads, `enrich.geoip_db`) maps them to the country wanted, so the service's
enrichment yields exactly the `country` column written here.

Writes into OUT: events.parquet (what chDB and DuckDB read: ts, event_type, user_id, page,
referrer host or '' for direct, country, device, bot), codes.npz and tables.json (what
seed.py turns into the native batch events).

Usage: dataset.py --events N --start EPOCH --geoip-db PATH --out DIR [--seed 25]
"""
import argparse
import ipaddress
import json
import os

import maxminddb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DAYS = 30
PAGES = 10_000
REFERRERS = 500
USERS = 200_000
DIRECT_SHARE = 0.4
ADDRESSES_PER_COUNTRY = 4
# Most traffic first: the Zipf law gives US ~22%, DE ~11%, GB ~7%.
COUNTRIES = (
    "US DE GB FR IN BR CA JP NL ES IT PL AU SE CH RU CN KR MX TR ID AR BE AT DK "
    "NO FI IE PT CZ RO UA ZA NG EG IL SG HK TW TH VN PH MY NZ CL CO GR HU SA AE"
).split()
EVENT_TYPES = [("page_view", 0.80), ("click", 0.10), ("scroll", 0.06), ("signup", 0.03), ("purchase", 0.01)]
# (user agent, device, bot, share of users)
AGENTS = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", "desktop", False, 0.30),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", "desktop", False, 0.10),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", "desktop", False, 0.05),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67", "desktop", False, 0.05),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", "mobile", False, 0.20),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36", "mobile", False, 0.20),
    ("Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", "tablet", False, 0.05),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot", True, 0.02),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "bot", True, 0.02),
    ("Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)", "bot", True, 0.01),
]
KNOWN_REFERRERS = (
    "google.com bing.com duckduckgo.com news.ycombinator.com reddit.com t.co facebook.com "
    "linkedin.com github.com stackoverflow.com"
).split()
PAGE_SECTIONS = ["blog", "docs", "products", "pricing", "help", "changelog", "careers", "guides"]


def zipf(n, s=1.0):
    weights = 1.0 / np.arange(1, n + 1) ** s
    return weights / weights.sum()


def page_paths():
    paths = ["/"]
    for rank in range(1, PAGES):
        section = PAGE_SECTIONS[rank % len(PAGE_SECTIONS)]
        paths.append(f"/{section}/{section[:3]}-{rank}")
    return paths


def referrer_hosts():
    hosts = list(KNOWN_REFERRERS)
    hosts += [f"site{rank}.example.org" for rank in range(len(hosts), REFERRERS)]
    return hosts


def country_addresses(db_path, rng):
    """ADDRESSES_PER_COUNTRY public IPv4 addresses per country, as the db maps them."""
    wanted = {country: [] for country in COUNTRIES}
    missing = len(COUNTRIES)
    with maxminddb.open_database(db_path) as reader:
        for _ in range(500):
            for number in rng.integers(1 << 24, 224 << 24, size=20_000):
                address = str(ipaddress.IPv4Address(int(number)))
                record = reader.get(address) or {}
                code = record.get("country_code") or (record.get("country") or {}).get("iso_code")
                found = wanted.get(code)
                if found is not None and len(found) < ADDRESSES_PER_COUNTRY:
                    found.append(address)
                    missing -= len(found) == ADDRESSES_PER_COUNTRY
            if missing == 0:
                return [address for country in COUNTRIES for address in wanted[country]]
    short = [country for country, found in wanted.items() if len(found) < ADDRESSES_PER_COUNTRY]
    raise SystemExit(f"the GeoIP db gave too few addresses for {short}")


def dictionary(codes, values):
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(values, pa.string()))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--start", type=int, required=True, help="end of the 30 days, epoch seconds")
    parser.add_argument("--geoip-db", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=25)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    n = args.events

    addresses = country_addresses(args.geoip_db, rng)
    # Per user: country, one of its addresses, user agent.
    user_country = rng.choice(len(COUNTRIES), USERS, p=zipf(len(COUNTRIES)))
    user_address = user_country * ADDRESSES_PER_COUNTRY + rng.integers(0, ADDRESSES_PER_COUNTRY, USERS)
    shares = np.array([agent[3] for agent in AGENTS])
    user_agent = rng.choice(len(AGENTS), USERS, p=shares / shares.sum())

    # Per event. Sorted by time, as live traffic arrives.
    ts = np.sort(rng.integers(args.start - DAYS * 86400, args.start, n, dtype=np.int64))
    user = rng.integers(0, USERS, n, dtype=np.int32)
    page = rng.choice(PAGES, n, p=zipf(PAGES)).astype(np.int32)
    # Referrer 0 is direct (no referrer); 1..500 the hosts.
    referrer = np.where(rng.random(n) < DIRECT_SHARE, 0, 1 + rng.choice(REFERRERS, n, p=zipf(REFERRERS)))
    referrer = referrer.astype(np.int32)
    event_type = rng.choice(len(EVENT_TYPES), n, p=[share for _, share in EVENT_TYPES]).astype(np.int32)

    os.makedirs(args.out, exist_ok=True)
    paths, hosts = page_paths(), referrer_hosts()
    np.savez(os.path.join(args.out, "codes.npz"), ts=ts, user=user, page=page, referrer=referrer,
             event_type=event_type, user_address=user_address, user_agent=user_agent)
    with open(os.path.join(args.out, "tables.json"), "w") as out:
        json.dump({"pages": paths, "referrers": hosts, "addresses": addresses,
                   "agents": [agent[0] for agent in AGENTS],
                   "eventTypes": [name for name, _ in EVENT_TYPES], "seed": args.seed}, out)

    agent_of_event = user_agent[user]
    table = pa.table({
        "ts": pa.array(ts, pa.timestamp("s", tz="UTC")),
        "event_type": dictionary(event_type, [name for name, _ in EVENT_TYPES]),
        "user_id": dictionary(user, [f"user_{u}" for u in range(USERS)]),
        "page": dictionary(page, paths),
        "referrer": dictionary(referrer, [""] + hosts),
        "country": dictionary(user_country[user], COUNTRIES),
        "device": dictionary(agent_of_event, [agent[1] for agent in AGENTS]),
        "bot": pa.array(np.array([agent[2] for agent in AGENTS])[agent_of_event]),
    })
    pq.write_table(table, os.path.join(args.out, "events.parquet"), row_group_size=1_000_000)
    print(f"dataset: {n} events, seed {args.seed}, in {args.out}")


if __name__ == "__main__":
    main()

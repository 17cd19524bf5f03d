#!/usr/bin/env python3
"""What `GET /api/rooms` costs a user in many rooms with unread backlogs:
the read markers and unread counts come from one query per page, each count
reading at most 1,000 index entries (store::read_markers).

    python3 loadtest/room_list.py URL [--rooms 64] [--backlog 1500] [--requests 200]

Against a running gateway (bench.sh's `roomlist` run starts one): a poster
creates ROOMS public rooms and a reader joins them all; the poster writes
BACKLOG messages into each (REST, 8 connections). Then the reader lists her
rooms REQUESTS times, twice: with every message unread (each count capped at
1,000), and after marking every room read. Prints progress and one JSON
summary line: latency percentiles (ms) of each pass, and the unread counts
seen. Bounded: at most ROOMS x BACKLOG posts and 2 x REQUESTS listings.
"""

import argparse
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse


class Api:
    """One keep-alive HTTP connection to the gateway."""

    def __init__(self, url, token=None):
        self.url = urllib.parse.urlparse(url)
        self.conn = self.connect()
        self.token = token

    def connect(self):
        return http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=30)

    def call(self, method, path, body=None):
        headers = {"content-type": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        data = json.dumps(body) if body is not None else None
        try:
            self.conn.request(method, path, body=data, headers=headers)
            r = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The node closed a keep-alive connection that sat idle past its
            # timeout (the reader waits while the others post): a new one.
            self.conn.close()
            self.conn = self.connect()
            self.conn.request(method, path, body=data, headers=headers)
            r = self.conn.getresponse()
        raw = r.read()
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {raw[:200]!r}")
        return json.loads(raw or b"null")


def log(msg):
    print(f"[room_list {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def register(url, name):
    body = {"username": name, "password": "password-123"}
    return Api(url).call("POST", "/api/auth/register", body)["token"]


def timed_listings(api, n):
    """Latencies (ms) of n listings, and the last answer."""
    out, page = [], None
    for _ in range(n):
        t = time.perf_counter()
        page = api.call("GET", "/api/rooms?limit=100")
        out.append((time.perf_counter() - t) * 1000)
    return out, page


def percentiles(ms):
    ms = sorted(ms)
    pick = lambda q: round(ms[min(len(ms) - 1, int(q * len(ms)))], 2)
    return {"median": round(statistics.median(ms), 2), "p90": pick(0.9), "p99": pick(0.99)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--rooms", type=int, default=64)
    p.add_argument("--backlog", type=int, default=1500)
    p.add_argument("--requests", type=int, default=200)
    a = p.parse_args()
    tag = hex(int(time.time() * 1000))[-6:]
    poster = Api(a.url, register(a.url, f"poster_{tag}"))
    reader = Api(a.url, register(a.url, f"reader_{tag}"))
    rooms = []
    for i in range(a.rooms):
        room = poster.call("POST", "/api/rooms", {"name": f"list-{tag}-{i}"})["id"]
        reader.call("POST", f"/api/rooms/{room}/join")
        rooms.append(room)
    log(f"{a.rooms} rooms, the reader a member of each; posting {a.backlog} messages into each")
    started = time.monotonic()
    failures = []

    def post(my_rooms):
        api = Api(a.url, poster.token)
        try:
            for room in my_rooms:
                for i in range(a.backlog):
                    api.call("POST", f"/api/rooms/{room}/messages", {"content": f"m{i}"})
        except Exception as e:  # reported below: the run fails
            failures.append(str(e))

    threads = [threading.Thread(target=post, args=(rooms[k::8],)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        log(f"FAILED: {failures[0]}")
        return 1
    posted = a.rooms * a.backlog
    log(f"posted {posted} messages in {time.monotonic() - started:.1f} s")

    timed_listings(reader, 10)  # warm-up
    unread_ms, page = timed_listings(reader, a.requests)
    mine = [r for r in page["rooms"] if r["id"] in rooms]
    counts = sorted({r["unread_count"] for r in mine})
    log(f"backlog unread: {percentiles(unread_ms)} ms per listing; unread counts {counts}")
    for room in rooms:
        reader.call("PUT", f"/api/rooms/{room}/read", {"seq": 1 << 40})
    read_ms, page = timed_listings(reader, a.requests)
    mine = [r for r in page["rooms"] if r["id"] in rooms]
    left = sorted({r["unread_count"] for r in mine})
    log(f"all read: {percentiles(read_ms)} ms per listing; unread counts {left}")
    ok = counts == [min(a.backlog, 1000)] and left == [0] and len(mine) == a.rooms
    print(json.dumps({
        "rooms": a.rooms,
        "backlog": a.backlog,
        "requests": a.requests,
        "unread_ms": percentiles(unread_ms),
        "read_ms": percentiles(read_ms),
        "unread_counts": counts,
        "ok": ok,
    }))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""A bounded soak of a running local cluster: churn, then compare resources.

Run by scripts/soak.sh, which starts the cluster and stops it, with the python
of the scenarios' venv (scripts/cluster-scenario.sh); the WebSocket client (on
the `websockets` library), tokens and env-file reader are those of
scripts/chat_scenario.py.

    python3 scripts/soak.py CLUSTER_DIR

Clients connect THROUGH THE LOAD BALANCER (HAProxy, round robin, so every node
gets its share). SOAK_CLIENTS of them are kept alive at any time; each lives
a random time (exponential, mean SOAK_LIFE_SECS), in a random room among
room 1 and SOAK_ROOMS created public ones, as one of SOAK_USERS users (so a
user often holds several connections), and meanwhile sends a message every
~SOAK_SEND_EVERY_SECS, joins another room and later leaves it (join_room /
leave_room frames); it then closes: mostly normally (close 1000), one in
SOAK_ABORT_ONE_IN by dropping its TCP connection without a close frame (the
other cleanup path). A new client replaces it at once: steady connects,
disconnects, room joins and leaves, and traffic.

Phases:
  1. warm-up: SOAK_WARMUP_SECS of that churn (allocator pools, connection
     pools, caches reach their working size), then every client leaves;
  2. "start" sample, every node quiet (0 connections, then SOAK_SETTLE_SECS,
     default 5);
  3. the soak: SOAK_SECS of churn, a progress line every SOAK_PROGRESS_SECS
     (per node: RSS, fds, threads, connections, rooms; the clients' totals);
  4. every client leaves; "end" sample, every node quiet again.
Start and end are both taken with no client connected, after the same churn
has run before each: whatever a connection, a room or a subscription holds
must have been given back, so the two are directly comparable (under load
the figures move with the number of connections open at that instant). The
figures under load are printed as the progress lines.

Per node (pid from cluster.env; /proc/PID and the node's /metrics): resident
memory (VmRSS), open file descriptors (and how many are sockets), threads
(the gateway exports no tokio task count; its threads and its own gauges
stand in: chat_gateway_connections, chat_gateway_rooms,
chat_gateway_presence_users, chat_gateway_bus_subscribed_channels).

Fails (exit 1) when, on any node, at the end:
  - connections, rooms, presence users or subscribed channels are not 0;
  - open fds exceed the start by more than SOAK_FD_SLACK (default 4);
  - threads exceed the start by more than SOAK_THREAD_SLACK (default 4: tokio
    starts and retires blocking-pool threads as it needs them);
  - RSS exceeds the start by more than max(SOAK_RSS_SLACK_MIB (default 8)
    MiB, SOAK_RSS_SLACK_PCT (default 10) %): the noise of the allocator
    between two quiet moments, measured at under 1 MiB (60 s) on a debug
    build of ~50 MiB;
or when the clients saw any failure: an upgrade refused or failed, an error
frame, a close by the server (every close in a soak is the client's), or a
sent message that never came back (each client's own messages are echoed).
"""

import asyncio
import collections
import itertools
import json
import os
import random
import re
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import soak_checks as checks  # noqa: E402 - after the path it lives on
from chat_scenario import (Closed, Fail, WebSocket, api_call, http_get, mint_token,  # noqa: E402
                           cluster_from_argv, run_scenario)


def env_num(name, default):
    return float(os.environ.get(name, default))


SOAK_SECS = env_num("SOAK_SECS", 600)
WARMUP = env_num("SOAK_WARMUP_SECS", 30)
CLIENTS = int(env_num("SOAK_CLIENTS", 60))
USERS = int(env_num("SOAK_USERS", 40))
ROOMS = int(env_num("SOAK_ROOMS", 6))
LIFE = env_num("SOAK_LIFE_SECS", 8)
SEND_EVERY = env_num("SOAK_SEND_EVERY_SECS", 2)
ABORT_ONE_IN = int(env_num("SOAK_ABORT_ONE_IN", 5))
PROGRESS = env_num("SOAK_PROGRESS_SECS", 10)
SETTLE = env_num("SOAK_SETTLE_SECS", 5)
FD_SLACK = env_num("SOAK_FD_SLACK", 4)
THREAD_SLACK = env_num("SOAK_THREAD_SLACK", 4)
RSS_SLACK_MIB = env_num("SOAK_RSS_SLACK_MIB", 8)
RSS_SLACK_PCT = env_num("SOAK_RSS_SLACK_PCT", 10)
STARTED = time.monotonic()
RUN = os.urandom(4).hex()
# Numbers every client of the run, warm-up and soak alike: a client's
# client_msg_ids (soak-RUN-N-K) must never repeat another's. When each phase
# counted from 0, a soak client drawing the same user as the warm-up client
# of its number resent the warm-up's ids: retries, to the node.
LIVES = itertools.count()
GAUGES = ["connections", "rooms", "presence_users", "bus_subscribed_channels"]


def log(msg):
    print(f"[soak {time.monotonic() - STARTED:6.1f}s] {msg}", flush=True)


def sample(name, pid, url):
    """One node's figures: /proc/PID and its /metrics."""
    s = {"node": name}
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    s["rss_kib"] = int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1))
    s["threads"] = int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))
    fds = os.listdir(f"/proc/{pid}/fd")
    s["fds"] = len(fds)
    sockets = 0
    for fd in fds:
        try:
            sockets += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    s["sockets"] = sockets
    text = http_get(f"{url}/metrics")
    for g in GAUGES:
        m = re.search(rf"^chat_gateway_{g}\s+(\S+)", text, re.M)
        s[g] = int(float(m.group(1))) if m else None
    return s


class Stats:
    def __init__(self):
        self.c = collections.Counter()
        self.failures = []
        self.failed = []            # Connections to report, at most checks.REPORTS
        self.ledger = checks.Ledger()

    def fail(self, what):
        self.c["failures"] += 1
        if len(self.failures) < 20:
            self.failures.append(what)

    def done(self, conn, echoes):
        """A life ended: its failures count, its stays go to the ledger."""
        for f in conn.failures:
            self.fail(f"client {conn.n}: {f}")
        if conn.failures and len(self.failed) < checks.REPORTS:
            self.failed.append(conn)
        self.ledger.add(conn, echoes)


class Life:
    """One client's life: connect, chat, join and leave a room, close."""

    def __init__(self, n, env, rooms, stats):
        self.n, self.env, self.rooms, self.stats = n, env, rooms, stats

    async def run(self, stop):
        st = self.stats
        uid = 20000 + random.randrange(USERS)
        token = mint_token(self.env, uid, f"soak{uid}", f"Soak {uid}", ttl=86400)
        room = random.choice(self.rooms)
        conn = checks.Connection(self.n, uid, room, f"soak-{RUN}-{self.n}", time.monotonic())
        try:
            ws = await WebSocket.connect("127.0.0.1", int(self.env["LB_PORT"]),
                                         f"/ws?room_id={room}&token={token}", timeout=10,
                                         headers={"X-Request-Id": conn.request_id})
        except Exception as e:  # noqa: BLE001 - counted and reported
            st.fail(f"upgrade failed: {e!r}"[:200])
            await asyncio.sleep(0.5)
            return
        st.c["connects"] += 1
        in_rooms = {room}
        closed_by_server = []
        echoes = {}  # client_msg_id -> (stored at, echoed at), wall clock

        async def pump():
            try:
                while True:
                    text = await ws.recv()
                    now = time.monotonic()
                    frame = json.loads(text)
                    st.c[f"frames_{frame.get('type')}"] += 1
                    cmid = conn.received(now, text)
                    if cmid:
                        echoes[cmid] = (checks.created_at(frame["data"]), checks.wall(now))
            except Closed as e:
                closed_by_server.append(e.code)
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                closed_by_server.append("dropped")

        async def send(frame, **what):
            text = json.dumps(frame)
            conn.sent(time.monotonic(), text, **what)
            await ws.send_text(text)

        reader = asyncio.ensure_future(pump())
        end = time.monotonic() + random.expovariate(1 / LIFE)
        k = 0
        extra = None
        try:
            while time.monotonic() < end and not stop.is_set() and not reader.done():
                try:  # the next frame's moment, or the end of the soak
                    await asyncio.wait_for(stop.wait(), min(random.expovariate(1 / SEND_EVERY),
                                                            max(0.0, end - time.monotonic())))
                except asyncio.TimeoutError:
                    pass
                if reader.done() or stop.is_set():
                    break
                r = random.random()
                if r < 0.15 and extra is None:
                    extra = random.choice([x for x in self.rooms if x not in in_rooms] or [room])
                    if extra not in in_rooms:
                        await send({"type": "join_room", "room_id": extra})
                        in_rooms.add(extra)
                        st.c["joins"] += 1
                    else:
                        extra = None
                elif r < 0.25 and extra is not None:
                    await send({"type": "leave_room", "room_id": extra}, leave=extra)
                    in_rooms.discard(extra)
                    extra = None
                    st.c["leaves"] += 1
                else:
                    k += 1
                    cmid = f"soak-{RUN}-{self.n}-{k}"
                    await send({"type": "message", "room_id": room, "content": f"soak {k}",
                                "client_msg_id": cmid}, cmid=cmid)
                    st.c["sent"] += 1
            if not reader.done():
                # Give the last messages their echo before leaving.
                deadline = time.monotonic() + checks.ECHO_WAIT
                while conn.waiting() and time.monotonic() < deadline and not reader.done():
                    await asyncio.sleep(0.05)
                for cmid in conn.waiting():
                    conn.fail(f"no echo for {cmid} within {checks.ECHO_WAIT:g} s")
            conn.closing(time.monotonic())
            if closed_by_server:
                conn.fail(f"closed by the server: {closed_by_server[0]}")
            elif random.randrange(ABORT_ONE_IN) == 0:
                ws.abort()
                st.c["aborts"] += 1
            else:
                await ws.close(1000)
                try:
                    await asyncio.wait_for(asyncio.shield(reader), 5)
                except asyncio.TimeoutError:
                    conn.fail("no close frame from the server within 5 s")
                st.c["closes"] += 1
        except (ConnectionError, OSError) as e:
            conn.fail(f"send failed: {e!r}"[:200])
        finally:
            reader.cancel()
            ws.release()
            conn.closing(time.monotonic())
            st.done(conn, echoes)


async def churn(env, rooms, stats, secs, progress=None):
    """CLIENTS lives at a time for `secs` seconds; then every client leaves."""
    stop = asyncio.Event()

    async def slot():
        while not stop.is_set():
            await Life(next(LIVES), env, rooms, stats).run(stop)

    slots = [asyncio.ensure_future(slot()) for _ in range(CLIENTS)]
    end = time.monotonic() + secs
    while time.monotonic() < end:
        await asyncio.sleep(min(PROGRESS, max(0.0, end - time.monotonic())))
        if progress and time.monotonic() < end - 1:
            await progress()
        for s in slots:
            if s.done() and s.exception():
                raise s.exception()
    stop.set()
    await asyncio.wait_for(asyncio.gather(*slots), 30)


async def quiet(nodes):
    """Wait until every node holds no connection, then let it settle; one sample per node."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + 30
    while True:
        samples = [await loop.run_in_executor(None, sample, *n) for n in nodes]
        if all(s["connections"] == 0 for s in samples):
            break
        if time.monotonic() > deadline:
            raise Fail("nodes still hold connections 30 s after every client left: "
                       + ", ".join(f"{s['node']}={s['connections']}" for s in samples))
        await asyncio.sleep(0.5)
    # Closed connections release their rooms and subscriptions right after.
    await asyncio.sleep(SETTLE)
    return [await loop.run_in_executor(None, sample, *n) for n in nodes]


def print_reports(stats, cluster_dir, lb_url, token):
    """What each failed client saw and what its node logged (at most checks.REPORTS)."""
    for conn in stats.failed:
        print("\n".join(checks.report(conn, cluster_dir, lb_url, token)), flush=True)


def mib(kib):
    return f"{kib / 1024:7.1f}"


def table(start, end):
    lines = [f"  {'node':4} {'':5} {'RSS MiB':>8} {'fds':>5} {'sockets':>7} {'threads':>7} "
             f"{'conns':>5} {'rooms':>5} {'presence':>8} {'channels':>8}"]
    for a, b in zip(start, end):
        for label, s in (("start", a), ("end", b)):
            lines.append(f"  {s['node']:4} {label:5} {mib(s['rss_kib']):>8} {s['fds']:5} {s['sockets']:7} "
                         f"{s['threads']:7} {s['connections']:5} {s['rooms']:5} {s['presence_users']:8} "
                         f"{s['bus_subscribed_channels']:8}")
        lines.append(f"  {a['node']:4} {'diff':5} {(b['rss_kib'] - a['rss_kib']) / 1024:+8.1f} "
                     f"{b['fds'] - a['fds']:+5} {b['sockets'] - a['sockets']:+7} {b['threads'] - a['threads']:+7}")
    return "\n".join(lines)


async def scenario(env, cluster_dir):
    lb_url = env["LB_URL"]
    names = env["NODE_NAMES_LIST"].split()
    nodes = [(n, int(env[f"NODE_{n}_PID"]), env[f"NODE_{n}_URL"]) for n in names]
    admin = mint_token(env, 19999, "soak_admin", "Soak admin")
    rooms = [1]
    for r in range(ROOMS):
        rooms.append(api_call("POST", f"{lb_url}/api/rooms", admin,
                               {"name": f"soak-{RUN}-{r}", "is_private": False})["id"])
    log(f"{CLIENTS} clients at a time through {lb_url}, {USERS} users, rooms {rooms}, "
        f"mean life {LIFE:g} s, a frame every ~{SEND_EVERY:g} s each; "
        f"warm-up {WARMUP:g} s, soak {SOAK_SECS:g} s")

    stats = Stats()
    log("warm-up")
    await churn(env, rooms, stats, WARMUP)
    if stats.failures:
        print_reports(stats, cluster_dir, lb_url, admin)
        raise Fail(f"failures during the warm-up: {stats.failures}")
    log(f"warm-up done ({stats.c['connects']} connections); every client left; waiting for the nodes to be quiet")
    start = await quiet(nodes)
    log("start: " + "; ".join(f"{s['node']} RSS {s['rss_kib'] / 1024:.1f} MiB, {s['fds']} fds, {s['threads']} threads"
                               for s in start))

    stats = Stats()
    began = time.monotonic()
    loop = asyncio.get_running_loop()

    async def progress():
        samples = [await loop.run_in_executor(None, sample, *n) for n in nodes]
        c = stats.c
        log(f"{time.monotonic() - began:4.0f}/{SOAK_SECS:g} s: {c['connects']} connects, {c['closes']} closes, "
            f"{c['aborts']} aborts, {c['joins']} joins, {c['leaves']} leaves, {c['sent']} sent, "
            f"{c['frames_message']} delivered, {c['failures']} failures | "
            + "; ".join(f"{s['node']} {s['rss_kib'] / 1024:.1f} MiB {s['fds']} fds {s['threads']} thr "
                        f"{s['connections']} conns {s['rooms']} rooms" for s in samples))

    await churn(env, rooms, stats, SOAK_SECS, progress)
    log(f"soak done; every client left; waiting for the nodes to be quiet")
    end = await quiet(nodes)

    c = stats.c
    log(f"soak: {c['connects']} connections ({c['connects'] / SOAK_SECS:.1f}/s), {c['closes']} closed "
        f"normally, {c['aborts']} dropped without a close frame, {c['joins']} joins, {c['leaves']} leaves, "
        f"{c['sent']} messages sent, {c['frames_message']} delivered, {c['failures']} failures")
    print(table(start, end), flush=True)

    failures = list(stats.failures)
    missed, examples = stats.ledger.missed()
    if missed:
        failures.append(f"{missed} deliveries missed: a message echoed to its sender never reached "
                        f"a connection that was in the room (first {len(examples)} below)")
        failures += examples
    print_reports(stats, cluster_dir, lb_url, admin)
    for a, b in zip(start, end):
        n = a["node"]
        for g in GAUGES:
            if b[g] != 0:
                failures.append(f"node {n}: {g} is {b[g]} with no client connected")
        if b["fds"] > a["fds"] + FD_SLACK:
            failures.append(f"node {n}: open fds {a['fds']} -> {b['fds']} (more than +{FD_SLACK:g})")
        if b["threads"] > a["threads"] + THREAD_SLACK:
            failures.append(f"node {n}: threads {a['threads']} -> {b['threads']} (more than +{THREAD_SLACK:g})")
        slack = max(RSS_SLACK_MIB * 1024, a["rss_kib"] * RSS_SLACK_PCT / 100)
        if b["rss_kib"] > a["rss_kib"] + slack:
            failures.append(f"node {n}: RSS {a['rss_kib'] / 1024:.1f} -> {b['rss_kib'] / 1024:.1f} MiB "
                            f"(more than +{slack / 1024:.1f} MiB)")
    if c["connects"] == 0 or c["sent"] == 0:
        failures.append("no traffic")
    return failures


def main():
    cluster = cluster_from_argv(sys.argv)
    if cluster is None:
        return 2
    cluster_dir, env = cluster
    limit = WARMUP + SOAK_SECS + 180
    return run_scenario(scenario(env, cluster_dir), limit, log, "the soak",
                        "no growth beyond the thresholds, every gauge back to 0, no client failure")


if __name__ == "__main__":
    sys.exit(main())

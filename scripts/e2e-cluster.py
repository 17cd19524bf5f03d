#!/usr/bin/env python3
"""End-to-end check of a running local cluster (scripts/cluster.sh --background).

Run by scripts/e2e-cluster.sh, which starts the cluster and stops it, with the
python of the scenarios' venv (scripts/cluster-scenario.sh): the WebSocket client
is that of scripts/chat_scenario.py (on the `websockets` library), HTTP is
urllib; tokens from the cluster's own binary (`gateway token`).

It reads the cluster's env file (path in argv[1]) and:
  1. mints a token for each of E2E_USERS users (default 9) and opens one
     WebSocket per user to room 1 THROUGH THE LOAD BALANCER;
  2. asks every node directly (GET /metrics, `chat_gateway_connections`) how
     many it holds: each must hold some, and together all of them;
  3. has every user send E2E_MESSAGES messages (default 3) to room 1 and checks
     that every client receives every message exactly once, in one seq order;
  4. asks Prometheus: the three chat-gateway targets are `up`, and
     sum(chat_gateway_connections) equals the connections held;
  5. closes every connection; the nodes and Prometheus then count 0;
  6. freezes Redis (SIGSTOP: every node loses it at once, as in a shared
     outage): every node's /readyz stays 200 "degraded", HAProxy keeps all
     three UP past its detection time, and REST answers through it; after
     SIGCONT every node is "ready" again.
Each wait is bounded; any failure exits 1 with a message.
"""

import asyncio
import json
import os
import re
import signal
import sys
import time
import urllib.error
import urllib.parse

from chat_scenario import Closed, Fail, WebSocket, http_get, http_json, http_status, mint_token, read_env

USERS = int(os.environ.get("E2E_USERS", "9"))
MESSAGES = int(os.environ.get("E2E_MESSAGES", "3"))
PROM_WAIT = float(os.environ.get("E2E_PROMETHEUS_WAIT_SECS", "30"))
STARTED = time.monotonic()


def log(msg):
    print(f"[e2e {time.monotonic() - STARTED:5.1f}s] {msg}", flush=True)


def haproxy_states(stats_port):
    """HAProxy's status (UP, DOWN, ...) of each gateway server, by name."""
    rows = http_get(f"http://127.0.0.1:{stats_port}/stats;csv").splitlines()
    head = rows[0].lstrip("# ").split(",")
    states = {}
    for row in rows[1:]:
        cols = dict(zip(head, row.split(",")))
        if cols.get("svname", "").startswith("node-"):
            states[cols["svname"]] = cols.get("status")
    return states


class Client:
    """One user's connection; a task pumps its frames into `frames`."""

    def __init__(self, uid, username, ws):
        self.uid, self.username, self.ws = uid, username, ws
        self.frames = []
        self.error = None
        self.task = asyncio.ensure_future(self._pump())

    async def _pump(self):
        try:
            while True:
                self.frames.append(json.loads(await self.ws.recv()))
        except Closed as e:
            self.error = e
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - reported by the checks
            self.error = e

    def of_type(self, t):
        return [f for f in self.frames if f.get("type") == t]

    async def close(self):
        await self.ws.close()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), 5)
        except Exception:
            self.task.cancel()
        self.ws.release()


async def wait_until(what, pred, timeout):
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return
        if time.monotonic() >= deadline:
            raise Fail(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


# --- metrics -------------------------------------------------------------------

METRIC_RE = re.compile(r"^chat_gateway_connections(?:\{[^}]*\})?\s+(\S+)", re.M)


def node_connections(url):
    return sum(float(v) for v in METRIC_RE.findall(http_get(f"{url}/metrics")))


def prom_query(base, query):
    body = json.loads(http_get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": query})))
    if body.get("status") != "success":
        raise Fail(f"Prometheus query {query!r} failed: {body}")
    return body["data"]["result"]


def prom_gateway_targets(base):
    body = json.loads(http_get(f"{base}/api/v1/targets?state=active"))
    return [t for t in body["data"]["activeTargets"] if t["labels"].get("job") == "chat-gateway"]


async def poll(what, fn, ok, timeout, interval=0.5):
    """Call fn() until ok(value); returns the value; Fail with the last one on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = await asyncio.get_running_loop().run_in_executor(None, fn)
            if ok(last):
                return last
        except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
            last = f"error: {e}"
        if time.monotonic() >= deadline:
            raise Fail(f"{what}: not reached after {timeout:.0f} s (last: {last})")
        await asyncio.sleep(interval)


# --- the scenario ----------------------------------------------------------------

async def scenario(env):
    lb_port = int(env["LB_PORT"])
    names = env["NODE_NAMES_LIST"].split()
    node_urls = dict(zip(names, env["NODE_URLS_LIST"].split()))
    prom = env["PROMETHEUS_URL"]
    clients = []

    try:
        # 0. a node's internals are not reachable through the balancer, however
        # the path is spelled (the node decodes `%6d` to `m` before routing)
        for path in ("/metrics", "/%6detrics", "/healthz", "/readyz", "/%72eadyz"):
            status = http_status(env["LB_URL"] + path)
            if status != 404:
                raise Fail(f"GET {path} through the balancer answered {status}, not 404")
        log("/metrics, /healthz, /readyz (also percent-encoded) refused by the balancer  ok")

        # 1. connections through the balancer
        log(f"opening {USERS} WebSockets to room 1 through the load balancer {env['LB_URL']}")
        for i in range(USERS):
            uid = 7001 + i
            username = f"e2e_user{i + 1}"
            token = mint_token(env, uid, username, f"E2E {i + 1}")
            ws = await WebSocket.connect("127.0.0.1", lb_port, f"/ws?room_id=1&token={token}")
            c = Client(uid, username, ws)
            clients.append(c)
            await wait_until(f"online_users for {username}", lambda: c.of_type("online_users") or c.error, 10)
            if c.error:
                raise Fail(f"{username}: connection ended at once: {c.error}")
        log(f"{USERS} connected; each got online_users")

        # 2. they landed on different nodes (asked directly, not through the balancer)
        def spread():
            return {n: node_connections(u) for n, u in node_urls.items()}

        counts = await poll("every node holding connections, all of them together",
                            spread, lambda c: sum(c.values()) == USERS and all(v > 0 for v in c.values()),
                            timeout=10, interval=0.2)
        log("connections per node (their /metrics): "
            + ", ".join(f"{n}={int(v)}" for n, v in counts.items()) + "  ok: spread over all 3 nodes")

        # 3. chat in room 1: every client receives every message exactly once
        expected = set()
        for k in range(MESSAGES):
            for c in clients:
                cmid = f"e2e-{c.uid}-{k}"
                expected.add(cmid)
                await c.ws.send_text(json.dumps({"type": "message", "room_id": 1,
                                                 "content": f"hello {k} from {c.username}",
                                                 "client_msg_id": cmid}))
        total = len(expected)
        log(f"{len(clients)} users sent {total} messages to room 1")

        def received(c):
            return [f["data"].get("client_msg_id") for f in c.of_type("message")
                    if f["data"].get("client_msg_id") in expected]

        try:
            await wait_until("every message at every client",
                             lambda: all(len(set(received(c))) == total or c.error for c in clients), 20)
        except Fail as e:
            got = {c.username: len(set(received(c))) for c in clients}
            raise Fail(f"{e}; distinct messages received per client: {got}")
        await asyncio.sleep(1.0)  # room for a late duplicate to show up
        orders = []
        for c in clients:
            if c.error:
                raise Fail(f"{c.username}: connection ended: {c.error}")
            errors = c.of_type("error")
            if errors:
                raise Fail(f"{c.username}: error frames: {errors}")
            ids = received(c)
            dups = sorted({x for x in ids if ids.count(x) > 1})
            if dups:
                raise Fail(f"{c.username} received duplicates: {dups}")
            if set(ids) != expected:
                raise Fail(f"{c.username} missed {sorted(expected - set(ids))}")
            seqs = [f["data"]["seq"] for f in c.of_type("message") if f["data"].get("client_msg_id") in expected]
            if seqs != sorted(seqs) or len(set(seqs)) != len(seqs):
                raise Fail(f"{c.username} received seqs out of order: {seqs}")
            orders.append(ids)
        if any(o != orders[0] for o in orders):
            raise Fail("clients received the messages in different orders")
        log(f"every client received all {total} messages exactly once, in the same seq order")

        # 4. Prometheus: the three targets up, and the sum of open connections
        log(f"asking Prometheus {prom} (at most {PROM_WAIT:.0f} s)")
        targets = await poll("Prometheus: 3 chat-gateway targets up", lambda: prom_gateway_targets(prom),
                             lambda ts: len(ts) == 3 and all(t["health"] == "up" for t in ts), PROM_WAIT)
        log("Prometheus targets: " + ", ".join(f"{t['labels'].get('node', t['labels']['instance'])}={t['health']}"
                                              for t in sorted(targets, key=lambda t: t["labels"].get("node", ""))))

        def prom_sum():
            r = prom_query(prom, "sum(chat_gateway_connections)")
            return float(r[0]["value"][1]) if r else None

        got = await poll(f"Prometheus: sum(chat_gateway_connections) == {USERS}", prom_sum,
                         lambda v: v == USERS, PROM_WAIT)
        per_node = prom_query(prom, "sum by (node) (chat_gateway_connections)")
        log(f"Prometheus: sum(chat_gateway_connections) = {int(got)}  (by node: "
            + ", ".join(f"{r['metric'].get('node')}={r['value'][1]}" for r in
                        sorted(per_node, key=lambda r: r["metric"].get("node", ""))) + ")")

        # 5. close; everything counts 0 again
        log("closing the connections")
        await asyncio.gather(*(c.close() for c in clients))
        clients = []
        await poll("every node back to 0 connections", spread,
                   lambda c: all(v == 0 for v in c.values()), timeout=10, interval=0.2)
        await poll("Prometheus: sum(chat_gateway_connections) == 0", prom_sum, lambda v: v == 0, PROM_WAIT)
        log("after closing: 0 connections on every node and in Prometheus")

        # 6. a shared Redis outage does not empty the balancer
        await shared_redis_outage(env, node_urls, mint_token(env, 7001, "e2e_user1", "E2E 1"))
    finally:
        for c in clients:
            c.task.cancel()
            c.ws.release()


async def shared_redis_outage(env, node_urls, token):
    redis_pid = int(env["REDIS_PID"])
    stats_port = int(env["LB_STATS_PORT"])
    log(f"freezing Redis (SIGSTOP to pid {redis_pid}): an outage every node shares")
    os.kill(redis_pid, signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        def readiness():
            return {n: http_json(u + "/readyz", timeout=5) for n, u in node_urls.items()}

        got = await poll("every node /readyz 200 degraded, bus down", readiness,
                         lambda r: all(s == 200 and b["status"] == "degraded" and not b["checks"]["bus"]
                                       for s, b in r.values()), timeout=15)
        log("every node: /readyz " + ", ".join(f"{n}={s} {b['status']}" for n, (s, b) in got.items())
            + f" {time.monotonic() - frozen:.1f} s after the freeze")
        # HAProxy takes a server out after `fall 2` failed checks `inter 2s`
        # apart: well past that, all three must still be UP.
        await asyncio.sleep(max(0.0, frozen + 6.0 - time.monotonic()))
        states = haproxy_states(stats_port)
        if len(states) != 3 or any(v != "UP" for v in states.values()):
            raise Fail(f"HAProxy took nodes out during a shared Redis outage: {states}")
        log(f"HAProxy 6 s into the outage: {states}  ok: nobody taken out")
        for path in ("/api/rooms", "/api/rooms/1/messages"):
            status, body = http_json(env["LB_URL"] + path, token, timeout=10)
            if status != 200:
                raise Fail(f"GET {path} through the balancer during the outage: {status} {body}")
        log("REST through the balancer during the outage (room list, history from PostgreSQL): 200  ok")
    finally:
        os.kill(redis_pid, signal.SIGCONT)
    log("Redis resumed (SIGCONT)")
    await poll("every node /readyz ready again", readiness,
               lambda r: all(s == 200 and b["status"] == "ready" for s, b in r.values()), timeout=20)
    log("every node ready again")


def main():
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} CLUSTER_ENV_FILE", file=sys.stderr)
        return 2
    env = read_env(sys.argv[1])
    try:
        asyncio.run(asyncio.wait_for(scenario(env), 120))
    except Fail as e:
        log(f"FAILED: {e}")
        return 1
    except asyncio.TimeoutError:
        log("FAILED: the scenario took longer than 120 s")
        return 1
    log("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Rolling restart of a running local cluster under steady traffic.

Run by scripts/rolling-restart.sh, which starts the cluster (scripts/cluster.sh
--background, short drain window) and stops it, with the python of the
scenarios' venv (scripts/cluster-scenario.sh); the WebSocket client (on the
`websockets` library), tokens and env-file reader are those of
scripts/chat_scenario.py.

    python3 scripts/rolling_restart.py CLUSTER_DIR

What it does, all through the load balancer (HAProxy, round robin):
  1. RR_ROOMS rooms (room 1 plus created public ones); RR_RECEIVERS clients and
     RR_SENDERS senders spread over them, each connecting with since_seq=0;
  2. the senders send RR_RATE messages/s in total, each with a unique
     client_msg_id; a message is acknowledged when the sender gets it back
     (the stored message with its client_msg_id). After a reconnect a sender
     resends every unacknowledged message with the SAME client_msg_id (the
     documented idempotent resend);
  3. every client whose socket closes (1012 from a draining node, or anything
     else, including the senders' deliberate drops below) reconnects through the balancer with jittered exponential backoff
     and since_seq=<last seq it saw in its room>;
  4. meanwhile nodes A, B, C are restarted one after the other with
     `scripts/cluster.sh restart DIR NAME` (SIGTERM, drain, exit, start, ready,
     HAProxy counts it UP again);
  5. then the senders stop, every pending message must get acknowledged,
     every client must reach the room's last seq, and all close.

Asserted (any violation fails, listed):
  - each node exited with status 0 within the drain window + RR_STOP_MARGIN_SECS
    (default 3) of its SIGTERM, and came back ready;
  - each node held connections before its restart (its /metrics), and the
    clients saw at least that many closes with code 1012 during it (less the
    senders' own drops meanwhile, below); no other close code, no
    connection dropped without a close frame;
  - per client and room: the seqs received form exactly 1..N, in order, N the
    room's last seq in the history (GET /api/rooms/{id}/messages): no gap, no
    duplicate (for a sender, the answer to a resend of a message it already
    has in its stream is not counted as a delivery);
  - the history of each room has seqs 1..N and no client_msg_id twice; every
    message a sender got acknowledged is in it exactly once, with the seq of
    its acknowledgement; every message sent was acknowledged (none pending);
  - no error frame other than `unavailable` (which is retried), no
    recovery_partial, no frame before a connection's online_users.
To exercise the idempotent resend on purpose, each sender also drops its own
TCP connection abruptly right after a send every ~RR_SENDER_DROP_EVERY_SECS
(default 4; 0: never), before the answer; those drops are not violations.
Prints progress every few seconds and a summary: clients, messages,
reconnects, reconnect times (close to online_users on the new connection).

Environment: RR_RECEIVERS (36), RR_SENDERS (4), RR_ROOMS (2), RR_RATE (20
messages/s in total), RR_WARMUP_SECS (3), RR_BETWEEN_SECS (2: after a node is
back, before the next restart), RR_DRAIN_WINDOW_SECS (the nodes'
CHAT__SERVER__DRAIN_WINDOW_SECS, read from CLUSTER_DIR/node-env.sh when
unset), RR_STOP_MARGIN_SECS (3), RR_SENDER_DROP_EVERY_SECS (4), RR_TIMEOUT_SECS
(150: the whole run).
"""

import asyncio
import collections
import json
import os
import random
import re
import sys
import time
import urllib.error
import urllib.request

from chat_scenario import (Closed, Fail, WebSocket, api_call, cluster_from_argv, http_get,
                           mint_token, run_scenario)

HERE = os.path.dirname(os.path.abspath(__file__))

RECEIVERS = int(os.environ.get("RR_RECEIVERS", "36"))
SENDERS = int(os.environ.get("RR_SENDERS", "4"))
ROOMS = int(os.environ.get("RR_ROOMS", "2"))
RATE = float(os.environ.get("RR_RATE", "20"))
WARMUP = float(os.environ.get("RR_WARMUP_SECS", "3"))
BETWEEN = float(os.environ.get("RR_BETWEEN_SECS", "2"))
STOP_MARGIN = float(os.environ.get("RR_STOP_MARGIN_SECS", "3"))
TIMEOUT = float(os.environ.get("RR_TIMEOUT_SECS", "150"))
DROP_EVERY = float(os.environ.get("RR_SENDER_DROP_EVERY_SECS", "4"))
STARTED = time.monotonic()
RUN = os.urandom(4).hex()  # in every client_msg_id: unique to this run


def log(msg):
    print(f"[rolling {time.monotonic() - STARTED:5.1f}s] {msg}", flush=True)


def history(lb_url, token, room):
    """Every message of a room, oldest first (the history API pages newest first)."""
    out, before = [], None
    while True:
        q = f"limit=100" + (f"&before_id={before}" if before is not None else "")
        page = api_call("GET", f"{lb_url}/api/rooms/{room}/messages?{q}", token)
        out.extend(page["messages"])
        before = page.get("next_before_id")
        if before is None:
            return sorted(out, key=lambda m: m["seq"])


def node_connections(url):
    text = http_get(f"{url}/metrics")
    return sum(float(v) for v in re.findall(r"^chat_gateway_connections(?:\{[^}]*\})?\s+(\S+)", text, re.M))


class Peer:
    """One client: connects through the balancer to its room, reconnects with
    since_seq after any close, and checks its stream of seqs as it goes."""

    def __init__(self, name, uid, room, token, lb_port):
        self.name, self.uid, self.room, self.token, self.lb_port = name, uid, room, token, lb_port
        self.stream = []          # seqs delivered, in arrival order
        self.last_seq = 0
        self.violations = []
        self.closes = collections.Counter()  # close code (or "dropped") -> count
        self.refused = 0          # upgrades refused or failed
        self.reconnect_times = []
        self.connections = 0
        self.ws = None
        self.live = False         # between online_users and the close
        self.stopping = False
        self.task = None
        self.dropped_by_us = False
        self.own_drops = 0

    def violation(self, what):
        self.violations.append(what)

    async def run(self):
        down_since = None
        attempt = 0
        while not self.stopping:
            path = f"/ws?room_id={self.room}&token={self.token}&since_seq={self.last_seq}"
            try:
                ws = await WebSocket.connect("127.0.0.1", self.lb_port, path, timeout=5)
            except (Fail, OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                self.refused += 1
                attempt += 1
                await asyncio.sleep(random.uniform(0, min(2.0, 0.1 * 2 ** attempt)))
                continue
            self.ws = ws
            self.connections += 1
            try:
                while True:
                    frame = json.loads(await ws.recv())
                    t = frame.get("type")
                    if not self.live and t != "online_users":
                        # Nothing of the room comes before its snapshot (shared/README.md).
                        self.violation(f"a {t} frame before online_users: {frame}")
                    if t == "online_users":
                        if not self.live:
                            self.live = True
                            attempt = 0
                            if down_since is not None:
                                self.reconnect_times.append(time.monotonic() - down_since)
                                down_since = None
                            self.on_live()
                    elif t == "message":
                        self.on_message(frame["data"])
                    elif t == "error":
                        self.on_error(frame.get("data", {}))
                    elif t == "recovery_partial":
                        self.violation(f"recovery_partial {frame.get('data')}")
            except Closed as e:
                if not self.stopping:
                    self.closes[e.code] += 1
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                if self.dropped_by_us:
                    self.own_drops += 1
                elif not self.stopping:
                    self.closes["dropped"] += 1
            finally:
                self.live = False
                self.dropped_by_us = False
                self.ws = None
                ws.release()
            if self.stopping:
                return
            down_since = time.monotonic()
            # Reconnect at once, with jitter (close code 1012: "at once, with jitter").
            await asyncio.sleep(random.uniform(0, 0.25))

    def on_live(self):
        pass

    def deliver(self, data):
        seq = data["seq"]
        if data.get("room_id", self.room) != self.room:
            self.violation(f"message of room {data.get('room_id')} in room {self.room}")
            return
        if seq != self.last_seq + 1:
            self.violation(f"after seq {self.last_seq} got seq {seq} ({'duplicate' if seq <= self.last_seq else 'gap'})")
        self.stream.append(seq)
        self.last_seq = max(self.last_seq, seq)

    def on_message(self, data):
        self.deliver(data)

    def on_error(self, data):
        self.violation(f"error frame {data}")

    async def stop(self):
        self.stopping = True
        ws = self.ws
        if ws is not None:
            await ws.close(1000)
        try:
            await asyncio.wait_for(self.task, 5)
        except (asyncio.TimeoutError, Exception):
            self.task.cancel()


class Sender(Peer):
    """A peer that also sends, and resends what is unacknowledged after a reconnect."""

    def __init__(self, *args, rate, drop_every):
        super().__init__(*args)
        self.rate = rate
        self.drop_every = drop_every
        self.next_drop = time.monotonic() + random.uniform(1, 1 + drop_every)
        self.pending = collections.OrderedDict()  # client_msg_id -> content
        self.attempts = collections.Counter()
        self.acked = {}       # client_msg_id -> seq
        self.sent = 0
        self.resends = 0
        self.retry_answers = 0
        self.sending = True

    def transmit(self, cmid):
        ws = self.ws
        if ws is None or not self.live:
            return  # sent after the next reconnect
        if self.attempts[cmid] > 0:
            self.resends += 1
        self.attempts[cmid] += 1
        frame = json.dumps({"type": "message", "room_id": self.room,
                            "content": self.pending[cmid], "client_msg_id": cmid})
        try:
            ws.send_nowait(frame)
        except Exception:
            pass  # the reader notices the close; resent after the reconnect

    def on_live(self):
        for cmid in list(self.pending):
            self.transmit(cmid)

    async def send_loop(self):
        k = 0
        next_at = time.monotonic()
        while self.sending:
            next_at += random.expovariate(self.rate)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if not self.sending:
                break
            cmid = f"rr-{RUN}-{self.uid}-{k}"
            k += 1
            self.pending[cmid] = f"message {k} from {self.name}"
            self.sent += 1
            self.transmit(cmid)
            if self.drop_every and self.live and time.monotonic() >= self.next_drop:
                # A network drop right after a send, before its answer: the
                # message is resent after the reconnect with the same
                # client_msg_id (the idempotent path; the original may or may
                # not have been stored).
                self.next_drop = time.monotonic() + self.drop_every * random.uniform(0.5, 1.5)
                self.dropped_by_us = True
                self.ws.abort()

    def on_message(self, data):
        cmid = data.get("client_msg_id")
        mine = cmid is not None and data.get("user_id") == self.uid and cmid.startswith(f"rr-{RUN}-{self.uid}-")
        if mine:
            if cmid in self.acked and self.acked[cmid] != data["seq"]:
                self.violation(f"{cmid} acknowledged with seq {self.acked[cmid]} and then seq {data['seq']} (stored twice)")
            self.acked.setdefault(cmid, data["seq"])
            self.pending.pop(cmid, None)
            # The answer to a resend is sent to this connection only, outside
            # the room's stream: not a delivery unless it is the next seq.
            if self.attempts[cmid] > 1 and data["seq"] != self.last_seq + 1:
                self.retry_answers += 1
                return
        self.deliver(data)

    def on_error(self, data):
        ref = data.get("ref")
        if data.get("code") == "unavailable" and ref in self.pending:
            asyncio.get_running_loop().call_later(0.5, self.transmit, ref)
        else:
            self.violation(f"error frame {data}")


async def restart_node(cluster_dir, name):
    proc = await asyncio.create_subprocess_exec(
        "bash", os.path.join(HERE, "cluster.sh"), "restart", cluster_dir, name,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    m = re.search(r"^RESTART (.*)$", text, re.M)
    fields = dict(kv.split("=", 1) for kv in m.group(1).split()) if m else {}
    return proc.returncode, fields, text


async def wait_for(what, pred, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() >= deadline:
            raise Fail(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


async def scenario(cluster_dir, env, drain_window):
    lb_port = int(env["LB_PORT"])
    lb_url = env["LB_URL"]
    names = env["NODE_NAMES_LIST"].split()
    failures = []

    admin = mint_token(env, 9000, "rr_admin", "RR admin")
    rooms = [1]
    for r in range(1, ROOMS):
        room = api_call("POST", f"{lb_url}/api/rooms", admin,
                         {"name": f"rolling-{r}-{os.getpid()}", "is_private": False})
        rooms.append(room["id"])
    log(f"rooms {rooms}; {RECEIVERS} receivers and {SENDERS} senders ({RATE:g} msg/s in total) "
        f"connecting through HAProxy {lb_url}")

    peers = []
    for i in range(RECEIVERS + SENDERS):
        uid = 9100 + i
        room = rooms[i % len(rooms)]
        token = mint_token(env, uid, f"rr_user{i}", f"RR {i}")
        if i >= RECEIVERS:
            p = Sender(f"sender{i - RECEIVERS}", uid, room, token, lb_port, rate=RATE / SENDERS,
                       drop_every=DROP_EVERY)
        else:
            p = Peer(f"client{i}", uid, room, token, lb_port)
        peers.append(p)
    senders = [p for p in peers if isinstance(p, Sender)]
    for p in peers:
        p.task = asyncio.ensure_future(p.run())
    await wait_for("every client connected", lambda: all(p.live for p in peers), 30)
    log(f"{len(peers)} clients connected")
    send_tasks = [asyncio.ensure_future(s.send_loop()) for s in senders]

    async def progress():
        while True:
            await asyncio.sleep(3)
            acked = sum(len(s.acked) for s in senders)
            pending = sum(len(s.pending) for s in senders)
            live = sum(p.live for p in peers)
            codes = sum((p.closes for p in peers), collections.Counter())
            log(f"  {live}/{len(peers)} connected, {acked} acknowledged, {pending} pending, "
                f"closes {dict(codes)}, refused upgrades {sum(p.refused for p in peers)}")

    progress_task = asyncio.ensure_future(progress())
    restarts = []
    try:
        await asyncio.sleep(WARMUP)
        for name in names:
            node_url = env[f"NODE_{name}_URL"]
            held = await asyncio.get_running_loop().run_in_executor(None, node_connections, node_url)
            before = sum(p.closes[1012] for p in peers)
            drops_before = sum(p.own_drops for p in peers)
            log(f"restarting node {name} (it holds {int(held)} connections)")
            rc, fields, text = await restart_node(cluster_dir, name)
            closes = sum(p.closes[1012] for p in peers) - before
            own_drops = sum(p.own_drops for p in peers) - drops_before
            restarts.append((name, rc, fields, held, closes))
            stop_secs = fields.get("stop_secs", "?")
            log(f"node {name}: exit status {fields.get('exit_status')} {stop_secs} s after SIGTERM, "
                f"ready {fields.get('ready_secs')} s after its start, HAProxy UP after {fields.get('lb_up_secs')} s; "
                f"{closes} closes with 1012 meanwhile")
            if rc != 0 or not fields:
                failures.append(f"cluster.sh restart {name} failed (exit {rc}):\n{text}")
            elif fields.get("exit_status") != "0":
                failures.append(f"node {name} exited with status {fields.get('exit_status')}")
            elif float(stop_secs) > drain_window + STOP_MARGIN:
                failures.append(f"node {name} took {stop_secs} s to exit (drain window {drain_window} s "
                                f"+ margin {STOP_MARGIN} s)")
            if held < 1:
                failures.append(f"node {name} held no connection before its restart")
            elif closes + own_drops < held:
                # (a sender's own drop meanwhile may have taken one of them)
                failures.append(f"node {name} held {int(held)} connections but clients saw {closes} closes with 1012 "
                                f"(and dropped {own_drops} themselves)")
            await asyncio.sleep(BETWEEN)
    finally:
        for s in senders:
            s.sending = False
        for t in send_tasks:
            t.cancel()

    log("senders stopped; waiting for every pending message to be acknowledged")
    try:
        await wait_for("every message acknowledged", lambda: all(not s.pending for s in senders), 30)
    except Fail as e:
        failures.append(f"{e}: " + ", ".join(f"{s.name} {list(s.pending)[:5]}" for s in senders if s.pending))
    finals = {}
    for room in rooms:
        finals[room] = await asyncio.get_running_loop().run_in_executor(None, history, lb_url, admin, room)
    last = {room: (msgs[-1]["seq"] if msgs else 0) for room, msgs in finals.items()}
    try:
        await wait_for("every client at its room's last seq",
                       lambda: all(p.last_seq >= last[p.room] for p in peers), 20)
    except Fail as e:
        failures.append(f"{e}: " + ", ".join(f"{p.name} at {p.last_seq}/{last[p.room]}"
                                             for p in peers if p.last_seq < last[p.room]))
    await asyncio.sleep(1.0)  # room for a late duplicate
    progress_task.cancel()
    await asyncio.gather(*(p.stop() for p in peers))

    # --- checks ---------------------------------------------------------------
    acked = {}
    for s in senders:
        for cmid, seq in s.acked.items():
            acked[cmid] = (s.room, seq)
    for room, msgs in finals.items():
        seqs = [m["seq"] for m in msgs]
        if seqs != list(range(1, len(seqs) + 1)):
            failures.append(f"room {room}: history seqs are not 1..{len(seqs)}")
        cmids = collections.Counter(m.get("client_msg_id") for m in msgs if m.get("client_msg_id"))
        twice = [c for c, n in cmids.items() if n > 1]
        if twice:
            failures.append(f"room {room}: client_msg_ids stored more than once: {twice[:10]}")
    by_cmid = {(room, m.get("client_msg_id")): m["seq"] for room, msgs in finals.items() for m in msgs}
    lost = [c for c, (room, seq) in acked.items() if (room, c) not in by_cmid]
    moved = [c for c, (room, seq) in acked.items() if (room, c) in by_cmid and by_cmid[(room, c)] != seq]
    if lost:
        failures.append(f"{len(lost)} acknowledged messages are not in the history: {lost[:10]}")
    if moved:
        failures.append(f"{len(moved)} acknowledged messages have another seq in the history: {moved[:10]}")
    sent = sum(s.sent for s in senders)
    if len(acked) != sent:
        failures.append(f"{sent} messages sent, {len(acked)} acknowledged")
    for p in peers:
        want = list(range(1, last[p.room] + 1))
        if p.stream != want:
            dup = sorted(s for s, n in collections.Counter(p.stream).items() if n > 1)
            gap = sorted(set(want) - set(p.stream))
            failures.append(f"{p.name} (room {p.room}): {len(p.stream)} deliveries for seqs 1..{last[p.room]}; "
                            f"duplicates {dup[:10]}, missing {gap[:10]}")
        for v in p.violations[:5]:
            failures.append(f"{p.name}: {v}")
        others = {c: n for c, n in p.closes.items() if c != 1012}
        if others:
            failures.append(f"{p.name}: closes other than 1012: {others}")

    reconnects = [t for p in peers for t in p.reconnect_times]
    codes = sum((p.closes for p in peers), collections.Counter())
    log("summary:")
    log(f"  clients {len(peers)} ({RECEIVERS} receivers, {SENDERS} senders) in rooms {rooms}; "
        f"history lengths {', '.join(f'room {r}: {n}' for r, n in last.items())}")
    log(f"  messages sent {sent}, acknowledged {len(acked)}, resent {sum(s.resends for s in senders)} "
        f"(answers to resends outside the stream: {sum(s.retry_answers for s in senders)})")
    log(f"  closes by code {dict(codes)}; refused or failed upgrades {sum(p.refused for p in peers)}; "
        f"connections opened {sum(p.connections for p in peers)}; "
        f"senders' own abrupt drops after a send {sum(p.own_drops for p in peers)}")
    if reconnects:
        reconnects.sort()
        log(f"  reconnects {len(reconnects)}: median {reconnects[len(reconnects) // 2]:.2f} s, "
            f"p95 {reconnects[int(len(reconnects) * 0.95)]:.2f} s, max {reconnects[-1]:.2f} s "
            "(close to online_users on the new connection)")
    for name, rc, fields, held, closes in restarts:
        log(f"  node {name}: exit {fields.get('exit_status')} after {fields.get('stop_secs')} s "
            f"(drain window {drain_window} s), held {int(held)} connections, {closes} closes with 1012, "
            f"ready again {fields.get('ready_secs')} s after start")
    if not reconnects:
        failures.append("no client reconnected")
    return failures


def drain_window_of(cluster_dir):
    if os.environ.get("RR_DRAIN_WINDOW_SECS"):
        return float(os.environ["RR_DRAIN_WINDOW_SECS"])
    try:
        with open(os.path.join(cluster_dir, "node-env.sh")) as f:
            m = re.search(r"^export CHAT__SERVER__DRAIN_WINDOW_SECS=(\d+)", f.read(), re.M)
            if m:
                return float(m.group(1))
    except OSError:
        pass
    return 5.0  # the gateway's default


def main():
    cluster = cluster_from_argv(sys.argv)
    if cluster is None:
        return 2
    cluster_dir, env = cluster
    drain_window = drain_window_of(cluster_dir)
    return run_scenario(scenario(cluster_dir, env, drain_window), TIMEOUT, log, "the scenario",
                        "no acknowledged message lost, no duplicate, no gap, "
                        "every node drained and exited 0")


if __name__ == "__main__":
    sys.exit(main())

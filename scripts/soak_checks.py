"""What the soak checks of every client, and what it prints when one fails.

Used by scripts/soak.py (this module: Python 3 standard library only).

Per connection, while it lives (`Stay`, one per room entered):
  - only the frames a soak client can expect: `online_users` first, then the
    room's `message`s with consecutive `seq`s (no gap, no duplicate), presence
    events, and `left_room` `left` for a room it left; anything else (an
    `error`, a `recovery_partial`, a message of a room it is not in) is a failure;
  - every message it sends comes back (its echo) within ECHO_WAIT seconds.
Across connections, after the churn (`Ledger`): a message echoed to its
sender while another connection was in the room reaches that connection too
(stored after it entered, echoed at least DELIVERY_SLACK seconds before it
left): a node that stopped receiving a room would otherwise pass unnoticed.

A failing client is reported with everything needed to diagnose it from the
CI output alone (`report`): its frames, the node and connection that served
it (found by its X-Request-Id in the node logs), the room's `seq`s it got
and the stored ones around its sends, and the node's log lines of that
connection (the writer's cursors at close, dropped echoes, timings).
"""

import collections
import datetime
import json
import os
import re
import urllib.parse
import urllib.request

ECHO_WAIT = float(os.environ.get("SOAK_ECHO_WAIT_SECS", 5))
DELIVERY_SLACK = float(os.environ.get("SOAK_DELIVERY_SLACK_SECS", 3))
REPORTS = int(os.environ.get("SOAK_REPORTS", 5))
# Frames a soak client may receive; `left_room` only as the answer to its own leave.
EXPECTED = {"message", "online_users", "user_joined", "user_left", "left_room", "pong"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def created_at(data):
    """A message's `created_at` (RFC 3339, UTC) as a Unix time."""
    return datetime.datetime.fromisoformat(data["created_at"].replace("Z", "+00:00")).timestamp()


class Stay:
    """One connection in one room, from its `online_users` to its leave."""

    def __init__(self, room, entered):
        self.room = room
        self.entered = entered      # wall clock: online_users received
        self.until = None           # wall clock: leave_room sent, or the close began
        self.left = False           # left_room received
        self.seqs = {}              # seq -> wall clock received
        self.last = None

    def covers(self, stored, echoed):
        """Must a message stored at `stored` and echoed at `echoed` have reached it?"""
        return stored > self.entered and self.until is not None and echoed + DELIVERY_SLACK < self.until


class Connection:
    """What one soak client saw: its frames, its stays, its failures."""

    def __init__(self, n, uid, room, request_id, started):
        self.n, self.uid, self.room, self.request_id = n, uid, room, request_id
        self.started = started
        self.events = []            # (monotonic, "in"/"out", text)
        self.stays = []             # every Stay, in order
        self.open = {}              # room -> its current Stay
        self.leaving = set()        # rooms it sent leave_room for
        self.failures = []
        self.sends = {}             # client_msg_id -> (sent at, echoed seq or None)

    def fail(self, what):
        self.failures.append(what)

    def sent(self, t, text, cmid=None, leave=None):
        self.events.append((t, "out", text))
        if cmid:
            self.sends[cmid] = [t, None]
        if leave is not None:
            self.leaving.add(leave)
            stay = self.open.get(leave)
            if stay and stay.until is None:
                stay.until = wall(t)

    def closing(self, t):
        for stay in self.open.values():
            if stay.until is None:
                stay.until = wall(t)

    def received(self, t, text):
        """Check one frame; returns the echoed client_msg_id, if it is one."""
        self.events.append((t, "in", text))
        frame = json.loads(text)
        kind, room, data = frame.get("type"), frame.get("room_id"), frame.get("data") or {}
        if kind not in EXPECTED:
            self.fail(f"unexpected {kind} frame: {text[:200]}")
            return None
        if kind == "online_users":
            if room in self.open and not self.open[room].left:
                self.open[room].until = self.open[room].until or wall(t)
            stay = Stay(room, wall(t))
            self.stays.append(stay)
            self.open[room] = stay
        elif kind == "left_room":
            stay = self.open.get(room)
            if data.get("reason") != "left" or room not in self.leaving or stay is None:
                self.fail(f"unexpected left_room: {text[:200]}")
            else:
                stay.left = True
                del self.open[room]
                self.leaving.discard(room)
        elif kind == "message":
            stay = self.open.get(room)
            seq = data.get("seq")
            if stay is None:
                self.fail(f"message seq {seq} of room {room}, which this connection is not in")
                return None
            if stay.last is not None and seq != stay.last + 1:
                what = "duplicate" if seq <= stay.last else f"gap of {seq - stay.last - 1}"
                self.fail(f"room {room}: seq {seq} after {stay.last} ({what})")
            stay.last = seq if stay.last is None else max(stay.last, seq)
            stay.seqs[seq] = wall(t)
            cmid = data.get("client_msg_id")
            if cmid in self.sends and self.sends[cmid][1] is None:
                self.sends[cmid][1] = seq
                return cmid
        return None

    def waiting(self):
        return [cmid for cmid, (_, seq) in self.sends.items() if seq is None]


# The monotonic clock of the soak and the wall clock of the nodes' created_at.
_OFFSET = None


def wall(t):
    global _OFFSET
    if _OFFSET is None:
        import time
        _OFFSET = time.time() - time.monotonic()
    return t + _OFFSET


class Ledger:
    """Every echoed message and every stay, for the cross-connection check."""

    def __init__(self):
        self.echoes = collections.defaultdict(list)   # room -> [(seq, stored, echoed, n)]
        self.stays = collections.defaultdict(list)    # room -> [(Stay, Connection summary)]

    def add(self, conn, frames_by_cmid):
        for cmid, (_, seq) in conn.sends.items():
            if seq is not None and cmid in frames_by_cmid:
                stored, echoed = frames_by_cmid[cmid]
                self.echoes[conn.room].append((seq, stored, echoed, conn.n))
        for stay in conn.stays:
            # Keep only what the check needs: no frames.
            self.stays[stay.room].append((stay, (conn.n, conn.uid, conn.request_id)))

    def missed(self, limit=20):
        """(count, descriptions) of messages a connection in the room never got."""
        count, out = 0, []
        for room, echoes in self.echoes.items():
            for stay, (n, uid, request_id) in self.stays.get(room, []):
                for seq, stored, echoed, sender in echoes:
                    if stay.covers(stored, echoed) and seq not in stay.seqs:
                        count += 1
                        if len(out) < limit:
                            got = sorted(stay.seqs)
                            out.append(f"room {room} seq {seq} (client {sender}'s, echoed at "
                                       f"{_clock(echoed)}) never reached client {n} (user {uid}, "
                                       f"{request_id}), in the room {_clock(stay.entered)}..{_clock(stay.until)}, "
                                       f"which got {_ranges(got)}")
        return count, out


def _clock(wall):
    return datetime.datetime.fromtimestamp(wall, datetime.timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def _ranges(seqs):
    """[1,2,3,7,8] -> '1-3, 7-8'."""
    if not seqs:
        return "nothing"
    out, start, prev = [], seqs[0], seqs[0]
    for s in seqs[1:] + [None]:
        if s is not None and s == prev + 1:
            prev = s
            continue
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
        if s is not None:
            start = prev = s
    return ", ".join(out)


def node_lines(cluster_dir, request_id):
    """(node name, connection key, that connection's log lines) from the node logs."""
    for path in sorted(p for p in os.listdir(cluster_dir) if re.fullmatch(r"node-\w+\.log", p)):
        with open(os.path.join(cluster_dir, path), errors="replace") as f:
            lines = [ANSI.sub("", line.rstrip("\n")) for line in f]
        key = None
        for line in lines:
            if f'request_id="{request_id}"' in line or f"request_id={request_id} " in line:
                m = re.search(r"\bconn=(\S+)", line)
                key = m and m.group(1)
                break
        if key:
            mine = [l for l in lines if re.search(rf"\bconn={re.escape(key)}(\s|$)", l)]
            return path[5:-4], key, mine
    return None, None, []


def stored_around(lb_url, token, room, cmids):
    """For each client_msg_id: its stored seq, and the seqs stored around it."""
    found, before, pages, seen = {}, None, 0, []
    while pages < 10 and len(found) < len(cmids):
        q = {"limit": 100}
        if before:
            q["before_id"] = before
        req = urllib.request.Request(f"{lb_url}/api/rooms/{room}/messages?{urllib.parse.urlencode(q)}",
                                     headers={"authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            page = json.loads(r.read().decode())
        for m in page["messages"]:
            seen.append(m["seq"])
            if m.get("client_msg_id") in cmids:
                found[m["client_msg_id"]] = m["seq"]
        before = page.get("next_before_id")
        pages += 1
        if not before:
            break
    return found, sorted(seen)


def report(conn, cluster_dir, lb_url, token):
    """Everything about a failed connection, as lines to print."""
    out = [f"client {conn.n}: user {conn.uid}, first room {conn.room}, request id {conn.request_id}"]
    out += [f"  failure: {f}" for f in conn.failures]
    node, key, lines = node_lines(cluster_dir, conn.request_id)
    out.append(f"  served by node {node} as connection {key}" if node else "  node: not found in the logs")
    out.append("  frames (seconds after the connect):")
    for t, way, text in conn.events[:400]:
        out.append(f"    {t - conn.started:+8.3f} {way:3} {text[:300]}")
    for stay in conn.stays:
        out.append(f"  room {stay.room}: in from {_clock(stay.entered)}"
                   f"{' to ' + _clock(stay.until) if stay.until else ''}, seqs delivered: {_ranges(sorted(stay.seqs))}")
    missing = conn.waiting()
    if missing:
        try:
            found, seen = stored_around(lb_url, token, conn.room, set(missing))
            for cmid in missing:
                seq = found.get(cmid)
                near = [s for s in seen if seq is not None and abs(s - seq) <= 3]
                out.append(f"  {cmid}: stored as seq {seq} (stored around it: {near})" if seq is not None
                           else f"  {cmid}: not stored (not in the room's last {len(seen)} messages)")
        except Exception as e:  # noqa: BLE001 - a report must not hide the failure
            out.append(f"  could not read the room's history: {e!r}")
    if lines:
        out.append(f"  node {node}'s log lines for {key}:")
        out += [f"    {l[:400]}" for l in lines[-60:]]
    return out

"""What the cluster scenarios share (scripts/e2e-cluster.py,
scripts/rolling_restart.py, scripts/soak.py): the cluster's env file, tokens
from the cluster's own binary, small HTTP helpers, and a WebSocket client on
the `websockets` library (asyncio implementation, websockets >= 13).

The wrappers (scripts/e2e-cluster.sh, rolling-restart.sh, soak.sh) run the
scenarios with the python of a venv holding the pinned `websockets`
(scripts/cluster-scenario.sh); the scenarios import this module by name, their
own directory being first on sys.path.
"""

import asyncio
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request

from websockets.asyncio.client import connect as ws_connect
from websockets.protocol import State
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus


class Fail(Exception):
    pass


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            m = re.match(r'^([A-Z_][A-Z0-9_]*)="(.*)"$', line.strip())
            if m:
                env[m.group(1)] = m.group(2)
    return env


def cluster_from_argv(argv):
    """`(cluster_dir, env)` from the one argument CLUSTER_DIR (a
    `scripts/cluster.sh --background` directory), or None after printing the
    usage."""
    if len(argv) != 2:
        print(f"usage: {argv[0]} CLUSTER_DIR", file=sys.stderr)
        return None
    cluster_dir = os.path.abspath(argv[1])
    return cluster_dir, read_env(os.path.join(cluster_dir, "cluster.env"))


def mint_token(env, uid, username, nickname, ttl=3600):
    """A token for user `uid` from the cluster's own binary (`gateway token`),
    signed with the cluster's secret; a user first seen is created from it."""
    out = subprocess.run(
        [env["GATEWAY_BIN_USED"], "token", "--sub", str(uid), "--username", username,
         "--nickname", nickname, "--ttl", str(ttl)],
        env={**os.environ, "CHAT__AUTH__JWT_SECRET": env["JWT_SECRET"]},
        capture_output=True, text=True, check=True)
    return out.stdout.strip()


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def http_json(url, token=None, timeout=5):
    """(status, parsed JSON body) of a GET, error statuses included."""
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode() or "null")


def api_call(method, url, token, body=None, timeout=10):
    """The parsed JSON answer of a REST call with a JSON body; an error
    status raises (urllib's HTTPError)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"authorization": f"Bearer {token}",
                                          "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read().decode() or "null")


def run_scenario(scenario, limit, log, what, passed):
    """Run the coroutine `scenario` (which returns a list of failures) for
    at most `limit` seconds, log the outcome, and give the exit status."""
    try:
        failures = asyncio.run(asyncio.wait_for(scenario, limit))
    except Fail as e:
        failures = [str(e)]
    except asyncio.TimeoutError:
        failures = [f"{what} took longer than {limit:.0f} s"]
    if failures:
        log(f"FAILED: {len(failures)} problem(s):")
        for f in failures:
            log(f"  - {f}")
        return 1
    log(f"passed: {passed}")
    return 0


def http_status(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


# --- the WebSocket client ------------------------------------------------------

class Closed(Exception):
    """The server's close frame arrived (its code in `code`)."""

    def __init__(self, code, reason=""):
        super().__init__(f"closed with {code} {reason}".strip())
        self.code = code


class WebSocket:
    """A text-message client on websockets' asyncio connection, with what the
    scenarios rely on: recv() raises Closed(code) when the server's close frame
    arrives and ConnectionError when the connection ends without one; close()
    only starts the closing handshake (the reader then gets Closed(1000) from
    the server's answer, or nothing); abort() drops the TCP connection without
    a close frame. Pings are answered by the library; the client sends none of
    its own (ping_interval=None), offers no compression, and accepts messages
    of any size."""

    def __init__(self, conn):
        self.conn = conn
        self.closed = None  # close code once the server closed
        self._tasks = set()

    @classmethod
    async def connect(cls, host, port, path, timeout=10, headers=None):
        try:
            conn = await ws_connect(f"ws://{host}:{port}{path}", additional_headers=headers,
                                    open_timeout=timeout, ping_interval=None, compression=None,
                                    max_size=None, close_timeout=10)
        except InvalidStatus as e:
            r = e.response
            raise Fail(f"upgrade refused: {r.status_code} {r.reason_phrase} "
                       f"{r.body.decode(errors='replace')[:500] if r.body else ''}".rstrip()) from None
        except InvalidHandshake as e:
            raise Fail(f"upgrade failed: {e}") from None
        return cls(conn)

    def _gone(self, e):
        """The exception for a closed connection: Closed when the server sent a
        close frame, ConnectionError when the connection ended without one."""
        if e.rcvd is not None:
            self.closed = e.rcvd.code
            return Closed(e.rcvd.code, e.rcvd.reason)
        return ConnectionResetError(f"connection ended without a close frame ({e})")

    async def recv(self):
        """The next text message; raises Closed or ConnectionError."""
        try:
            msg = await self.conn.recv()
        except ConnectionClosed as e:
            raise self._gone(e) from None
        if not isinstance(msg, str):
            raise Fail(f"unexpected binary message of {len(msg)} bytes")
        return msg

    async def send_text(self, text):
        try:
            await self.conn.send(text)
        except ConnectionClosed as e:
            raise ConnectionResetError(f"send on a closed connection ({e})") from None

    def send_nowait(self, text):
        """Queue a text message without waiting: the frame is written, in call
        order, as soon as the caller yields; lost if the connection is gone."""
        self._spawn(self.conn.send(text))

    async def close(self, code=1000):
        """Send a close frame; the rest of the handshake goes on in the background."""
        self._spawn(self.conn.close(code))
        await asyncio.sleep(0)  # the close frame is written

    def abort(self):
        """Drop the TCP connection at once, without a close frame."""
        transport = self.conn.transport
        if transport is not None:
            transport.abort()

    def release(self):
        """Done with this connection: abort it if still open; a closing
        handshake under way (either side's) finishes in the library."""
        if self.conn.state in (State.CONNECTING, State.OPEN):
            self.abort()

    def _spawn(self, coro):
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task):
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a send on a closed connection is expected

// Shared helpers of the k6 scenarios (loadtest/k6/*.js): environment, URLs,
// tokens (minted with JWT_SECRET, else registered over REST), rooms, message
// time stamps, the chat metrics and a WebSocket client that measures them.
//
// Protocol: shared/README.md (v1). A chat message this module sends carries
// its send time in the content, "k6 t=<epoch ms> <tag>", and a unique
// client_msg_id; every client that receives it adds now - t to
// chat_delivery_latency. The sender's own echo is its acknowledgement.
// Sender and receivers must share a clock: run them in one k6 process (or on
// synchronised machines).

import http from 'k6/http';
import crypto from 'k6/crypto';
import encoding from 'k6/encoding';
import exec from 'k6/execution';
import { check, sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { WebSocket } from 'k6/experimental/websockets';
import { setTimeout } from 'k6/timers';

// ---------------------------------------------------------------------------
// Environment.

export function envStr(name, def) {
    const v = __ENV[name];
    return v === undefined || v === '' ? def : v;
}

export function envNum(name, def) {
    const v = envStr(name, undefined);
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`${name}=${v} is not a number`);
    return n;
}

// A comma-separated list (empty entries dropped); def when unset.
export function envList(name, def) {
    const v = envStr(name, undefined);
    if (v === undefined) return def;
    return v.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

// ---------------------------------------------------------------------------
// Timers. k6 1.1.0's clearTimeout / clearInterval can make ANOTHER pending
// timer of the VU fire at once (grafana/k6#5199, fixed in a later k6): a
// connection's close timer went off 20 s early. So no timer is ever cleared
// here: these run in short steps and check a flag, and a cancelled one ends
// within 500 ms without firing.

const STEP_MS = 500;

// fn() once, `ms` from now, unless cancel(handle) comes first.
export function after(ms, fn) {
    const h = { cancelled: false };
    const deadline = Date.now() + ms;
    const step = () => {
        if (h.cancelled) return;
        const left = deadline - Date.now();
        if (left <= 0) {
            h.cancelled = true;
            fn();
        } else {
            setTimeout(step, Math.min(left, STEP_MS));
        }
    };
    setTimeout(step, Math.max(0, Math.min(ms, STEP_MS)));
    return h;
}

// fn() every `ms` until cancel(handle).
export function every(ms, fn) {
    const h = { cancelled: false };
    let next = Date.now() + ms;
    const step = () => {
        if (h.cancelled) return;
        const now = Date.now();
        if (now >= next) {
            fn();
            next = Math.max(next + ms, now + 1);
        }
        if (!h.cancelled) setTimeout(step, Math.max(0, Math.min(next - Date.now(), STEP_MS)));
    };
    setTimeout(step, Math.max(0, Math.min(ms, STEP_MS)));
    return h;
}

export function cancel(h) {
    if (h) h.cancelled = true;
}

// ---------------------------------------------------------------------------
// URLs. A target is given as http(s)://host:port (or ws(s)://, or with /ws);
// REST goes to http(s), WebSockets to ws(s)://.../ws.

export function httpBase(url) {
    let u = String(url).trim().replace(/\/+$/, '');
    u = u.replace(/^ws:/, 'http:').replace(/^wss:/, 'https:');
    u = u.replace(/\/ws$/, '');
    if (!/^https?:\/\//.test(u)) throw new Error(`not a URL: ${url}`);
    return u;
}

export function wsUrl(base, roomId, token, sinceSeq) {
    const b = httpBase(base).replace(/^http/, 'ws');
    let q = `room_id=${roomId}&token=${encodeURIComponent(token)}`;
    if (sinceSeq !== undefined && sinceSeq !== null) q += `&since_seq=${sinceSeq}`;
    return `${b}/ws?${q}`;
}

// BASE_URL: the deployment (a node, or the load balancer in front of nodes).
export const BASE_URL = httpBase(envStr('BASE_URL', 'http://127.0.0.1:8080'));

// ---------------------------------------------------------------------------
// Tokens.

// The gateway's JWT secret, to mint tokens: the file JWT_SECRET_FILE (its
// contents, trimmed; an absolute path, or one relative to this file), else
// JWT_SECRET from the environment (`JWT_SECRET=... k6 run`: k6 copies the
// environment into __ENV). Never `-e JWT_SECRET=...`: argv is visible to
// every user of the machine (`ps`).
function jwtSecret() {
    const file = envStr('JWT_SECRET_FILE', '');
    return file !== '' ? open(file).trim() : envStr('JWT_SECRET', '');
}
const JWT_SECRET = jwtSecret();
const USER_ID_BASE = envNum('USER_ID_BASE', 100000000);
const TOKEN_TTL_SECS = envNum('TOKEN_TTL_SECS', 3600);
const USER_PREFIX = envStr('USER_PREFIX', 'k6u');
const USER_PASSWORD = envStr('USER_PASSWORD', 'k6-load-test-password');

function b64json(obj) {
    return encoding.b64encode(JSON.stringify(obj), 'rawurl');
}

// An HS256 JWT for user `userId`, as the gateway accepts (README "Tokens").
export function mintToken(secret, userId, username) {
    const now = Math.floor(Date.now() / 1000);
    const head = b64json({ alg: 'HS256', typ: 'JWT' });
    const body = b64json({
        sub: String(userId),
        exp: now + TOKEN_TTL_SECS,
        username: username,
        nickname: username,
    });
    const sig = crypto.hmac('sha256', secret, `${head}.${body}`, 'binary');
    return `${head}.${body}.${encoding.b64encode(sig, 'rawurl')}`;
}

const tokenCache = {};

// The token of load-test user number `index` (0, 1, 2, ...), cached per VU.
// With JWT_SECRET: minted for user id USER_ID_BASE + index (the gateway
// creates the user on first sight). Without: registered over REST as
// USER_PREFIX + index (logged in when it exists already); argon2 makes that
// slow, so keep the sizes small or give the secret.
export function tokenFor(index, base) {
    const key = String(index);
    if (tokenCache[key]) return tokenCache[key];
    let token;
    if (JWT_SECRET !== '') {
        const id = USER_ID_BASE + index;
        token = mintToken(JWT_SECRET, id, `k6_${id}`);
    } else {
        token = registerOrLogin(base || BASE_URL, `${USER_PREFIX}${index}`, USER_PASSWORD);
    }
    tokenCache[key] = token;
    return token;
}

function registerOrLogin(base, username, password) {
    const body = JSON.stringify({ username, password, nickname: username });
    const headers = { 'content-type': 'application/json' };
    // 409: the user exists from an earlier run; not a failure.
    let res = http.post(`${httpBase(base)}/api/auth/register`, body, {
        headers, tags: { name: 'register' }, responseCallback: http.expectedStatuses(201, 409),
    });
    if (res.status === 409) {
        res = http.post(`${httpBase(base)}/api/auth/login`, JSON.stringify({ username, password }), {
            headers, tags: { name: 'login' },
        });
    }
    const ok = check(res, { 'register/login: 2xx with a token': (r) => r.status >= 200 && r.status < 300 && !!r.json('token') });
    if (!ok) throw new Error(`cannot get a token for ${username}: ${res.status} ${res.body}`);
    return res.json('token');
}

// ---------------------------------------------------------------------------
// REST.

export function api(base, token, method, path, body, name) {
    const params = {
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        tags: { name: name || `${method} ${path.replace(/\/\d+/g, '/{id}').replace(/\?.*$/, '')}` },
    };
    return http.request(method, `${httpBase(base)}${path}`, body === undefined ? null : JSON.stringify(body), params);
}

// Rooms one load-test user creates before the next one takes over: within
// the gateway's per-user REST write burst (20) and its rooms-per-user cap (50).
const ROOMS_PER_OWNER = 10;

// Creates `count` public rooms owned by load-test users from `ownerIndex` on
// (ten each); returns their ids.
export function createRooms(base, count, prefix, ownerIndex) {
    const first = ownerIndex === undefined ? 0 : ownerIndex;
    const tag = Date.now().toString(36);
    const ids = [];
    for (let i = 0; i < count; i++) {
        const token = tokenFor(first + Math.floor(i / ROOMS_PER_OWNER), base);
        const res = api(base, token, 'POST', '/api/rooms', {
            name: `${prefix}-${tag}-${i}`.slice(0, 64),
            description: 'created by a k6 load test (loadtest/k6)',
        });
        const ok = check(res, { 'create room: 201': (r) => r.status === 201 });
        if (!ok) throw new Error(`POST /api/rooms: ${res.status} ${res.body}`);
        ids.push(res.json('id'));
    }
    return ids;
}

// Deletes the rooms createRooms made (for teardown()), as their owners: the
// same owner for each as at creation. Their messages go with them. A room
// already gone (404) counts as deleted; a 429 is waited out (Retry-After).
// The load-test users stay: a deleted account stays deleted, and the next
// run would be refused with the same user ids.
export function deleteRooms(base, ids, ownerIndex) {
    const first = ownerIndex === undefined ? 0 : ownerIndex;
    let deleted = 0;
    ids.forEach((id, i) => {
        const token = tokenFor(first + Math.floor(i / ROOMS_PER_OWNER), base);
        for (let attempt = 0; attempt < 4; attempt++) {
            const res = http.del(`${httpBase(base)}/api/rooms/${id}`, null, {
                headers: { authorization: `Bearer ${token}` },
                tags: { name: 'teardown: delete room' },
                responseCallback: http.expectedStatuses(204, 404, 429),
            });
            if (res.status === 204 || res.status === 404) {
                deleted++;
                return;
            }
            if (res.status !== 429) {
                console.warn(`teardown: DELETE /api/rooms/${id}: ${res.status} ${res.body}`);
                return;
            }
            sleep(Math.min(Number(res.headers['Retry-After']) || 1, 5));
        }
    });
    console.log(`teardown: ${deleted} of ${ids.length} rooms deleted`);
}

// The status a refused handshake answered: the same URL as a plain GET runs
// the gateway's handshake checks in the same order (token, room, limits), so
// its status is the refusal's; 400 means only the upgrade itself failed.
function refusalStatus(url) {
    const res = http.get(url.replace(/^ws/, 'http'), {
        tags: { name: 'refused handshake, probed' },
        responseCallback: http.expectedStatuses({ min: 100, max: 599 }),
    });
    return res.status === 0 ? 'network' : String(res.status);
}

// The room's newest seq (0 when it has no message), from the history API.
export function roomLastSeq(base, token, roomId) {
    const res = api(base, token, 'GET', `/api/rooms/${roomId}/messages?limit=1`, undefined, 'history');
    check(res, { 'history: 200': (r) => r.status === 200 });
    if (res.status !== 200) return null;
    const msgs = res.json('messages') || [];
    return msgs.length > 0 ? msgs[0].seq : 0;
}

// ---------------------------------------------------------------------------
// Time stamps in message content.

export function stamp(tag) {
    return `k6 t=${Date.now()} ${tag}`;
}

// The send time (epoch ms) in a content written by stamp(), or null.
export function parseStamp(content) {
    const m = /^k6 t=(\d+) /.exec(content || '');
    return m ? Number(m[1]) : null;
}

// ---------------------------------------------------------------------------
// Metrics (thresholds in chatThresholds()).

export const metrics = {
    // now - send time, for every live message every client receives.
    latency: new Trend('chat_delivery_latency', true),
    // send -> the sender's own echo (the message is stored and broadcast).
    ackLatency: new Trend('chat_ack_latency', true),
    // open -> online_users of the first room (admission, membership, presence).
    joinTime: new Trend('chat_join_time', true),
    deliveries: new Counter('chat_deliveries'),
    // messages received that were sent before this connection asked for the
    // room (resume replay, backlog): counted, not timed.
    replayed: new Counter('chat_replayed'),
    sent: new Counter('chat_msgs_sent'),
    acked: new Counter('chat_msgs_acked'),
    // sends with neither an echo nor an error when the connection closed.
    unacked: new Counter('chat_msgs_unacked'),
    // seq holes a client saw (and, at the end, messages it never got).
    lost: new Counter('chat_msgs_lost'),
    // a seq a connection (or a VU across its reconnections) had seen already.
    dup: new Counter('chat_msgs_dup'),
    // frames of type error (tag code), sends refused.
    errorFrames: new Counter('chat_error_frames'),
    // connections that failed (handshake refused, network error).
    wsErrors: new Counter('chat_ws_errors'),
    // connections the server closed without being asked (tag code: k6 1.1.0
    // gives no close code, so 'unknown').
    unexpectedClose: new Counter('chat_unexpected_closes'),
    // receivers that entered their room only after the senders had started
    // (their first messages cannot be checked for loss).
    lateReceivers: new Counter('chat_late_receivers'),
    // connections whose first online_users had to be asked for again (see
    // ChatClient: a k6 quirk, not a gateway error).
    onlineUsersRetries: new Counter('chat_online_users_retries'),
};

const ONLINE_USERS_RETRY_MS = envNum('ONLINE_USERS_RETRY_MS', 2000);

// The thresholds every scenario shares. Limits from the environment:
// P95_MS / P99_MS (delivery latency), CONNECT_P95_MS (ws_connecting),
// MAX_WS_ERRORS, MAX_ERROR_FRAMES, MAX_LOST, CHECKS_RATE.
export function chatThresholds(extra) {
    const t = {
        checks: [`rate>=${envNum('CHECKS_RATE', 0.99)}`],
        ws_connecting: [`p(95)<${envNum('CONNECT_P95_MS', 1000)}`],
        chat_delivery_latency: [
            `p(95)<${envNum('P95_MS', 500)}`,
            `p(99)<${envNum('P99_MS', 1000)}`,
        ],
        chat_deliveries: ['count>0'],
        chat_ws_errors: [`count<=${envNum('MAX_WS_ERRORS', 0)}`],
        chat_error_frames: [`count<=${envNum('MAX_ERROR_FRAMES', 0)}`],
        chat_unexpected_closes: [`count<=${envNum('MAX_WS_ERRORS', 0)}`],
        chat_msgs_lost: [`count<=${envNum('MAX_LOST', 0)}`],
        chat_msgs_dup: ['count==0'],
        chat_msgs_unacked: [`count<=${envNum('MAX_LOST', 0)}`],
        http_req_failed: [`rate<=${envNum('HTTP_FAIL_RATE', 0.01)}`],
    };
    return Object.assign(t, extra || {});
}

// ---------------------------------------------------------------------------
// A client.

// At most LOG_LIMIT (default 3) warnings per VU (VUs share no state), so a
// failing run of thousands of VUs still says what went wrong without
// flooding the output.
let logged = 0;
const LOG_LIMIT = envNum('LOG_LIMIT', 3);
function logLimited(msg) {
    if (logged < LOG_LIMIT) {
        logged++;
        console.warn(`[vu ${exec.vu.idInTest}] ${msg}`);
    }
}

const RUN_TAG = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
let msgCounter = 0;

// A fresh client_msg_id (unique across VUs and runs: the gateway dedupes one
// for 10 minutes).
export function newClientMsgId() {
    msgCounter++;
    return `k6-${RUN_TAG}-${exec.vu.idInTest}-${msgCounter}`;
}

// ChatClient: one WebSocket connection.
//
//   opts.url / roomId / token / sinceSeq: where to connect.
//   opts.seen: {roomId: last seq} shared across a VU's connections (kept
//     up to date here; duplicate and hole detection use it). A room with no
//     entry starts at the first seq received.
//   opts.onOpen(client), opts.onJoined(client, roomId, frame),
//   opts.onMessage(client, frame), opts.onClose(client, event): hooks.
//   opts.connectTimeoutMs (default CONNECT_TIMEOUT_MS or 10000).
//   opts.tags: extra tags on chat_delivery_latency and chat_deliveries.
export class ChatClient {
    constructor(opts) {
        this.opts = opts;
        this.seen = opts.seen || {};
        this.pending = {}; // client_msg_id -> send time
        this.pendingRoom = {}; // client_msg_id -> room
        this.pendingCount = 0;
        this.liveSince = {}; // roomId -> ms: messages sent before are backlog
        this.joinRequested = {};
        this.rooms = {};
        this.frames = 0;
        this.closing = false;
        this.closed = false;
        this.opened = false;
        this.openedAt = 0;
        this.startedAt = Date.now();
        this.liveSince[opts.roomId] = this.startedAt;
        this.joinRequested[opts.roomId] = this.startedAt;
        const url = wsUrl(opts.url, opts.roomId, opts.token, opts.sinceSeq);
        const ws = new WebSocket(url);
        this.ws = ws;
        const timeout = opts.connectTimeoutMs || envNum('CONNECT_TIMEOUT_MS', 10000);
        this.connectTimer = after(timeout, () => {
            if (!this.rooms[opts.roomId] && !this.closed) {
                logLimited(`no online_users within ${timeout} ms (room ${opts.roomId}; ${this.opened ? `open since ${Date.now() - this.openedAt} ms, ${this.frames} frames received` : 'handshake not done'})`);
                check(false, { 'connected and in the room': (v) => v });
                metrics.wsErrors.add(1, { kind: 'timeout' });
                this.failed = true;
                this.close();
            }
        });
        ws.addEventListener('open', () => {
            this.opened = true;
            this.openedAt = Date.now();
            // k6's experimental WebSocket can drop the frames a server sends
            // right after the handshake (they reach the event loop before the
            // socket is marked open, and are discarded): under CPU load the
            // first frame, online_users, is sometimes lost although the
            // gateway sent it. Joining the room again makes the gateway repeat
            // online_users; chat_online_users_retries counts these.
            this.retryTimer = after(ONLINE_USERS_RETRY_MS, () => {
                if (!this.rooms[opts.roomId] && !this.closing && !this.closed) {
                    metrics.onlineUsersRetries.add(1);
                    logLimited(`no online_users ${ONLINE_USERS_RETRY_MS} ms after open (room ${opts.roomId}, ${this.frames} frames received): asking again with join_room`);
                    this.sendFrame({ type: 'join_room', room_id: opts.roomId });
                }
            });
            if (opts.onOpen) opts.onOpen(this);
        });
        ws.addEventListener('message', (e) => this._frame(e.data));
        ws.addEventListener('error', (e) => {
            if (this.closing) return;
            this.failed = true;
            if (this.opened) {
                metrics.wsErrors.add(1, { kind: 'socket' });
                logLimited(`websocket error (room ${opts.roomId}): ${e && e.error}`);
                return;
            }
            const status = refusalStatus(url);
            metrics.wsErrors.add(1, { kind: 'connect', status });
            check(false, { 'connected and in the room': (v) => v });
            logLimited(`handshake refused (room ${opts.roomId}): ${status}; ${e && e.error}`);
        });
        ws.addEventListener('close', (e) => {
            this.closed = true;
            cancel(this.connectTimer);
            cancel(this.retryTimer);
            cancel(this.pingTimer);
            if (!this.closing && !this.failed) {
                const code = e && e.code !== undefined ? String(e.code) : 'unknown';
                metrics.unexpectedClose.add(1, { code });
                logLimited(`the server closed the connection (code ${code}, room ${opts.roomId})`);
            }
            if (this.pendingCount > 0) {
                metrics.unacked.add(this.pendingCount);
                const ids = Object.keys(this.pending);
                logLimited(`${this.pendingCount} sends had no answer when the connection closed: ${ids.map((id) => `${id} to room ${this.pendingRoom[id]}${this.rooms[this.pendingRoom[id]] ? '' : ' (left)'}, ${Date.now() - this.pending[id]} ms ago`).join('; ')}`);
            }
            if (opts.onClose) opts.onClose(this, e);
        });
    }

    // Send a ping every `ms` (the gateway drops connections silent for 60 s).
    keepAlive(ms) {
        this.pingTimer = every(ms, () => this.sendFrame({ type: 'ping' }));
    }

    sendFrame(obj) {
        if (this.closed || this.closing || !this.opened) return false;
        this.ws.send(JSON.stringify(obj));
        return true;
    }

    // A time-stamped chat message; returns its client_msg_id (null if not sent).
    sendChat(roomId, tag) {
        const id = newClientMsgId();
        const frame = { type: 'message', room_id: roomId, content: stamp(tag || id), client_msg_id: id };
        if (!this.sendFrame(frame)) return null;
        this.pending[id] = Date.now();
        this.pendingRoom[id] = roomId;
        this.pendingCount++;
        metrics.sent.add(1);
        return id;
    }

    // Sends to `roomId` still waiting for their answer.
    pendingIn(roomId) {
        let n = 0;
        for (const id in this.pending) if (this.pendingRoom[id] === roomId) n++;
        return n;
    }

    join(roomId, sinceSeq) {
        const now = Date.now();
        this.joinRequested[roomId] = now;
        this.liveSince[roomId] = now;
        const f = { type: 'join_room', room_id: roomId };
        if (sinceSeq !== undefined && sinceSeq !== null) f.since_seq = sinceSeq;
        return this.sendFrame(f);
    }

    leave(roomId) {
        return this.sendFrame({ type: 'leave_room', room_id: roomId });
    }

    close() {
        if (this.closed || this.closing) return;
        this.closing = true;
        cancel(this.connectTimer);
        cancel(this.retryTimer);
        cancel(this.pingTimer);
        this.ws.close();
    }

    _frame(text) {
        this.frames++;
        let f;
        try {
            f = JSON.parse(text);
        } catch (_) {
            logLimited(`a frame that is not JSON: ${String(text).slice(0, 200)}`);
            metrics.errorFrames.add(1, { code: 'client_parse' });
            return;
        }
        const now = Date.now();
        switch (f.type) {
            case 'message':
                this._message(f, now);
                break;
            case 'online_users': {
                const first = !this.rooms[f.room_id];
                this.rooms[f.room_id] = true;
                if (first) {
                    if (f.room_id === this.opts.roomId) {
                        cancel(this.connectTimer);
                        cancel(this.retryTimer);
                    }
                    check(f, { 'connected and in the room': (x) => Array.isArray(x.data && x.data.users) });
                    metrics.joinTime.add(now - (this.joinRequested[f.room_id] || this.startedAt));
                    if (this.opts.onJoined) this.opts.onJoined(this, f.room_id, f);
                }
                break;
            }
            case 'left_room':
                // Out of the room: a later join starts after the room's seq of then.
                delete this.rooms[f.room_id];
                delete this.seen[f.room_id];
                break;
            case 'error': {
                const d = f.data || {};
                metrics.errorFrames.add(1, { code: String(d.code) });
                logLimited(`error frame: ${JSON.stringify(f)}`);
                if (d.ref && this.pending[d.ref] !== undefined) {
                    delete this.pending[d.ref];
                    delete this.pendingRoom[d.ref];
                    this.pendingCount--;
                }
                break;
            }
            default:
                break; // user_joined, user_left, pong, recovery_partial...
        }
        if (this.opts.onMessage) this.opts.onMessage(this, f);
    }

    _message(f, now) {
        const d = f.data || {};
        const room = f.room_id;
        // Acknowledgement of our own send.
        if (d.client_msg_id && this.pending[d.client_msg_id] !== undefined) {
            metrics.ackLatency.add(now - this.pending[d.client_msg_id]);
            metrics.acked.add(1);
            delete this.pending[d.client_msg_id];
            delete this.pendingRoom[d.client_msg_id];
            this.pendingCount--;
        }
        // Order: exactly once, no holes (protocol "Delivery guarantees").
        const last = this.seen[room];
        if (last !== undefined) {
            if (d.seq <= last) {
                metrics.dup.add(1);
                logLimited(`duplicate or out of order: room ${room} seq ${d.seq} after ${last}`);
                return;
            }
            if (d.seq > last + 1) {
                metrics.lost.add(d.seq - last - 1);
                logLimited(`hole: room ${room} seq ${d.seq} after ${last}`);
            }
        }
        this.seen[room] = d.seq;
        const t = parseStamp(d.content);
        if (t === null) return; // not ours
        if (t >= (this.liveSince[room] || this.startedAt)) {
            metrics.latency.add(now - t, this.opts.tags);
            metrics.deliveries.add(1, this.opts.tags);
        } else {
            metrics.replayed.add(1);
        }
    }
}

// ---------------------------------------------------------------------------
// Room load shared by fanout.js, cross-node.js and reconnect-storm.js.

// ms since the epoch of `offsetS` seconds after this scenario started.
export function scenarioAt(offsetS) {
    return exec.scenario.startTime + offsetS * 1000;
}

// Close `c` once every send has its answer, or after `maxMs`.
export function closeWhenAnswered(c, maxMs) {
    const stopAt = Date.now() + maxMs;
    const wait = every(20, () => {
        if (c.pendingCount === 0 || Date.now() >= stopAt || c.closed) {
            cancel(wait);
            c.close();
        }
    });
}

// A sender: connects, sends `rate` messages/s to roomId from `from` (or from
// when it is in the room, if later) to `until` (epoch ms), waits for its
// echoes up to `drainMs`, closes. The schedule does not drift: a timer that
// fires late (a busy load generator) catches up, at most 3 messages a tick.
export function runSender({ url, roomId, token, rate, from, until, drainMs, tags }) {
    const interval = 1000 / rate;
    const client = new ChatClient({
        url, roomId, token, tags,
        onJoined: (c) => {
            const start = () => {
                const t0 = Date.now();
                let sent = 0;
                const timer = every(Math.min(interval, 100), () => {
                    const now = Date.now();
                    if (now >= until || c.closed) {
                        cancel(timer);
                        closeWhenAnswered(c, drainMs);
                        return;
                    }
                    const due = Math.floor((now - t0) / interval) + 1;
                    for (let k = 0; k < 3 && sent < due; k++, sent++) c.sendChat(roomId);
                });
            };
            setTimeout(start, Math.max(0, from - Date.now()) + Math.random() * interval);
        },
    });
    return client;
}

// A receiver of a fresh room (its seq starts at 0): connects, stays until
// `until` (epoch ms), closes, then asks the history for the room's last seq
// and counts the messages it never got. In the room before `sendFrom`: it
// must see every seq from 1; joined later: from the first it sees.
export function runReceiver({ url, restUrl, roomId, token, sendFrom, until, seen, tags }) {
    seen = seen || {};
    const client = new ChatClient({
        url, roomId, token, seen, tags,
        onJoined: (c, room) => {
            if (room === roomId && Date.now() < sendFrom && seen[room] === undefined) seen[room] = 0;
            else if (room === roomId && Date.now() >= sendFrom) metrics.lateReceivers.add(1);
            c.keepAlive(20000);
            setTimeout(() => c.close(), Math.max(0, until - Date.now()));
        },
        onClose: (c) => {
            if (c.failed) return;
            const last = roomLastSeq(restUrl || url, token, roomId);
            if (last !== null && seen[roomId] !== undefined && last > seen[roomId]) {
                metrics.lost.add(last - seen[roomId]);
                logLimited(`room ${roomId}: got up to seq ${seen[roomId]} of ${last}`);
            }
        },
    });
    return client;
}

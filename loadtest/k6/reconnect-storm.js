// Reconnect storm: CLIENTS clients in ROOMS rooms drop their connections all
// at the same moment, STORMS times, and reconnect at once (within JITTER_MS)
// with since_seq = the last seq they saw, while senders keep chatting. The
// gateway must take the burst of upgrades (ws_connecting,
// chat_reconnect_time: close -> online_users of the new connection) and
// resume every client exactly where it left off: no hole, no duplicate
// across the reconnections (chat_msgs_lost, chat_msgs_dup), every message
// eventually delivered (the room's last seq, from the history API, at the
// end). Messages sent while a client was away arrive as replay
// (chat_replayed) and are not timed; live ones are (chat_delivery_latency).
//
// Timeline: clients connect over the first half of WARMUP_S; senders send
// RATE messages/s per room from WARMUP_S for STORMS * PERIOD_S seconds; storm
// k (0-based) is at WARMUP_S + (k + 0.5) * PERIOD_S; clients leave DRAIN_S
// after the senders stop. Through a load balancer a reconnection usually
// lands on another node: that tests the resume across nodes.
//
// Environment (defaults):
//   BASE_URL     http://127.0.0.1:8080   the deployment (node or load balancer)
//   JWT_SECRET   (none)                  mint tokens (from the environment, or JWT_SECRET_FILE); without it users are registered over REST
//   CLIENTS      500
//   ROOMS        5                       one sender per room
//   RATE         5                       messages per second per room
//   STORMS       3     PERIOD_S 10       WARMUP_S 5     DRAIN_S 5
//   JITTER_MS    0                       reconnect delay drawn from 0..JITTER_MS
//   RECONNECT_P95_MS 2000                threshold on chat_reconnect_time p(95)
//   thresholds: P95_MS 500, P99_MS 1000, CONNECT_P95_MS 1000, MAX_WS_ERRORS 0,
//   MAX_ERROR_FRAMES 0, MAX_LOST 0, CHECKS_RATE 0.99 (see lib/chat.js, README)
//   The gateway's per-IP connect limit (limits.connect_rate_per_ip) refuses
//   such a burst from one load generator: turn it off (0) for this test.
//
// Example:
//   JWT_SECRET=... k6 run -e BASE_URL=https://chat.example.com -e CLIENTS=5000 -e JITTER_MS=1000 \
//          loadtest/k6/reconnect-storm.js

import exec from 'k6/execution';
import { check } from 'k6';
import { Trend, Counter } from 'k6/metrics';
import { setTimeout } from 'k6/timers';
import {
    BASE_URL, envNum, tokenFor, ChatClient, runSender, roomLastSeq, metrics, scenarioAt, chatThresholds,
} from './lib/chat.js';
import { setupRooms, teardownRooms, oncePerVu } from './lib/scenario.js';

const CLIENTS = envNum('CLIENTS', 500);
const ROOMS = envNum('ROOMS', 5);
const RATE = envNum('RATE', 5);
const STORMS = envNum('STORMS', 3);
const PERIOD_S = envNum('PERIOD_S', 10);
const WARMUP_S = envNum('WARMUP_S', 5);
const DRAIN_S = envNum('DRAIN_S', 5);
const JITTER_MS = envNum('JITTER_MS', 0);
const SEND_END_S = WARMUP_S + STORMS * PERIOD_S;
const TOTAL_S = SEND_END_S + DRAIN_S;

const reconnectTime = new Trend('chat_reconnect_time', true);
const reconnects = new Counter('chat_reconnects');

export const options = oncePerVu({ clients: ['client', CLIENTS], senders: ['sender', ROOMS] }, TOTAL_S, chatThresholds({
    chat_reconnect_time: [`p(95)<${envNum('RECONNECT_P95_MS', 2000)}`],
    chat_reconnects: [`count>=${CLIENTS * STORMS}`],
}));

export const setup = () => setupRooms(ROOMS, 'k6-storm');
export const teardown = teardownRooms;

export function client(data) {
    const i = exec.scenario.iterationInTest; // 0 .. CLIENTS-1
    const room = data.rooms[i % ROOMS];
    const token = tokenFor(1 + i);
    const seen = {}; // kept across this client's connections
    const sendFrom = scenarioAt(WARMUP_S);
    const end = scenarioAt(TOTAL_S);
    let storm = 0;

    // droppedAt: when the previous connection closed (null: the first one).
    // A connection that fails or that the server closes is retried with
    // backoff (after it has been counted as an error), as a real client would.
    const connect = (droppedAt, attempt) => {
        new ChatClient({
            url: BASE_URL, roomId: room, token, seen,
            sinceSeq: seen[room],
            onClose: (c) => {
                if (c.closing || attempt >= 5 || Date.now() >= end) return;
                const at = c.rooms[room] ? Date.now() : droppedAt; // died in the room: a new drop
                setTimeout(() => connect(at, attempt + 1), Math.min(2000, 100 * 2 ** attempt));
            },
            onJoined: (c) => {
                if (droppedAt === null) {
                    // A fresh room: every seq from 1.
                    if (Date.now() < sendFrom && seen[room] === undefined) seen[room] = 0;
                    else if (Date.now() >= sendFrom) metrics.lateReceivers.add(1);
                } else {
                    reconnectTime.add(Date.now() - droppedAt);
                    reconnects.add(1);
                }
                c.keepAlive(20000);
                const next = storm < STORMS ? scenarioAt(WARMUP_S + (storm + 0.5) * PERIOD_S) : end;
                setTimeout(() => {
                    if (c.closed) return; // died: counted by the client
                    if (storm < STORMS) {
                        storm++;
                        c.opts.onClose = () => {
                            const at = Date.now();
                            setTimeout(() => connect(at, 0), Math.random() * JITTER_MS);
                        };
                    } else {
                        c.opts.onClose = () => finalCheck();
                    }
                    c.close();
                }, Math.max(0, next - Date.now()));
            },
        });
    };

    const finalCheck = () => {
        const last = roomLastSeq(BASE_URL, token, room);
        const got = seen[room];
        check(got, { 'resumed up to the last message': (g) => g !== undefined && last !== null && g >= last });
        if (last !== null && got !== undefined && last > got) metrics.lost.add(last - got);
    };

    setTimeout(() => connect(null, 0), (WARMUP_S * 500 * i) / Math.max(1, CLIENTS));
}

export function sender(data) {
    const j = exec.scenario.iterationInTest;
    runSender({
        url: BASE_URL, roomId: data.rooms[j], token: tokenFor(1 + CLIENTS + j), rate: RATE,
        from: scenarioAt(WARMUP_S), until: scenarioAt(SEND_END_S), drainMs: DRAIN_S * 1000,
    });
}

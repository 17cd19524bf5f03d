// Cross-node delivery: senders and receivers of the same rooms on different
// gateway nodes, so that every message crosses the bus (Redis pub/sub).
//
// setup() creates ROOMS fresh public rooms (through BASE_URL). Each room gets
// RECEIVERS_PER_ROOM receivers and one sender. Receivers connect to
// RECEIVER_URLS and senders to SENDER_URLS (comma-separated; each defaults to
// BASE_URL). Pinned (e.g. SENDER_URLS=node A, RECEIVER_URLS=nodes B,C) every
// delivery is cross-node; through a round-robin load balancer alone (the
// default) most of them are. Receivers of a room are spread over every
// receiver URL. From WARMUP_S on, each sender sends RATE messages per second
// for DURATION_S; receivers stay until WARMUP_S + DURATION_S + DRAIN_S, then
// compare what they got with the room's last seq (history API):
// chat_msgs_lost counts holes and missing tails. Receivers' deliveries are
// tagged recv_url (senders' own echoes: send_url), so a slow node shows.
//
// Environment (defaults):
//   BASE_URL            http://127.0.0.1:8080   load balancer (REST: rooms, history)
//   SENDER_URLS         BASE_URL                where senders connect (list)
//   RECEIVER_URLS       BASE_URL                where receivers connect (list)
//   JWT_SECRET          (none)                  mint tokens (from the environment, or JWT_SECRET_FILE); without it users are registered over REST
//   ROOMS               10
//   RECEIVERS_PER_ROOM  10
//   RATE                2                       messages per second per sender (one sender per room)
//   WARMUP_S            5     DURATION_S 30     DRAIN_S 5
//   thresholds: P95_MS 500, P99_MS 1000, CONNECT_P95_MS 1000, MAX_WS_ERRORS 0,
//   MAX_ERROR_FRAMES 0, MAX_LOST 0, CHECKS_RATE 0.99 (see lib/chat.js, README)
//
// Example (node A sends, nodes B and C receive):
//   JWT_SECRET=... k6 run -e BASE_URL=http://lb:8080 \
//          -e SENDER_URLS=http://node-a:8081 -e RECEIVER_URLS=http://node-b:8082,http://node-c:8083 \
//          loadtest/k6/cross-node.js

import exec from 'k6/execution';
import { setTimeout } from 'k6/timers';
import {
    BASE_URL, envNum, envList, httpBase, tokenFor, runSender, runReceiver, scenarioAt, chatThresholds,
} from './lib/chat.js';
import { setupRooms, teardownRooms, oncePerVu, sendingPhases } from './lib/scenario.js';

const SENDER_URLS = envList('SENDER_URLS', [BASE_URL]).map(httpBase);
const RECEIVER_URLS = envList('RECEIVER_URLS', [BASE_URL]).map(httpBase);
const ROOMS = envNum('ROOMS', 10);
const PER_ROOM = envNum('RECEIVERS_PER_ROOM', 10);
const RATE = envNum('RATE', 2);
const { WARMUP_S, DURATION_S, DRAIN_S, TOTAL_S } = sendingPhases();
const RECEIVERS = ROOMS * PER_ROOM;

export const options = oncePerVu(
    { receivers: ['receiver', RECEIVERS], senders: ['sender', ROOMS] }, TOTAL_S, chatThresholds(),
);

export function setup() {
    console.log(`senders on ${SENDER_URLS.join(' ')}; receivers on ${RECEIVER_URLS.join(' ')}`);
    return setupRooms(ROOMS, 'k6-cross');
}

export const teardown = teardownRooms;

export function receiver(data) {
    const i = exec.scenario.iterationInTest; // 0 .. RECEIVERS-1
    const room = data.rooms[i % ROOMS];
    const u = Math.floor(i / ROOMS) % RECEIVER_URLS.length; // each room on every receiver URL
    const delay = (WARMUP_S * 500 * i) / Math.max(1, RECEIVERS);
    setTimeout(() => runReceiver({
        url: RECEIVER_URLS[u], restUrl: BASE_URL, roomId: room, token: tokenFor(1 + i),
        sendFrom: scenarioAt(WARMUP_S), until: scenarioAt(TOTAL_S), tags: { recv_url: RECEIVER_URLS[u] },
    }), delay);
}

export function sender(data) {
    const j = exec.scenario.iterationInTest; // 0 .. ROOMS-1
    const url = SENDER_URLS[j % SENDER_URLS.length];
    runSender({
        url, roomId: data.rooms[j], token: tokenFor(1 + RECEIVERS + j), rate: RATE,
        from: scenarioAt(WARMUP_S), until: scenarioAt(WARMUP_S + DURATION_S), drainMs: DRAIN_S * 1000,
        tags: { send_url: url },
    });
}

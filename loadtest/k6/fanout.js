// Room fan-out: many members in one room, a few senders. Every member must
// receive every message exactly once, in seq order, within the latency limits.
//
// setup() creates a fresh public room. MEMBERS receivers connect (spread over
// the first half of WARMUP_S) and stay; SENDERS senders connect too and, from
// WARMUP_S on, each sends RATE time-stamped messages per second for
// DURATION_S, then waits up to DRAIN_S for its echoes. Receivers leave at
// WARMUP_S + DURATION_S + DRAIN_S and compare what they saw with the room's
// last seq (history API): a hole or a missing tail counts in chat_msgs_lost.
// Every delivery adds now - sent to chat_delivery_latency.
//
// Environment (defaults):
//   BASE_URL       http://127.0.0.1:8080   the deployment (node or load balancer)
//   JWT_SECRET     (none)                  mint tokens (from the environment, or JWT_SECRET_FILE); without it users are registered over REST
//   MEMBERS        200                     receivers in the room
//   SENDERS        2                       senders (also members)
//   RATE           5                       messages per second per sender (keep under limits.msg_rate)
//   WARMUP_S       5     DURATION_S 30     DRAIN_S 5
//   thresholds: P95_MS 500, P99_MS 1000, CONNECT_P95_MS 1000, MAX_WS_ERRORS 0,
//   MAX_ERROR_FRAMES 0, MAX_LOST 0, CHECKS_RATE 0.99 (see lib/chat.js, README)
//
// Example:
//   JWT_SECRET=... k6 run -e BASE_URL=https://chat.example.com \
//          -e MEMBERS=1000 -e SENDERS=3 -e RATE=5 loadtest/k6/fanout.js

import exec from 'k6/execution';
import { setTimeout } from 'k6/timers';
import { BASE_URL, envNum, tokenFor, runSender, runReceiver, scenarioAt, chatThresholds } from './lib/chat.js';
import { setupRooms, teardownRooms, oncePerVu, sendingPhases } from './lib/scenario.js';

const MEMBERS = envNum('MEMBERS', 200);
const SENDERS = envNum('SENDERS', 2);
const RATE = envNum('RATE', 5);
const { WARMUP_S, DURATION_S, DRAIN_S, TOTAL_S } = sendingPhases();

export const options = oncePerVu(
    { receivers: ['receiver', MEMBERS], senders: ['sender', SENDERS] }, TOTAL_S, chatThresholds(),
);

export const setup = () => setupRooms(1, 'k6-fanout');
export const teardown = teardownRooms;

export function receiver(data) {
    const i = exec.scenario.iterationInTest; // 0 .. MEMBERS-1
    const token = tokenFor(1 + i);
    const delay = (WARMUP_S * 500 * i) / Math.max(1, MEMBERS);
    setTimeout(() => runReceiver({
        url: BASE_URL, roomId: data.rooms[0], token,
        sendFrom: scenarioAt(WARMUP_S), until: scenarioAt(TOTAL_S),
    }), delay);
}

export function sender(data) {
    const i = exec.scenario.iterationInTest;
    runSender({
        url: BASE_URL, roomId: data.rooms[0], token: tokenFor(1 + MEMBERS + i), rate: RATE,
        from: scenarioAt(WARMUP_S), until: scenarioAt(WARMUP_S + DURATION_S), drainMs: DRAIN_S * 1000,
    });
}

// Connection ramp: VUS clients connect one after another, evenly over RAMP_S
// seconds, each into one of ROOMS rooms, and all stay connected until
// RAMP_S + HOLD_S; then they close. How long connecting (ws_connecting) and
// entering the room (chat_join_time: open -> online_users) take as the node
// fills up, and whether the connections already held keep working: each
// client sends a time-stamped message every MSG_EVERY_S seconds (0: never),
// which every member of its room receives (chat_delivery_latency), and pings
// every 20 s.
//
// Environment (defaults):
//   BASE_URL      http://127.0.0.1:8080   the deployment (node or load balancer)
//   JWT_SECRET    (none)                  mint tokens (from the environment, or JWT_SECRET_FILE); without it users are registered over REST
//   VUS           1000                    connections at the top of the ramp
//   ROOMS         20                      rooms created by setup(), clients spread evenly
//   RAMP_S        60    HOLD_S 30
//   MSG_EVERY_S   10                      per client; keep ROOMS large enough that VUS/ROOMS
//                                         members per room stays a sensible fan-out
//   JOIN_P95_MS   1000                    threshold on chat_join_time p(95)
//   thresholds: P95_MS 500, P99_MS 1000, CONNECT_P95_MS 1000, MAX_WS_ERRORS 0,
//   MAX_ERROR_FRAMES 0, MAX_LOST 0, CHECKS_RATE 0.99 (see lib/chat.js, README)
//
// Example:
//   JWT_SECRET=... k6 run -e BASE_URL=https://chat.example.com -e VUS=5000 -e RAMP_S=120 loadtest/k6/ramp.js

import exec from 'k6/execution';
import { setTimeout } from 'k6/timers';
import { BASE_URL, envNum, tokenFor, ChatClient, scenarioAt, chatThresholds, every, cancel } from './lib/chat.js';
import { setupRooms, teardownRooms, oncePerVu } from './lib/scenario.js';

const VUS = envNum('VUS', 1000);
const ROOMS = envNum('ROOMS', 20);
const RAMP_S = envNum('RAMP_S', 60);
const HOLD_S = envNum('HOLD_S', 30);
const MSG_EVERY_S = envNum('MSG_EVERY_S', 10);

export const options = oncePerVu({ ramp: ['client', VUS] }, RAMP_S + HOLD_S, chatThresholds({
    chat_join_time: [`p(95)<${envNum('JOIN_P95_MS', 1000)}`],
}));

export const setup = () => setupRooms(ROOMS, 'k6-ramp');
export const teardown = teardownRooms;

export function client(data) {
    const i = exec.scenario.iterationInTest; // 0 .. VUS-1
    const holdUntil = scenarioAt(RAMP_S + HOLD_S);
    const room = data.rooms[i % ROOMS];
    const token = tokenFor(1 + i);
    setTimeout(() => {
        new ChatClient({
            url: BASE_URL, roomId: room, token,
            onJoined: (c) => {
                c.keepAlive(20000);
                let sender = null;
                if (MSG_EVERY_S > 0) {
                    // Stop sending a little before the end, so that every echo arrives.
                    const stopAt = holdUntil - 2000;
                    setTimeout(() => {
                        if (c.closing || c.closed) return;
                        sender = every(MSG_EVERY_S * 1000, () => {
                            if (c.closing || c.closed || Date.now() >= stopAt) cancel(sender);
                            else c.sendChat(room);
                        });
                    }, Math.random() * MSG_EVERY_S * 1000);
                }
                setTimeout(() => {
                    cancel(sender);
                    c.close();
                }, Math.max(0, holdUntil - Date.now()));
            },
        });
    }, (RAMP_S * 1000 * i) / Math.max(1, VUS));
}

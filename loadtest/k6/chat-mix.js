// A realistic chat mix: many small rooms, users who come and go. USERS
// virtual users each run sessions one after another for DURATION_S. A
// session (SESSION_S long, +-50%):
//   1. lists the rooms and reads the history of its home room (REST);
//   2. connects to the home room and chats: a time-stamped message every
//      THINK_S (+-50%) seconds, to the home room or the second room;
//   3. after 30% of the session joins a second room (join_room) and reads its
//      history, after 70% leaves it (leave_room): it stops sending there and
//      leaves once its sends there are answered (a `message` immediately
//      followed by `leave_room` of that room can go unanswered: the echo is
//      broadcast after the connection left; LEAVE_AFTER_ANSWERS=0 leaves at
//      once and counts those in chat_msgs_unacked);
//   4. stops sending 2 s before the end, waits for its echoes, disconnects.
// Every member of a room receives the room's messages: chat_delivery_latency,
// chat_msgs_lost (holes in seq) and chat_msgs_dup count what they see.
// History reads are timed by http_req_duration{name:history}.
//
// Environment (defaults):
//   BASE_URL        http://127.0.0.1:8080   the deployment (node or load balancer)
//   JWT_SECRET      (none)                  mint tokens (from the environment, or JWT_SECRET_FILE); without it users are registered over REST
//   USERS           300                     concurrent users (VUs)
//   ROOMS           60                      small rooms created by setup()
//   DURATION_S      60
//   SESSION_S       20
//   THINK_S         3
//   LEAVE_AFTER_ANSWERS 1                   0: leave_room right away (see 3.)
//   HISTORY_P95_MS  500                     threshold on history reads p(95)
//   thresholds: P95_MS 500, P99_MS 1000, CONNECT_P95_MS 1000, MAX_WS_ERRORS 0,
//   MAX_ERROR_FRAMES 0, MAX_LOST 0, CHECKS_RATE 0.99 (see lib/chat.js, README)
//
// Example:
//   JWT_SECRET=... k6 run -e BASE_URL=https://chat.example.com -e USERS=2000 -e ROOMS=400 loadtest/k6/chat-mix.js

import exec from 'k6/execution';
import { check, sleep } from 'k6';
import { setTimeout } from 'k6/timers';
import {
    BASE_URL, envNum, tokenFor, api, ChatClient, scenarioAt, chatThresholds, every, cancel, closeWhenAnswered,
} from './lib/chat.js';
import { setupRooms, teardownRooms } from './lib/scenario.js';

const USERS = envNum('USERS', 300);
const ROOMS = envNum('ROOMS', 60);
const DURATION_S = envNum('DURATION_S', 60);
const SESSION_S = envNum('SESSION_S', 20);
const THINK_S = envNum('THINK_S', 3);
const LEAVE_AFTER_ANSWERS = envNum('LEAVE_AFTER_ANSWERS', 1) !== 0;

export const options = {
    setupTimeout: '120s',
    scenarios: {
        mix: {
            executor: 'constant-vus', exec: 'session',
            vus: USERS, duration: `${DURATION_S}s`, gracefulStop: '10s',
        },
    },
    thresholds: chatThresholds({
        'http_req_duration{name:history}': [`p(95)<${envNum('HISTORY_P95_MS', 500)}`],
    }),
};

export const setup = () => setupRooms(ROOMS, 'k6-mix');
export const teardown = teardownRooms;

const pick = (a) => a[Math.floor(Math.random() * a.length)];
const jitter = (s) => s * 1000 * (0.5 + Math.random());

function readHistory(token, room) {
    const res = api(BASE_URL, token, 'GET', `/api/rooms/${room}/messages?limit=50`, undefined, 'history');
    check(res, { 'history: 200': (r) => r.status === 200 });
}

export function session(data) {
    const token = tokenFor(exec.vu.idInTest); // one user per VU, kept across sessions
    const end = scenarioAt(DURATION_S);
    const length = Math.min(jitter(SESSION_S), end - Date.now() - 1000);
    if (length < 3000) {
        // Too close to the end for a session: idle past the end (the
        // executor stops the VU then; returning earlier would spin).
        sleep(Math.max(0, end - Date.now()) / 1000 + 1);
        return;
    }
    check(api(BASE_URL, token, 'GET', '/api/rooms?limit=20', undefined, 'rooms'), { 'rooms: 200': (r) => r.status === 200 });
    const home = pick(data.rooms);
    readHistory(token, home);
    const t0 = Date.now();
    let second = null; // the second room while we are (asking to be) in it
    new ChatClient({
        url: BASE_URL, roomId: home, token,
        onJoined: (c, room) => {
            if (room === second) {
                readHistory(token, room);
                return;
            }
            if (room !== home) return;
            c.keepAlive(20000);
            const stopSending = t0 + length - 2000;
            const chat = () => {
                if (c.closing || c.closed || Date.now() >= stopSending) return;
                const target = second !== null && c.rooms[second] && Math.random() < 0.5 ? second : home;
                c.sendChat(target);
                setTimeout(chat, jitter(THINK_S));
            };
            setTimeout(chat, jitter(THINK_S) / 2);
            setTimeout(() => {
                if (c.closing || c.closed) return;
                const others = data.rooms.filter((r) => r !== home);
                if (others.length === 0) return;
                second = pick(others);
                c.join(second);
            }, length * 0.3);
            setTimeout(() => {
                if (second === null || c.closing || c.closed) return;
                const r = second;
                second = null; // no more sends to it
                if (!LEAVE_AFTER_ANSWERS) {
                    c.leave(r);
                    return;
                }
                // Leave once the sends to it are answered (at most 2 s).
                const deadline = Date.now() + 2000;
                const wait = every(20, () => {
                    if (c.pendingIn(r) === 0 || Date.now() >= deadline || c.closing || c.closed) {
                        cancel(wait);
                        c.leave(r);
                    }
                });
            }, length * 0.7);
            // The end: wait (up to 2 s) for the echoes, then disconnect.
            setTimeout(() => closeWhenAnswered(c, 2000), Math.max(0, t0 + length - 2000 - Date.now()));
        },
    });
}

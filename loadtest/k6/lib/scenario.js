// What the scenario scripts (loadtest/k6/*.js) share around their load: their
// options when each VU runs its function once, the rooms their setup() makes
// and their teardown() deletes, and the phases of a sending run.

import { BASE_URL, createRooms, deleteRooms, envNum } from './chat.js';

// The options of a run in which each VU runs its function once: `groups`
// maps a k6 scenario name to [the exported function, how many VUs]; each may
// take `totalS` seconds plus 30.
export function oncePerVu(groups, totalS, thresholds) {
    const scenarios = {};
    for (const [name, [fn, vus]] of Object.entries(groups)) {
        scenarios[name] = {
            executor: 'per-vu-iterations', exec: fn,
            vus, iterations: 1, maxDuration: `${totalS + 30}s`,
        };
    }
    return { setupTimeout: '120s', scenarios, thresholds };
}

// setup(): `count` rooms named `prefix`-N, as `{ rooms: [id, ...] }`.
export function setupRooms(count, prefix) {
    return { rooms: createRooms(BASE_URL, count, prefix) };
}

// teardown(): what setup() created goes again (the users stay: see deleteRooms).
export function teardownRooms(data) {
    deleteRooms(BASE_URL, data.rooms);
}

// The phases of a sending run, in seconds (WARMUP_S, DURATION_S, DRAIN_S
// from the environment): receivers connect during the warm-up, senders send
// for the duration, and the drain waits for the last deliveries.
export function sendingPhases() {
    const WARMUP_S = envNum('WARMUP_S', 5);
    const DURATION_S = envNum('DURATION_S', 30);
    const DRAIN_S = envNum('DRAIN_S', 5);
    return { WARMUP_S, DURATION_S, DRAIN_S, TOTAL_S: WARMUP_S + DURATION_S + DRAIN_S };
}

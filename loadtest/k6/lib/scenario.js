// What every scenario script (loadtest/k6/*.js) exports in the same way:
// its options, when each VU runs its function once, and the rooms its
// setup() makes and its teardown() deletes.

import { BASE_URL, createRooms, deleteRooms } from './chat.js';

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

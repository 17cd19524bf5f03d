// Unit tests of chat-client.js against a scripted fake WebSocket (no server,
// no browser): `node --test gateway/web/tests/`. The browser test covers the
// real thing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatClient, ChatError } from '../chat-client.js';

/** A WebSocket double: records what the client sends; the test plays the server. */
class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = new URL(url);
    this.readyState = 0;
    this.sent = [];
    FakeSocket.all.push(this);
  }
  send(text) { this.sent.push(JSON.parse(text)); }
  close(code = 1000) { this.drop(code); }
  // --- the server's side
  open() { this.readyState = 1; this.onopen?.(); }
  frame(obj) { this.onmessage?.({ data: JSON.stringify(obj) }); }
  drop(code = 1006) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, reason: '' });
  }
}

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));
const msg = (room, seq, extra = {}) => ({
  type: 'message', room_id: room,
  data: { id: seq, room_id: room, user_id: 1, seq, content: `m${seq}`, created_at: '', user: { id: 1, username: 'a', nickname: 'A' }, ...extra },
});

function client(options = {}) {
  FakeSocket.all = [];
  return new ChatClient({ token: 't0k', url: 'ws://gw.test/ws', WebSocket: FakeSocket, backoffBaseMs: 20, backoffMaxMs: 40, ...options });
}

async function connected(chat, rooms) {
  await tick();
  const socket = FakeSocket.all.at(-1);
  socket.open();
  for (const room of rooms) socket.frame({ type: 'online_users', room_id: room, data: { users: [] } });
  return socket;
}

test('delivers each seq once, in order, and resumes every room from its last seq', async () => {
  const chat = client();
  const got = [];
  chat.addEventListener('message', (e) => got.push(`${e.detail.roomId}:${e.detail.message.seq}`));
  const joined1 = chat.join(1, { sinceSeq: 10 });
  let socket = await connected(chat, [1]);
  await joined1;
  assert.equal(socket.url.searchParams.get('room_id'), '1');
  assert.equal(socket.url.searchParams.get('since_seq'), '10');
  assert.equal(socket.url.searchParams.get('token'), 't0k');
  const joined2 = chat.join(2);
  assert.deepEqual(socket.sent.at(-1), { type: 'join_room', room_id: 2 });
  socket.frame({ type: 'online_users', room_id: 2, data: { users: [] } });
  await joined2;

  for (const f of [msg(1, 10), msg(1, 11), msg(1, 11), msg(2, 5), msg(1, 12), msg(2, 5), msg(2, 6)]) socket.frame(f);
  assert.deepEqual(got, ['1:11', '2:5', '1:12', '2:6']);

  socket.drop(1006);
  assert.equal(chat.state, 'reconnecting');
  await tick(60);
  socket = FakeSocket.all.at(-1);
  assert.notEqual(socket, FakeSocket.all[0]);
  socket.open();
  assert.equal(socket.url.searchParams.get('since_seq'), '12');
  assert.deepEqual(socket.sent, [{ type: 'join_room', room_id: 2, since_seq: 6 }]);
  socket.frame(msg(1, 12));
  socket.frame(msg(1, 13));
  assert.deepEqual(got.slice(4), ['1:13']);
  chat.close();
});

test('rooms joined together share one socket', async () => {
  const chat = client({ token: async () => 'later' });
  const both = Promise.all([chat.join(1, { sinceSeq: 3 }), chat.join(2, { sinceSeq: 4 })]);
  chat.connect();
  await tick();
  assert.equal(FakeSocket.all.length, 1);
  const socket = FakeSocket.all[0];
  assert.equal(socket.url.searchParams.get('token'), 'later');
  socket.open();
  assert.deepEqual(socket.sent, [{ type: 'join_room', room_id: 2, since_seq: 4 }]);
  socket.frame({ type: 'online_users', room_id: 1, data: { users: [] } });
  socket.frame({ type: 'online_users', room_id: 2, data: { users: [] } });
  await both;
  chat.close();
  assert.equal(socket.readyState, 3);
});

test('send resolves on the echo, rejects on the error frame, and waits while disconnected', async () => {
  const chat = client();
  chat.join(7, { sinceSeq: 0 });
  let socket = await connected(chat, [7]);

  const ok = chat.send(7, 'hello');
  const frame = socket.sent.at(-1);
  assert.equal(frame.type, 'message');
  assert.equal(frame.room_id, 7);
  assert.match(frame.client_msg_id, /^[\x21-\x7e]{1,64}$/);
  socket.frame(msg(7, 1, { client_msg_id: frame.client_msg_id }));
  assert.equal((await ok).seq, 1);

  const refused = chat.send(7, 'x'.repeat(3000));
  const ref = socket.sent.at(-1).client_msg_id;
  socket.frame({ type: 'error', room_id: 7, data: { code: 'content_too_long', message: 'too long', ref } });
  await assert.rejects(refused, (err) => err instanceof ChatError && err.code === 'content_too_long');

  // Disconnected: the send waits, then goes out once the room is entered again.
  socket.drop(1006);
  const later = chat.send(7, 'while away');
  await tick(60);
  socket = FakeSocket.all.at(-1);
  socket.open();
  assert.equal(socket.sent.length, 0, 'nothing before the room is entered');
  socket.frame({ type: 'online_users', room_id: 7, data: { users: [] } });
  const resent = socket.sent.at(-1);
  assert.equal(resent.content, 'while away');
  socket.frame(msg(7, 2, { client_msg_id: resent.client_msg_id }));
  assert.equal((await later).seq, 2);
  chat.close();
});

test('a send nobody answers times out; close rejects what is pending', async () => {
  const chat = client({ sendTimeoutMs: 30 });
  chat.join(1);
  await connected(chat, [1]);
  await assert.rejects(chat.send(1, 'lost'), (err) => err.code === 'timeout');
  const pending = chat.send(1, 'never');
  chat.close();
  await assert.rejects(pending, (err) => err.code === 'closed');
  assert.equal(chat.state, 'closed');
});

test('presence follows online_users, user_joined and user_left', async () => {
  const chat = client();
  const changes = [];
  chat.addEventListener('presence', (e) => changes.push([e.detail.change.type, e.detail.users.map((u) => u.id)]));
  chat.join(1);
  await tick();
  const socket = FakeSocket.all.at(-1);
  socket.open();
  socket.frame({ type: 'online_users', room_id: 1, data: { users: [{ id: 2, username: 'b', nickname: 'B' }] } });
  socket.frame({ type: 'user_joined', room_id: 1, data: { user: { id: 1, username: 'a', nickname: 'A' } } });
  socket.frame({ type: 'user_left', room_id: 1, data: { user_id: 2 } });
  assert.deepEqual(changes, [['online', [2]], ['joined', [1, 2]], ['left', [1]]]);
  chat.close();
});

test('a silent connection is dropped after the heartbeat timeout and reconnects', async () => {
  const chat = client({ heartbeatMs: 20, heartbeatTimeoutMs: 20 });
  chat.join(1);
  const first = await connected(chat, [1]);
  await tick(30);
  assert.deepEqual(first.sent.at(-1), { type: 'ping' });
  await tick(100);
  assert.equal(first.readyState, 3, 'dropped');
  assert.ok(FakeSocket.all.length >= 2, 'reconnected');
  chat.close();
});

test('no reconnect after 1008; an unwanted default room is left', async () => {
  const chat = client();
  chat.connect();
  await tick();
  const socket = FakeSocket.all.at(-1);
  assert.equal(socket.url.searchParams.get('room_id'), null);
  socket.open();
  socket.frame({ type: 'online_users', room_id: 1, data: { users: [] } });
  assert.deepEqual(socket.sent.at(-1), { type: 'leave_room', room_id: 1 });
  socket.drop(1008);
  assert.equal(chat.state, 'closed');
  await tick(60);
  assert.equal(FakeSocket.all.length, 1);
});

test('no reconnect after 4001 (the account was deleted)', async () => {
  const chat = client();
  chat.connect();
  await tick();
  const socket = FakeSocket.all.at(-1);
  socket.open();
  socket.drop(4001);
  assert.equal(chat.state, 'closed');
  await tick(60);
  assert.equal(FakeSocket.all.length, 1);
});

test('backoff grows with jitter and stays under its ceiling', async () => {
  const chat = client({ backoffBaseMs: 100, backoffMaxMs: 400 });
  const delays = [];
  chat.addEventListener('state', (e) => e.detail.delayMs !== undefined && delays.push(e.detail.delayMs));
  for (let i = 0; i < 5; i += 1) chat.scheduleReconnect();
  chat.close();
  const ceilings = [100, 200, 400, 400, 400];
  delays.forEach((d, i) => assert.ok(d >= ceilings[i] / 2 && d <= ceilings[i], `attempt ${i + 1}: ${d} ms`));
});

test('a large room: presence_batch updates the list, online_count the total', async () => {
  const chat = client();
  chat.join(7);
  chat.connect();
  await tick();
  const socket = FakeSocket.all.at(-1);
  socket.open();
  socket.frame({ type: 'online_users', room_id: 7, data: { users: [{ id: 1, username: 'a', nickname: 'A' }], online_count: 900 } });
  assert.equal(chat.onlineCount(7), 900);
  const seen = [];
  chat.addEventListener('presence', (e) => seen.push(e.detail.change));
  socket.frame({ type: 'presence_batch', room_id: 7, data: { joined: [{ id: 2, username: 'b', nickname: 'B' }, { id: 3, username: 'c', nickname: 'C' }], left: [1] } });
  assert.deepEqual(chat.onlineUsers(7).map((u) => u.id), [2, 3]);
  assert.equal(chat.onlineCount(7), 901);
  assert.equal(seen.at(-1).type, 'batch');
  chat.close();
});

test('typing goes out once per interval per entered room, and others\' typing is an event', async () => {
  const chat = client();
  const seen = [];
  chat.addEventListener('typing', (e) => seen.push(`${e.detail.roomId}:${e.detail.user.username}`));
  chat.typing(1); // not entered yet: nothing to send
  const joined = chat.join(1);
  const socket = await connected(chat, [1]);
  await joined;
  const typings = () => socket.sent.filter((f) => f.type === 'typing');
  assert.equal(typings().length, 0);
  chat.typing(1);
  chat.typing(1);
  chat.typing(1);
  assert.deepEqual(typings(), [{ type: 'typing', room_id: 1 }]);
  socket.frame({ type: 'typing', room_id: 1, data: { user: { id: 2, username: 'bob', nickname: 'Bob' } } });
  socket.frame({ type: 'typing', room_id: 9, data: { user: { id: 3, username: 'eve', nickname: 'Eve' } } });
  assert.deepEqual(seen, ['1:bob'], 'a room the client is not in is ignored');
  chat.close();
});

test('read markers: forward only, one frame per interval with the highest seq, and other devices\' markers are events', async () => {
  const chat = client();
  const events = [];
  chat.addEventListener('read', (e) => events.push(`${e.detail.roomId}:${e.detail.seq}`));
  chat.noteRead(1, 3);
  chat.markRead(1, 2); // behind what the server has: nothing
  const joined = chat.join(1);
  const socket = await connected(chat, [1]);
  await joined;
  const reads = () => socket.sent.filter((f) => f.type === 'read');
  chat.markRead(1, 5);
  assert.deepEqual(reads(), [{ type: 'read', room_id: 1, seq: 5 }]);
  chat.markRead(1, 6);
  chat.markRead(1, 8);
  assert.equal(reads().length, 1, 'within the interval: held');
  await tick(1100);
  assert.deepEqual(reads().at(-1), { type: 'read', room_id: 1, seq: 8 }, 'then the highest');
  assert.equal(reads().length, 2);
  socket.frame({ type: 'read', room_id: 1, data: { seq: 12 } }); // read on another device
  socket.frame({ type: 'read', room_id: 1, data: { seq: 10 } }); // older: ignored
  assert.equal(chat.readSeq(1), 12);
  assert.deepEqual(events, ['1:5', '1:6', '1:8', '1:12']);
  chat.close();
});

test('edits and deletions are events, and go through the same seq cursor as messages', async () => {
  const chat = client();
  const got = [];
  chat.addEventListener('message', (e) => got.push(`message ${e.detail.message.seq}`));
  chat.addEventListener('edited', (e) => got.push(e.detail));
  chat.addEventListener('deleted', (e) => got.push(e.detail));
  const joined = chat.join(3, { sinceSeq: 4 });
  let socket = await connected(chat, [3]);
  await joined;
  const edited = (seq, id, content) => ({ type: 'message_edited', room_id: 3, data: { id, seq, content, edited_at: '2026-12-05T10:00:00.000Z' } });
  const deleted = (seq, id) => ({ type: 'message_deleted', room_id: 3, data: { id, seq } });

  socket.frame(msg(3, 5));
  socket.frame(edited(4, 2, 'replayed, seen already')); // at or below lastSeq: dropped
  socket.frame(edited(6, 5, 'fixed'));
  socket.frame(edited(6, 5, 'fixed')); // the same edit again: dropped
  socket.frame(deleted(7, 5));
  socket.frame(deleted(7, 5));
  assert.equal(chat.lastSeq(3), 7, 'the events moved the cursor');
  socket.frame(msg(3, 7)); // a seq an event already held: dropped
  socket.frame(msg(3, 8));
  socket.frame({ ...edited(9, 1, 'elsewhere'), room_id: 9 }); // a room the client is not in: ignored
  assert.deepEqual(got, [
    'message 5',
    { roomId: 3, id: 5, seq: 6, content: 'fixed', editedAt: '2026-12-05T10:00:00.000Z' },
    { roomId: 3, id: 5, seq: 7 },
    'message 8',
  ]);

  // An event is the newest item: a resume starts after it.
  socket.frame(edited(9, 8, 'after the last message'));
  assert.equal(got.length, 5);
  socket.drop(1006);
  await tick(60);
  socket = FakeSocket.all.at(-1);
  socket.open();
  assert.equal(socket.url.searchParams.get('since_seq'), '9');
  socket.frame({ type: 'online_users', room_id: 3, data: { users: [] } });
  socket.frame(edited(9, 8, 'after the last message')); // replayed by the resume: dropped
  socket.frame(deleted(10, 8));
  assert.deepEqual(got.slice(5), [{ roomId: 3, id: 8, seq: 10 }]);
  chat.close();
});

test('an event starts the cursor of a room joined live', async () => {
  const chat = client();
  const got = [];
  chat.addEventListener('message', (e) => got.push(e.detail.message.seq));
  chat.addEventListener('deleted', (e) => got.push(`deleted ${e.detail.id}`));
  chat.join(4);
  const socket = await connected(chat, [4]);
  assert.equal(chat.lastSeq(4), null);
  socket.frame({ type: 'message_deleted', room_id: 4, data: { id: 20, seq: 21 } });
  assert.equal(chat.lastSeq(4), 21);
  socket.frame(msg(4, 21));
  socket.frame(msg(4, 22));
  assert.deepEqual(got, ['deleted 20', 22]);
  chat.close();
});

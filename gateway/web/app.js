// The chat page: the REST API for accounts, rooms and history, and
// chat-client.js for the live part; a message and its edit and delete
// actions are messages.js, the online list and who is typing presence.js,
// the members panel members.js. User data only ever goes into the DOM
// through textContent (never innerHTML), so a message is always text.

import { ChatClient } from './chat-client.js';
import { showMembers } from './members.js';
import { createMessages } from './messages.js';
import { createPresence, showConnection } from './presence.js';

const $ = (id) => document.getElementById(id);
const HISTORY_PAGE = 50;
const SESSION_KEY = 'chat.session';

/** Readable text for the gateway's error codes. */
const FRIENDLY = {
  rate_limited: 'You are sending too fast. Wait a moment and try again.',
  not_in_room: 'You are not in this room: join it first.',
  forbidden: 'This room is private and you are not a member.',
  room_not_found: 'This room does not exist (any more).',
  content_empty: 'Write something first.',
  content_too_long: 'Message too long',
  invalid_content: 'The message has characters that are not allowed.',
  too_many_rooms: 'You are in too many rooms on this connection.',
  client_msg_id_reused: 'That message id was already used for another message.',
  unavailable: 'The service is having trouble. Try again shortly.',
  timeout: 'No answer from the server: the message may not have been sent.',
  closed: 'Disconnected.',
};

/** @type {{token: string, user: {id: number, username: string, nickname: string}} | null} */
let session = null;
/** @type {ChatClient | null} */
let client = null;
/** Rooms the user is a member of, by id: the API's room objects. */
const myRooms = new Map();
/** Per room: messages by seq, the history cursor, unread count, pending sends. */
const views = new Map();
/** Users seen (presence, messages), by id, to name who left. */
const people = new Map();
let active = null;
/** The timer that looks for rooms opened with this user elsewhere. */
let roomsTimer = null;

/** A message on screen, with its Edit and Delete buttons and the edit form (messages.js). */
const messages = createMessages({
  me: () => session?.user,
  roleIn: (roomId) => myRooms.get(roomId)?.role,
  active: () => active,
  views,
  viewOf,
  api,
  errorText,
  onDeleted: (roomId, view, m) => {
    // The server counts no deleted message as unread: neither does the badge.
    if (roomId !== active && view.unread > 0 && m.user_id !== session.user.id &&
        m.seq > (client?.readSeq(roomId) ?? 0)) {
      view.unread -= 1;
      renderRooms();
    }
  },
});
const messageElement = messages.element;

/** The online list, who is typing (presence.js). */
const presence = createPresence({
  me: () => session?.user,
  active: () => active,
  people,
  onlineCount: (roomId) => client?.onlineCount(roomId),
  openDm,
});

/** Debugging handle (and what the browser test uses to find the client). */
globalThis.chatApp = { get client() { return client; }, views, enterNewRooms: () => enterNewRooms() };

function errorText(err) {
  const friendly = FRIENDLY[err.code];
  if (err.code === 'content_too_long') return `${friendly}: ${err.message}.`;
  return friendly ?? err.message ?? String(err);
}

async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (session) headers.authorization = `Bearer ${session.token}`;
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  if (res.status !== 204) {
    try {
      data = await res.json();
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = new Error(data?.error?.message ?? `HTTP ${res.status}`);
    err.code = data?.error?.code;
    err.status = res.status;
    if (res.status === 401 && session) logout('Your session has expired. Log in again.');
    throw err;
  }
  return data;
}

// --- Accounts ----------------------------------------------------------------

$('auth-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const action = event.submitter?.value === 'register' ? 'register' : 'login';
  const body = { username: $('username').value.trim(), password: $('password').value };
  const nickname = $('nickname').value.trim();
  if (action === 'register' && nickname) body.nickname = nickname;
  $('auth-error').textContent = '';
  try {
    const answer = await api('POST', `/api/auth/${action}`, body);
    session = { token: answer.token, user: answer.user };
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
    $('password').value = '';
    await start();
  } catch (err) {
    $('auth-error').textContent = err.message;
  }
});

$('logout').addEventListener('click', () => logout());

function logout(reason = '') {
  clearInterval(roomsTimer);
  client?.close();
  client = null;
  session = null;
  sessionStorage.removeItem(SESSION_KEY);
  myRooms.clear();
  views.clear();
  active = null;
  messages.forgetEdit();
  $('app').hidden = true;
  $('who').hidden = true;
  $('auth').hidden = false;
  $('auth-error').textContent = reason;
  showConnection('idle');
}

// --- Start: rooms, history, the live connection -------------------------------

async function start() {
  $('auth').hidden = true;
  $('app').hidden = false;
  $('who').hidden = false;
  $('me').textContent = `${session.user.nickname} (@${session.user.username})`;
  people.set(session.user.id, session.user);

  client = new ChatClient({ token: () => session.token });
  client.addEventListener('state', (e) => {
    showConnection(e.detail.state, e.detail);
    // A refused handshake looks like any failed connection to a page: after a
    // few failures, ask the API whether the token still holds (a 401 logs out).
    if (e.detail.state === 'reconnecting' && e.detail.attempt >= 3) api('GET', '/api/users/me').catch(() => {});
  });
  client.addEventListener('message', (e) => onMessage(e.detail.roomId, e.detail.message));
  client.addEventListener('edited', (e) => onChanged(e.detail, { content: e.detail.content, edited_at: e.detail.editedAt }));
  client.addEventListener('deleted', (e) => onChanged(e.detail, { deleted: true, content: '' }));
  client.addEventListener('presence', (e) => presence.onPresence(e.detail));
  client.addEventListener('left', (e) => onLeft(e.detail));
  client.addEventListener('recovery', (e) => reloadHistory(e.detail.roomId));
  client.addEventListener('typing', (e) => presence.onTyping(e.detail.roomId, e.detail.user));
  client.addEventListener('read', (e) => onRead(e.detail.roomId, e.detail.seq));
  client.addEventListener('error', (e) => {
    $('composer-error').textContent = errorText(e.detail.error);
  });

  // Everyone is in "general" (room 1): the lobby.
  await api('POST', '/api/rooms/1/join').catch(() => {});
  await loadRooms();
  const wanted = Number(sessionStorage.getItem('chat.active')) || 1;
  await Promise.all([...myRooms.keys()].map((id) => enterRoom(id).catch((err) => {
    $('rooms-error').textContent = `${myRooms.get(id)?.name ?? `Room ${id}`}: ${errorText(err)}`;
  })));
  select(myRooms.has(wanted) ? wanted : [...myRooms.keys()][0]);
  // One query every 20 s: rooms opened with this user elsewhere appear.
  clearInterval(roomsTimer);
  roomsTimer = setInterval(enterNewRooms, 20_000);
}

async function loadRooms() {
  const all = [];
  let after = null;
  for (let page = 0; page < 10; page += 1) {
    const query = after === null ? '?limit=100' : `?limit=100&after=${after}`;
    const answer = await api('GET', `/api/rooms${query}`);
    all.push(...answer.rooms);
    after = answer.next_after;
    if (after === null) break;
  }
  for (const room of all) {
    if (!room.role) continue;
    myRooms.set(room.id, room);
    // The server's count: messages others wrote since this user's read marker.
    viewOf(room.id).unread = room.id === active ? 0 : room.unread_count ?? 0;
    client?.noteRead(room.id, room.last_read_seq ?? 0);
  }
  renderRooms(all.filter((room) => !room.role && !room.is_private));
}

/** Load the newest page of history, then enter the room live from its last seq. */
async function enterRoom(roomId) {
  const view = viewOf(roomId);
  const page = await api('GET', `/api/rooms/${roomId}/messages?limit=${HISTORY_PAGE}`);
  addPage(view, page);
  const sinceSeq = page.messages.length ? page.messages[0].seq : 0;
  client.connect();
  await client.join(roomId, { sinceSeq: Math.max(sinceSeq, client.lastSeq(roomId) ?? 0) });
}

async function reloadHistory(roomId) {
  const view = viewOf(roomId);
  view.messages.clear();
  const page = await api('GET', `/api/rooms/${roomId}/messages?limit=${HISTORY_PAGE}`);
  addPage(view, page);
  if (roomId === active) renderMessages();
}

function viewOf(roomId) {
  if (!views.has(roomId)) {
    // newestSeq: the room's newest place in its stream seen here: a message,
    // or an edit or a deletion (they hold seqs too, and mark a room read as well).
    views.set(roomId, { messages: new Map(), nextBeforeId: null, unread: 0, pending: new Map(), loading: false, newestSeq: 0 });
  }
  return views.get(roomId);
}

function addPage(view, page) {
  for (const m of page.messages) {
    view.messages.set(m.seq, m);
    view.newestSeq = Math.max(view.newestSeq, m.seq);
    people.set(m.user.id, m.user);
  }
  view.nextBeforeId = page.next_before_id;
}

// --- Rooms ---------------------------------------------------------------------

/** "# name", "🔒 name", or for a direct-message room "@ the other user". */
function roomLabel(room) {
  if (room.kind === 'dm') {
    const others = room.name.split(', ').filter((n) => n !== session.user.username);
    return `@ ${others.join(', ') || room.name}`;
  }
  return `${room.is_private ? '🔒 ' : '# '}${room.name}`;
}

/** The direct-message room with `user`: opened (created the first time), entered, shown. */
async function openDm(user) {
  $('rooms-error').textContent = '';
  try {
    const room = await api('POST', '/api/dms', { user_id: user.id });
    if (!myRooms.has(room.id)) {
      myRooms.set(room.id, room);
      await enterRoom(room.id);
    }
    select(room.id);
  } catch (err) {
    // The server's words: "takes direct messages only from people they share a room with".
    $('rooms-error').textContent = err.message ?? errorText(err);
  }
}

/** Rooms this user was put in elsewhere (a direct message, an owner adding them): enter them. */
async function enterNewRooms() {
  if (!client || document.visibilityState !== 'visible') return;
  const known = new Set(myRooms.keys());
  try {
    await loadRooms();
  } catch {
    return;
  }
  const fresh = [...myRooms.keys()].filter((id) => !known.has(id));
  await Promise.all(fresh.map((id) => enterRoom(id).catch(() => {})));
  renderRooms();
}

function renderRooms(publicRooms) {
  const mine = $('my-rooms');
  mine.replaceChildren();
  for (const room of myRooms.values()) {
    const li = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.room = room.id;
    const name = document.createElement('span');
    name.textContent = roomLabel(room);
    button.append(name);
    const unread = views.get(room.id)?.unread ?? 0;
    if (unread > 0) {
      const badge = document.createElement('span');
      badge.className = 'badge';
      // The server counts up to 1,000.
      badge.textContent = unread >= 1000 ? '999+' : String(unread);
      badge.setAttribute('aria-label', `${unread} unread`);
      button.append(badge);
    }
    if (room.id === active) button.setAttribute('aria-current', 'true');
    button.addEventListener('click', () => select(room.id));
    li.append(button);
    mine.append(li);
  }
  if (publicRooms) {
    const list = $('public-rooms');
    list.replaceChildren();
    for (const room of publicRooms) {
      const li = document.createElement('li');
      const name = document.createElement('span');
      name.textContent = `# ${room.name}`;
      const join = document.createElement('button');
      join.type = 'button';
      join.className = 'join secondary';
      join.textContent = 'Join';
      join.setAttribute('aria-label', `Join ${room.name}`);
      join.addEventListener('click', () => joinRoom(room));
      li.append(join, name);
      list.append(li);
    }
    if (!publicRooms.length) {
      const li = document.createElement('li');
      li.className = 'hint';
      li.textContent = 'No other public rooms.';
      list.append(li);
    }
  }
}

async function joinRoom(room) {
  $('rooms-error').textContent = '';
  try {
    await api('POST', `/api/rooms/${room.id}/join`);
    myRooms.set(room.id, { ...room, role: 'member' });
    await enterRoom(room.id);
    select(room.id);
    await refreshDirectory();
  } catch (err) {
    $('rooms-error').textContent = errorText(err);
  }
}

async function refreshDirectory() {
  myRooms.clear();
  await loadRooms();
}

$('create-room').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('rooms-error').textContent = '';
  const name = $('room-name').value.trim();
  try {
    const room = await api('POST', '/api/rooms', { name, is_private: $('room-private').checked });
    $('room-name').value = '';
    $('room-private').checked = false;
    $('new-room').open = false;
    myRooms.set(room.id, room);
    await enterRoom(room.id);
    select(room.id);
  } catch (err) {
    $('rooms-error').textContent = errorText(err);
  }
});

function select(roomId) {
  if (roomId === undefined) return;
  active = roomId;
  sessionStorage.setItem('chat.active', String(roomId));
  const room = myRooms.get(roomId);
  const view = viewOf(roomId);
  view.unread = 0;
  markViewedRead();
  $('room-title').textContent = room ? roomLabel(room) : `Room ${roomId}`;
  $('room-desc').textContent = room?.description ?? '';
  $('composer-error').textContent = '';
  renderRooms();
  renderMessages();
  presence.renderOnline(client?.onlineUsers(roomId) ?? [], client?.onlineCount(roomId));
  presence.renderTyping();
  if ($('members-box').open) loadMembers();
  scrollToBottom();
}

// --- Members and bans (owner and admins ban from here) --------------------------------

/** The open room's member list (see members.js). */
function loadMembers() {
  const roomId = active;
  if (roomId === null) return $('members').replaceChildren();
  return showMembers({
    roomId,
    myRole: myRooms.get(roomId)?.role,
    me: session.user.id,
    api,
    errorText,
    stillShown: () => roomId === active,
  });
}

$('members-box').addEventListener('toggle', () => {
  if ($('members-box').open) loadMembers();
});

function onLeft({ roomId, reason }) {
  if (reason === 'left') return;
  const room = myRooms.get(roomId);
  myRooms.delete(roomId);
  views.delete(roomId);
  const why = {
    kicked: 'You were removed from',
    banned: 'You were banned from',
  }[reason] ?? 'This room was deleted:';
  $('rooms-error').textContent = `${why} ${room?.name ?? `room ${roomId}`}.`;
  if (active === roomId) select([...myRooms.keys()][0]);
  else renderRooms();
  // The room may be listed among the public ones again (to join, or to be
  // told why not).
  loadRooms().catch(() => {});
}

// --- Messages: edits and deletions from the live stream --------------------------------

/** An edit or a deletion from the live stream (maybe made here, maybe elsewhere). */
function onChanged({ roomId, id, seq }, change) {
  const view = views.get(roomId);
  if (!view) return;
  view.newestSeq = Math.max(view.newestSeq, seq);
  messages.applyChange(roomId, id, change);
  // Not a message: no unread badge; but on screen, the room is read up to here.
  if (roomId === active) markViewedRead();
}

// --- The message list ------------------------------------------------------------------

function renderMessages() {
  const list = $('messages');
  const view = active === null ? null : viewOf(active);
  const seqs = view ? [...view.messages.keys()].sort((a, b) => a - b) : [];
  list.replaceChildren(...seqs.map((seq) => messageElement(view.messages.get(seq))));
  if (view) list.append(...view.pending.values());
  $('older').hidden = !view || view.nextBeforeId === null;
}

/** Put one stored message into the open list, in seq order. */
function insertMessage(m) {
  const list = $('messages');
  const element = messageElement(m);
  const after = [...list.querySelectorAll('li[data-seq]')].find((li) => Number(li.dataset.seq) > m.seq);
  if (after) list.insertBefore(element, after);
  else {
    const firstPending = list.querySelector('li.pending');
    list.insertBefore(element, firstPending);
  }
}

function onMessage(roomId, m) {
  people.set(m.user.id, m.user);
  // They sent what they were typing.
  presence.stoppedTyping(roomId, m.user.id);
  const view = viewOf(roomId);
  if (m.client_msg_id) dropPending(view, m.client_msg_id);
  view.newestSeq = Math.max(view.newestSeq, m.seq);
  if (view.messages.has(m.seq)) return;
  view.messages.set(m.seq, m);
  if (roomId === active) {
    const stick = nearBottom() || m.user_id === session.user.id;
    insertMessage(m);
    if (stick) scrollToBottom();
    markViewedRead();
  } else if (m.user_id !== session.user.id && m.seq > (client?.readSeq(roomId) ?? 0)) {
    view.unread += 1;
    renderRooms();
  }
}

/**
 * The open room, on screen: read up to its newest message, or edit or
 * deletion (here and on the user's other devices).
 */
function markViewedRead() {
  if (active === null || !client || document.visibilityState !== 'visible') return;
  const newest = viewOf(active).newestSeq;
  if (newest > 0) client.markRead(active, newest);
}

document.addEventListener('visibilitychange', markViewedRead);

/** The read marker moved (maybe on another device): what is at or below it is read. */
function onRead(roomId, seq) {
  const view = viewOf(roomId);
  // Unread are the messages of others after the marker, as the server counts: not the deleted ones.
  const after = [...view.messages.values()]
    .filter((m) => m.seq > seq && m.user_id !== session.user.id && !m.deleted).length;
  const unread = seq >= view.newestSeq ? 0 : Math.min(view.unread, after);
  if (unread === view.unread) return;
  view.unread = unread;
  renderRooms();
}

function dropPending(view, clientMsgId) {
  const element = view.pending.get(clientMsgId);
  if (!element) return;
  view.pending.delete(clientMsgId);
  element.remove();
}

$('composer').addEventListener('submit', (event) => {
  event.preventDefault();
  send();
});

$('composer-input').addEventListener('input', (event) => {
  if (client && active !== null && event.target.value.trim()) client.typing(active);
});

$('composer-input').addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    send();
  }
});

function send() {
  const input = $('composer-input');
  const content = input.value;
  $('composer-error').textContent = '';
  if (!content.trim()) {
    $('composer-error').textContent = FRIENDLY.content_empty;
    return;
  }
  if (active === null || !client) return;
  const roomId = active;
  const view = viewOf(roomId);
  input.value = '';
  const id = client.nextId();
  const promise = client.send(roomId, content, { clientMsgId: id });
  // Shown at once, greyed, until the echo (or an error) arrives.
  const pending = messageElement({ content, user_id: session.user.id, user: session.user });
  pending.classList.add('pending');
  const status = document.createElement('span');
  status.className = 'status';
  pending.append(status);
  view.pending.set(id, pending);
  if (roomId === active) {
    $('messages').append(pending);
    scrollToBottom();
  }
  promise.then(
    (message) => {
      dropPending(view, id);
      if (!view.messages.has(message.seq)) onMessage(roomId, message);
    },
    (err) => {
      pending.classList.replace('pending', 'failed');
      status.textContent = `Not sent: ${errorText(err)}`;
      view.pending.delete(id);
      if (roomId === active) $('composer-error').textContent = errorText(err);
    },
  );
}

// --- History: scrolling back loads older pages --------------------------------------

async function loadOlder() {
  if (active === null) return;
  const roomId = active;
  const view = viewOf(roomId);
  if (view.loading || view.nextBeforeId === null) return;
  view.loading = true;
  const scroller = $('scroller');
  try {
    const page = await api('GET', `/api/rooms/${roomId}/messages?limit=${HISTORY_PAGE}&before_id=${view.nextBeforeId}`);
    addPage(view, page);
    if (roomId === active) {
      const before = scroller.scrollHeight;
      renderMessages();
      scroller.scrollTop += scroller.scrollHeight - before;
    }
  } catch (err) {
    $('composer-error').textContent = errorText(err);
  } finally {
    view.loading = false;
  }
}

$('older').addEventListener('click', loadOlder);
$('scroller').addEventListener('scroll', () => {
  if ($('scroller').scrollTop < 40) loadOlder();
});

function nearBottom() {
  const s = $('scroller');
  return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
}

function scrollToBottom() {
  const s = $('scroller');
  s.scrollTop = s.scrollHeight;
}

// --- Boot ----------------------------------------------------------------------------------

(async () => {
  const saved = sessionStorage.getItem(SESSION_KEY);
  if (!saved) return;
  try {
    session = JSON.parse(saved);
    const me = await api('GET', '/api/users/me');
    session.user = me.user ?? me;
    await start();
  } catch {
    logout();
  }
})();

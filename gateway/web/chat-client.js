// chat-client.js: a dependency-free client of the chat gateway's WebSocket
// protocol v1 (shared/README.md). Copy this one file. See README.md here.
//
// It does the hard parts: one socket for many rooms, automatic reconnect with
// jittered exponential backoff, resume with the last `seq` of each room (every
// message exactly once, in order), heartbeats, and a promise per sent message
// (resolved by the echo, rejected by the `error` frame that names it).

/** Close codes after which the client does not reconnect by itself. */
const FINAL_CLOSE_CODES = new Set([1000, 1008, 4001]);
/** The node is stopping: reconnect at once (with a little jitter). */
const SERVICE_RESTART = 1012;
/** The server relays one `typing` per user and room this often. */
export const TYPING_INTERVAL_MS = 2000;
/** At most one `read` per room this often (the user's REST write budget pays for them). */
export const READ_INTERVAL_MS = 1000;

/**
 * A refused frame or a failed send. `code` is the protocol's error code
 * (`rate_limited`, `not_in_room`, `content_too_long`, ...) or one of the
 * client's own: `timeout` (no answer in time), `closed` (the client was closed).
 */
export class ChatError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {number|undefined} [roomId]
   */
  constructor(code, message, roomId) {
    super(message);
    this.name = 'ChatError';
    this.code = code;
    this.roomId = roomId;
  }
}

/**
 * @typedef {{id: number, username: string, nickname: string}} User
 * @typedef {{id: number, room_id: number, user_id: number, seq: number,
 *   content: string, created_at: string, user: User, client_msg_id?: string,
 *   edited_at?: string, deleted?: boolean}} Message
 *   `edited_at` (RFC 3339) once edited; `deleted: true` for a tombstone (empty content).
 *
 * @typedef {object} ChatClientOptions
 * @property {string|(() => string|Promise<string>)} token The JWT, or a function
 *   returning one (called before every connection attempt, so it can refresh).
 * @property {string} [url] The WebSocket endpoint; default `/ws` on the page's origin.
 * @property {number} [heartbeatMs=25000] Send a `ping` after this long without traffic.
 * @property {number} [heartbeatTimeoutMs=10000] Drop and reconnect when a `ping` gets
 *   no answer (any frame) within this long.
 * @property {number} [sendTimeoutMs=15000] Reject a send not acknowledged this long
 *   after it was called (it may still be delivered later: watch `message` events).
 * @property {number} [backoffBaseMs=500] First reconnect delay (before jitter).
 * @property {number} [backoffMaxMs=15000] Longest reconnect delay.
 * @property {typeof WebSocket} [WebSocket] A WebSocket implementation (Node < 22, tests).
 */

/**
 * One connection to the gateway, shared by every room the app is in.
 *
 * Events (each a `CustomEvent`; the payload is `event.detail`):
 * - `state`    `{state, attempt?, delayMs?, code?}`: `connecting`, `connected`,
 *              `reconnecting`, `offline` (the browser says the network is down),
 *              `closed` (by `close()` or a final close code).
 * - `message`  `{roomId, message}`: a chat message, exactly once per room, in `seq` order.
 * - `edited`   `{roomId, id, seq, content, editedAt}`: message `id` was edited. `seq` is
 *              the edit's own place in the room's stream (not the message's seq): edits
 *              come exactly once, in order with the messages, and count for the resume.
 * - `deleted`  `{roomId, id, seq}`: message `id` was deleted (show a tombstone); `seq`
 *              is the deletion's own place in the stream, as for `edited`.
 * - `presence` `{roomId, users, change}`: the room's online users (an array, by id;
 *   in a large room the server lists at most 100 at entry by default: `onlineCount(roomId)`
 *   has the real number)
 *              after `change`: `{type:'online'}` (entered the room),
 *              `{type:'joined', user}` or `{type:'left', userId}`.
 * - `joined`   `{roomId}`: the connection is in the room (first time and after each resume).
 * - `left`     `{roomId, reason}`: it is no longer in the room (`left`, `kicked`, `room_deleted`).
 * - `read`     `{roomId, seq}`: this user's read marker in the room moved (read on
 *              another device, or by `markRead` here): clear badges up to `seq`.
 * - `typing`   `{roomId, user}`: another user is typing in the room (sent at most
 *              every 2 s while they type: treat it as stale after a few seconds).
 * - `recovery` `{roomId, sinceSeq, resumedAtSeq}`: a resume reached past the server's
 *              recovery window; messages in between were skipped: reload the history.
 * - `error`    `{error: ChatError}`: a refused frame that no promise was waiting for.
 */
export class ChatClient extends EventTarget {
  /** @param {ChatClientOptions} options */
  constructor(options) {
    super();
    if (!options || !options.token) throw new TypeError('ChatClient needs a token');
    this.options = {
      heartbeatMs: 25000,
      heartbeatTimeoutMs: 10000,
      sendTimeoutMs: 15000,
      backoffBaseMs: 500,
      backoffMaxMs: 15000,
      ...options,
    };
    /** @type {'idle'|'connecting'|'connected'|'reconnecting'|'offline'|'closed'} */
    this.state = 'idle';
    /**
     * Rooms the app wants to be in: id → `{lastSeq, entered}`. `lastSeq` is the
     * highest `seq` delivered, message, edit or deletion (null when unknown: the
     * room was joined live);
     * `entered` is true once the server confirmed (`online_users`) on this socket.
     * @type {Map<number, {lastSeq: number|null, entered: boolean}>}
     */
    this.rooms = new Map();
    /** @type {Map<number, Map<number, User>>} online users per room */
    this.online = new Map();
    /** roomId → the server's `online_count` when it cut the list short, else null. */
    this.counts = new Map();
    this.listedAtEntry = new Map();
    /** roomId → the read marker (highest `seq` read) as far as this client knows. */
    this.readSeqs = new Map();
    /** Rooms whose marker moved here and has not been sent yet. */
    this.unsentReads = new Set();
    this.lastReadSentAt = 0;
    /** roomId → when `typing` last went out (ms). */
    this.typedAt = new Map();
    /** Sends waiting for their echo: client_msg_id → entry. */
    this.pending = new Map();
    this.socket = null;
    this.attempt = 0;
    this.sequence = 0;
    this.prefix = `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
    this.timers = { reconnect: null, heartbeat: null, pong: null, reads: null };
    this.onOnline = () => this.state === 'offline' && this.reconnectNow();
    this.onOffline = () => this.dropSocket(4001, 'offline');
    if (typeof window !== 'undefined') {
      window.addEventListener('online', this.onOnline);
      window.addEventListener('offline', this.onOffline);
    }
  }

  /** Open the connection (idempotent). Enters every room joined so far. */
  connect() {
    if (this.state === 'closed') throw new ChatError('closed', 'the client was closed');
    if (this.socket || this.opening || this.timers.reconnect) return;
    this.open();
  }

  /**
   * Enter a room. With `sinceSeq` (the last `seq` the app has, e.g. from the
   * history API; 0 for "from the start"), every message after it is delivered
   * (and every edit and deletion, which hold seqs of their own), then the live
   * stream: no gap, no duplicate. Resolves when the server
   * confirmed (`online_users`); rejects with the `error` frame (`forbidden`,
   * `room_not_found`, `too_many_rooms`, ...).
   * @param {number} roomId
   * @param {{sinceSeq?: number}} [opts]
   * @returns {Promise<void>}
   */
  join(roomId, opts = {}) {
    const lastSeq = opts.sinceSeq ?? this.rooms.get(roomId)?.lastSeq ?? null;
    this.rooms.set(roomId, { lastSeq, entered: false });
    const done = this.waitFor('joined', 'error', roomId);
    if (this.socket && this.socket.readyState === 1) this.sendJoin(roomId);
    else this.connect();
    return done;
  }

  /**
   * Leave a room (this connection only; the membership stays: use the REST
   * `POST /api/rooms/{id}/leave` to give it up).
   * @param {number} roomId
   */
  leave(roomId) {
    this.rooms.delete(roomId);
    this.unsentReads.delete(roomId);
    this.online.delete(roomId);
    if (this.socket && this.socket.readyState === 1) {
      this.raw({ type: 'leave_room', room_id: roomId });
    }
  }

  /**
   * Send a message. Resolves with the stored message (the echo) or rejects
   * with a `ChatError` (the `error` frame, or `timeout`). While disconnected
   * the message waits in an outbox and goes out, with the same
   * `client_msg_id`, once the room is entered again: the gateway stores it
   * once even if an earlier attempt got through.
   * @param {number} roomId
   * @param {string} content
   * @param {{clientMsgId?: string}} [opts] the id to send under (default `nextId()`);
   *   pass the same id again to retry a send the app gave up on.
   * @returns {Promise<Message>}
   */
  send(roomId, content, opts = {}) {
    const id = opts.clientMsgId ?? this.nextId();
    const previous = this.pending.get(id);
    if (previous) {
      clearTimeout(previous.timer);
      previous.reject(new ChatError('superseded', 'sent again under the same id', roomId));
    }
    return new Promise((resolve, reject) => {
      const entry = {
        frame: { type: 'message', room_id: roomId, content, client_msg_id: id },
        roomId,
        resolve,
        reject,
        sent: false,
        timer: setTimeout(() => {
          this.pending.delete(id);
          reject(new ChatError('timeout', 'no answer from the server in time', roomId));
        }, this.options.sendTimeoutMs),
      };
      this.pending.set(id, entry);
      // A room the client is not in goes out at once: the server answers `not_in_room`.
      if (this.rooms.get(roomId)?.entered || !this.rooms.has(roomId)) this.transmit(entry);
    });
  }

  /**
   * Tell the room's other members that this user is typing. Call it on every
   * keystroke: it goes out at most once per `TYPING_INTERVAL_MS` per room (the
   * server relays no more often), and not at all while the room is not entered.
   * @param {number} roomId
   */
  typing(roomId) {
    if (!this.rooms.get(roomId)?.entered) return;
    const now = Date.now();
    if (now - (this.typedAt.get(roomId) ?? -Infinity) < TYPING_INTERVAL_MS) return;
    this.typedAt.set(roomId, now);
    this.raw({ type: 'typing', room_id: roomId });
  }

  /**
   * Mark a room read up to `seq` (e.g. the newest message shown while the room
   * is on screen). Markers only move forward; this sends at most one `read`
   * per room per `READ_INTERVAL_MS`, with the highest `seq` asked for by then,
   * once the room is entered. The user's other devices get a `read` event.
   * @param {number} roomId
   * @param {number} seq
   */
  markRead(roomId, seq) {
    if (seq <= (this.readSeqs.get(roomId) ?? -1)) return;
    this.readSeqs.set(roomId, seq);
    this.unsentReads.add(roomId);
    this.emit('read', { roomId, seq });
    this.flushReads();
  }

  /**
   * Tell the client the marker the server already holds (`last_read_seq` from
   * `GET /api/rooms`), so that `markRead` sends only what moves it.
   * @param {number} roomId
   * @param {number} seq
   */
  noteRead(roomId, seq) {
    if (seq > (this.readSeqs.get(roomId) ?? -1)) this.readSeqs.set(roomId, seq);
  }

  /** The highest `seq` this user has read in the room, as far as this client knows. */
  readSeq(roomId) {
    return this.readSeqs.get(roomId) ?? null;
  }

  /** A fresh `client_msg_id`: unique per client, 64 printable ASCII characters at most. */
  nextId() {
    this.sequence += 1;
    return `${this.prefix}-${this.sequence}`;
  }

  /** Online users of a room, by id. @param {number} roomId @returns {User[]} */
  onlineUsers(roomId) {
    return [...(this.online.get(roomId)?.values() ?? [])].sort((a, b) => a.id - b.id);
  }

  /**
   * How many users are online in the room: the list's length, or in a large
   * room (whose list the server cut short) the count it gave at entry,
   * adjusted by the changes since.
   * @param {number} roomId
   */
  onlineCount(roomId) {
    const listed = this.online.get(roomId)?.size ?? 0;
    const base = this.counts.get(roomId);
    return base == null ? listed : Math.max(listed, base + listed - (this.listedAtEntry.get(roomId) ?? listed));
  }

  /** The highest `seq` delivered in a room (null if unknown). @param {number} roomId */
  lastSeq(roomId) {
    return this.rooms.get(roomId)?.lastSeq ?? null;
  }

  /** Close for good: no reconnect; pending sends reject with `closed`. */
  close() {
    if (this.state !== 'closed') this.setState('closed');
    this.stopTimers();
    if (typeof window !== 'undefined') {
      window.removeEventListener('online', this.onOnline);
      window.removeEventListener('offline', this.onOffline);
    }
    for (const [id, entry] of this.pending) {
      clearTimeout(entry.timer);
      entry.reject(new ChatError('closed', 'the client was closed', entry.roomId));
      this.pending.delete(id);
    }
    if (this.socket) this.socket.close(1000, 'bye');
    this.socket = null;
  }

  /**
   * Drop the socket as a network failure would (the client reconnects and
   * resumes as usual). For tests and for a "reconnect" button.
   */
  dropConnection() {
    this.dropSocket(4002, 'dropped by the application');
  }

  // --- Internals ------------------------------------------------------------

  async open() {
    if (this.socket || this.opening) return;
    const reconnecting = this.attempt > 0;
    if (typeof navigator !== 'undefined' && navigator.onLine === false) {
      this.setState('offline');
      return;
    }
    this.setState(reconnecting ? 'reconnecting' : 'connecting', { attempt: this.attempt });
    // Set until the socket exists, so that a second connect() meanwhile opens no second socket.
    this.opening = true;
    let token;
    try {
      token = typeof this.options.token === 'function' ? await this.options.token() : this.options.token;
    } catch {
      this.opening = false;
      this.scheduleReconnect();
      return;
    }
    this.opening = false;
    if (this.state === 'closed') return;
    const [first] = this.rooms.keys();
    const url = new URL(this.options.url ?? '/ws', globalThis.location?.href);
    if (url.protocol === 'http:') url.protocol = 'ws:';
    if (url.protocol === 'https:') url.protocol = 'wss:';
    url.searchParams.set('token', token);
    if (first !== undefined) {
      url.searchParams.set('room_id', String(first));
      const since = this.rooms.get(first).lastSeq;
      if (since !== null) url.searchParams.set('since_seq', String(since));
    }
    const Impl = this.options.WebSocket ?? WebSocket;
    const socket = new Impl(url.toString());
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.attempt = 0;
      for (const room of this.rooms.values()) room.entered = false;
      // The first room is entered by the handshake; the others by join_room.
      for (const roomId of this.rooms.keys()) if (roomId !== first) this.sendJoin(roomId);
      this.setState('connected');
      this.armHeartbeat();
    };
    socket.onmessage = (event) => this.receive(event.data);
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.stopTimers();
      for (const room of this.rooms.values()) room.entered = false;
      for (const entry of this.pending.values()) entry.sent = false;
      if (this.state === 'closed') return;
      // A socket the client dropped itself is never final, whatever code the browser reports.
      if (opened && socket !== this.dropped && FINAL_CLOSE_CODES.has(event.code)) {
        // 1000: the server ended the session as asked; 1008: kept flooding;
        // 4001: the account was deleted.
        this.setState('closed', { code: event.code });
        this.close();
      } else if (event.code === SERVICE_RESTART) {
        this.scheduleReconnect(Math.random() * 1000, event.code);
      } else {
        this.scheduleReconnect(undefined, event.code);
      }
    };
  }

  sendJoin(roomId) {
    const room = this.rooms.get(roomId);
    const frame = { type: 'join_room', room_id: roomId };
    if (room && room.lastSeq !== null) frame.since_seq = room.lastSeq;
    this.raw(frame);
  }

  /** Jittered exponential backoff: half the delay fixed, half random. */
  scheduleReconnect(delayMs, code) {
    this.attempt += 1;
    if (typeof navigator !== 'undefined' && navigator.onLine === false) {
      this.setState('offline', { code });
      return;
    }
    const { backoffBaseMs, backoffMaxMs } = this.options;
    const ceiling = Math.min(backoffMaxMs, backoffBaseMs * 2 ** (this.attempt - 1));
    const delay = delayMs ?? ceiling / 2 + Math.random() * (ceiling / 2);
    this.setState('reconnecting', { attempt: this.attempt, delayMs: Math.round(delay), code });
    this.timers.reconnect = setTimeout(() => {
      this.timers.reconnect = null;
      this.open();
    }, delay);
  }

  reconnectNow() {
    clearTimeout(this.timers.reconnect);
    this.timers.reconnect = null;
    if (this.state !== 'closed') this.open();
  }

  /** Ping after `heartbeatMs` of silence; no answer within the timeout: drop. */
  armHeartbeat() {
    clearTimeout(this.timers.heartbeat);
    clearTimeout(this.timers.pong);
    this.timers.pong = null;
    this.timers.heartbeat = setTimeout(() => {
      this.raw({ type: 'ping' });
      this.timers.pong = setTimeout(() => {
        this.dropSocket(4000, 'heartbeat timeout');
      }, this.options.heartbeatTimeoutMs);
    }, this.options.heartbeatMs);
  }

  /** Close the socket as a failure: the client reconnects (and resumes). */
  dropSocket(code, reason) {
    if (!this.socket) return;
    this.dropped = this.socket;
    this.socket.close(code, reason);
  }

  stopTimers() {
    for (const key of Object.keys(this.timers)) {
      clearTimeout(this.timers[key]);
      this.timers[key] = null;
    }
  }

  raw(frame) {
    if (this.socket && this.socket.readyState === 1) this.socket.send(JSON.stringify(frame));
  }

  transmit(entry) {
    if (entry.sent || !this.socket || this.socket.readyState !== 1) return;
    entry.sent = true;
    this.raw(entry.frame);
  }

  receive(text) {
    this.armHeartbeat();
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    const roomId = frame.room_id;
    const data = frame.data ?? {};
    switch (frame.type) {
      case 'message':
        return this.onMessage(roomId, data);
      case 'message_edited':
        return this.onChange(roomId, 'edited', { id: data.id, seq: data.seq, content: data.content, editedAt: data.edited_at });
      case 'message_deleted':
        return this.onChange(roomId, 'deleted', { id: data.id, seq: data.seq });
      case 'online_users':
        this.counts.set(roomId, data.online_count ?? null);
        return this.onEntered(roomId, data.users ?? []);
      case 'user_joined':
        return this.presenceChange(roomId, (map) => map.set(data.user.id, data.user), { type: 'joined', user: data.user });
      case 'user_left':
        return this.presenceChange(roomId, (map) => map.delete(data.user_id), { type: 'left', userId: data.user_id });
      case 'presence_batch': {
        // A large room: many changes at once, each user in their latest state.
        const joined = data.joined ?? [];
        const left = data.left ?? [];
        return this.presenceChange(roomId, (map) => {
          for (const id of left) map.delete(id);
          for (const user of joined) map.set(user.id, user);
        }, { type: 'batch', joined, left, truncated: Boolean(data.truncated) });
      }
      case 'left_room':
        this.rooms.delete(roomId);
        this.online.delete(roomId);
        return this.emit('left', { roomId, reason: data.reason });
      case 'read':
        if (data.seq > (this.readSeqs.get(roomId) ?? -1)) {
          this.readSeqs.set(roomId, data.seq);
          this.emit('read', { roomId, seq: data.seq });
        }
        return undefined;
      case 'typing':
        return this.rooms.get(roomId)?.entered ? this.emit('typing', { roomId, user: data.user }) : undefined;
      case 'recovery_partial':
        return this.emit('recovery', { roomId, sinceSeq: data.since_seq, resumedAtSeq: data.resumed_at_seq });
      case 'error':
        return this.onError(roomId, data);
      default:
        return undefined; // pong, and types a later protocol may add
    }
  }

  onMessage(roomId, message) {
    const entry = message.client_msg_id && this.pending.get(message.client_msg_id);
    if (entry) {
      clearTimeout(entry.timer);
      this.pending.delete(message.client_msg_id);
      entry.resolve(message);
    }
    if (this.inStream(roomId, message.seq)) this.emit('message', { roomId, message });
  }

  /** An edit or a deletion: a place in the room's stream like a message, so the same cursor. */
  onChange(roomId, type, change) {
    if (this.inStream(roomId, change.seq)) this.emit(type, { roomId, ...change });
  }

  /**
   * Whether an item of a room's ordered stream (a message, an edit, a
   * deletion: each holds its own `seq`) is new, moving the room's cursor
   * past it if so. Exactly once: anything at or below the last delivered
   * seq was seen already (a resume replays everything after `since_seq`: an
   * edit that had not moved the cursor would come again).
   */
  inStream(roomId, seq) {
    const room = this.rooms.get(roomId);
    if (!room) return false;
    if (room.lastSeq !== null && seq <= room.lastSeq) return false;
    room.lastSeq = seq;
    return true;
  }

  onEntered(roomId, users) {
    const room = this.rooms.get(roomId);
    if (!room) {
      // Entered a room the app did not ask for (the handshake's default room 1).
      this.raw({ type: 'leave_room', room_id: roomId });
      return;
    }
    room.entered = true;
    this.online.set(roomId, new Map(users.map((u) => [u.id, u])));
    this.listedAtEntry.set(roomId, users.length);
    this.emit('joined', { roomId });
    this.emit('presence', { roomId, users: this.onlineUsers(roomId), change: { type: 'online' } });
    for (const entry of this.pending.values()) if (entry.roomId === roomId) this.transmit(entry);
    this.flushReads();
  }

  /** Send the moved markers of entered rooms, at most once per `READ_INTERVAL_MS`. */
  flushReads() {
    if (this.timers.reads) return;
    const wait = this.lastReadSentAt + READ_INTERVAL_MS - Date.now();
    if (wait > 0) {
      this.timers.reads = setTimeout(() => {
        this.timers.reads = null;
        this.flushReads();
      }, wait);
      return;
    }
    let sent = false;
    for (const roomId of [...this.unsentReads]) {
      if (!this.rooms.get(roomId)?.entered || !this.socket || this.socket.readyState !== 1) continue;
      this.raw({ type: 'read', room_id: roomId, seq: this.readSeqs.get(roomId) });
      this.unsentReads.delete(roomId);
      sent = true;
    }
    if (sent) this.lastReadSentAt = Date.now();
  }

  presenceChange(roomId, apply, change) {
    const map = this.online.get(roomId);
    if (!map) return;
    apply(map);
    this.emit('presence', { roomId, users: this.onlineUsers(roomId), change });
  }

  onError(roomId, data) {
    const error = new ChatError(data.code, data.message, roomId);
    const entry = data.ref && this.pending.get(data.ref);
    if (entry) {
      // `unavailable`: the frame was not carried out; retry with the same id.
      if (data.code === 'unavailable') {
        entry.sent = false;
        setTimeout(() => this.rooms.get(entry.roomId)?.entered && this.transmit(entry), 1000);
        return;
      }
      clearTimeout(entry.timer);
      this.pending.delete(data.ref);
      entry.reject(error);
      return;
    }
    if (roomId !== undefined && this.rooms.has(roomId) && !this.rooms.get(roomId).entered &&
        ['forbidden', 'room_not_found', 'too_many_rooms'].includes(data.code)) {
      this.rooms.delete(roomId);
    }
    this.emit('error', { error });
  }

  /** A promise for the next `ok` event of a room, or the next `fail` event about it. */
  waitFor(ok, fail, roomId) {
    return new Promise((resolve, reject) => {
      const onOk = (e) => {
        if (e.detail.roomId !== roomId) return;
        cleanup();
        resolve();
      };
      const onFail = (e) => {
        if (e.detail.error.roomId !== roomId) return;
        cleanup();
        reject(e.detail.error);
      };
      const cleanup = () => {
        this.removeEventListener(ok, onOk);
        this.removeEventListener(fail, onFail);
      };
      this.addEventListener(ok, onOk);
      this.addEventListener(fail, onFail);
    });
  }

  setState(state, extra = {}) {
    if (this.state === 'closed' && state !== 'closed') return;
    this.state = state;
    this.emit('state', { state, ...extra });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

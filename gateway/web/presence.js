// Who is online and who is typing in the open room, and the connection
// badge: the online list (with a direct-message button per other user), the
// "joined"/"left" note, "Alice is typing…" (and how long it stays), and the
// connection state in words. app.js owns the rooms and the live client and
// passes what this needs in a context. User data only goes into the DOM
// through textContent.

const $ = (id) => document.getElementById(id);
/** How long "X is typing…" stays after the last `typing` (they come every 2 s while typing). */
const TYPING_SHOWN_MS = 4000;

const CONNECTION_TEXT = {
  idle: 'Not connected',
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  offline: 'Offline: waiting for the network',
  closed: 'Disconnected',
};

/** The connection badge (`#conn`): the client's state in words. */
export function showConnection(state, detail = {}) {
  const conn = $('conn');
  conn.dataset.state = state;
  let text = CONNECTION_TEXT[state] ?? state;
  if (state === 'reconnecting' && detail.delayMs !== undefined) {
    text = `Reconnecting in ${Math.ceil(detail.delayMs / 1000)} s…`;
  }
  conn.textContent = text;
}

/**
 * The open room's online list and who is typing there.
 * @param {{me: () => {id: number}|undefined, active: () => number|null,
 *   people: Map<number, object>, onlineCount: (roomId: number) => number|undefined,
 *   openDm: (user: object) => void}} ctx
 *   `people`: users seen, by id (this adds those it sees, and names who left from it).
 * @returns {{onPresence: (detail: object) => void, onTyping: (roomId: number, user: object) => void,
 *   stoppedTyping: (roomId: number, userId: number) => void, renderTyping: () => void,
 *   renderOnline: (users: object[], total?: number) => void}}
 */
export function createPresence(ctx) {
  const { people } = ctx;
  /** Who is typing where: roomId → (userId → {user, until}). */
  const typists = new Map();

  function onPresence({ roomId, users, change }) {
    for (const u of users) people.set(u.id, u);
    if (roomId !== ctx.active()) return;
    renderOnline(users, ctx.onlineCount(roomId) ?? users.length);
    if (change.type === 'joined') $('presence-note').textContent = `${change.user.nickname} joined`;
    if (change.type === 'left') {
      const who = people.get(change.userId);
      $('presence-note').textContent = `${who?.nickname ?? 'Someone'} left`;
    }
  }

  function onTyping(roomId, user) {
    people.set(user.id, user);
    if (!typists.has(roomId)) typists.set(roomId, new Map());
    typists.get(roomId).set(user.id, { user, until: Date.now() + TYPING_SHOWN_MS });
    if (roomId === ctx.active()) renderTyping();
    setTimeout(() => roomId === ctx.active() && renderTyping(), TYPING_SHOWN_MS + 50);
  }

  /** They sent what they were typing: no longer shown as typing. */
  function stoppedTyping(roomId, userId) {
    if (typists.get(roomId)?.delete(userId) && roomId === ctx.active()) renderTyping();
  }

  /** "Alice is typing…" for the open room, from the indications not yet stale. */
  function renderTyping() {
    const now = Date.now();
    const here = typists.get(ctx.active());
    for (const [id, t] of here ?? []) if (t.until <= now) here.delete(id);
    const names = [...(here?.values() ?? [])].map((t) => t.user.nickname);
    let text = '';
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = 'Several people are typing…';
    $('typing').textContent = text;
  }

  function renderOnline(users, total = users.length) {
    const list = $('online');
    list.replaceChildren(...users.map((u) => {
      const li = document.createElement('li');
      li.textContent = u.nickname;
      li.title = `@${u.username}`;
      li.dataset.user = String(u.id);
      const me = ctx.me();
      if (me && u.id !== me.id) {
        const dm = document.createElement('button');
        dm.type = 'button';
        dm.className = 'dm secondary';
        dm.textContent = '✉';
        dm.title = `Message ${u.nickname}`;
        dm.setAttribute('aria-label', `Message ${u.nickname}`);
        dm.addEventListener('click', () => ctx.openDm(u));
        li.append(' ', dm);
      }
      return li;
    }));
    // A large room lists only part of its users: the count is the server's.
    $('online-count').textContent = `(${Math.max(total, users.length)})`;
  }

  return { onPresence, onTyping, stoppedTyping, renderTyping, renderOnline };
}

// A message on the chat page, and editing and deleting it: the message's
// element (author, time, "(edited)", a tombstone once deleted), its Edit and
// Delete buttons, the inline edit form (and the draft, kept across
// re-renders), the PATCH and DELETE calls, and a change (from them or from
// the live stream) stored and drawn again in place. app.js owns the rooms,
// the views and the unread badges and passes what this needs in a context.
// User data only goes into the DOM through textContent.

const $ = (id) => document.getElementById(id);

/**
 * The messages of the page, drawn with their edit and delete actions.
 * @param {{me: () => {id: number}|undefined, roleIn: (roomId: number) => string|undefined,
 *   active: () => number|null, views: Map<number, {messages: Map<number, object>}>,
 *   viewOf: (roomId: number) => {messages: Map<number, object>},
 *   api: (method: string, path: string, body?: object) => Promise<any>,
 *   errorText: (err: Error) => string,
 *   onDeleted: (roomId: number, view: object, m: object) => void}} ctx
 *   `onDeleted`: a stored message became a tombstone (it may have counted as unread).
 * @returns {{element: (m: object) => HTMLLIElement,
 *   applyChange: (roomId: number, id: number, change: object) => void,
 *   forgetEdit: () => void}}
 */
export function createMessages(ctx) {
  const { views, viewOf, api, errorText } = ctx;
  /** The message being edited, with what was typed so far (kept across re-renders). */
  let editing = null;

  function messageElement(m) {
    const li = document.createElement('li');
    li.className = 'msg';
    if (m.user_id === ctx.me()?.id) li.classList.add('mine');
    if (m.seq !== undefined) li.dataset.seq = String(m.seq);
    // Edits and deletions name the message by id: this finds it on screen.
    if (m.id !== undefined) li.dataset.id = String(m.id);
    const header = document.createElement('header');
    const author = document.createElement('span');
    author.className = 'author';
    author.textContent = m.user?.nickname ?? m.user?.username ?? `user ${m.user_id}`;
    const time = document.createElement('time');
    const when = m.created_at ? new Date(m.created_at) : new Date();
    time.dateTime = when.toISOString();
    time.textContent = when.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    header.append(author, time);
    if (m.edited_at && !m.deleted) header.append(editedMark(m.edited_at));
    if (m.deleted) {
      li.classList.add('deleted');
      const tombstone = document.createElement('p');
      tombstone.className = 'content tombstone';
      tombstone.textContent = 'message deleted';
      li.append(header, tombstone);
      return li;
    }
    const actions = m.id === undefined ? null : messageActions(m);
    if (actions?.childElementCount) header.append(actions);
    if (editing && editing.id === m.id && editing.roomId === m.room_id) {
      li.append(header, editForm(m));
      return li;
    }
    const content = document.createElement('p');
    content.className = 'content';
    // Direction controls in the text stay in it (isolated by the CSS), so
    // they cannot reorder the author, the time or the next message.
    content.dir = 'auto';
    content.textContent = m.content;
    li.append(header, content);
    return li;
  }

  /** "(edited)", with when as its title. */
  function editedMark(editedAt) {
    const mark = document.createElement('time');
    mark.className = 'edited';
    const when = new Date(editedAt);
    mark.dateTime = when.toISOString();
    mark.title = `Edited ${when.toLocaleString()}`;
    mark.textContent = '(edited)';
    return mark;
  }

  /**
   * Edit (the user's own messages) and Delete (those, and everyone's for the
   * room's owner and admins: the server decides, the buttons only follow it).
   */
  function messageActions(m) {
    const actions = document.createElement('span');
    actions.className = 'actions';
    const mine = m.user_id === ctx.me()?.id;
    const role = ctx.roleIn(m.room_id);
    const moderator = role === 'owner' || role === 'admin';
    // The accessible name says which message: a list of "Edit" buttons would not.
    const snippet = m.content.length > 40 ? `${m.content.slice(0, 40)}…` : m.content;
    const whose = mine ? 'your message' : `${m.user?.nickname ?? 'their'}'s message`;
    if (mine && !(editing && editing.id === m.id)) {
      actions.append(actionButton('Edit', `Edit ${whose}: ${snippet}`, 'edit', () => startEdit(m)));
    }
    if (mine || moderator) {
      actions.append(actionButton('Delete', `Delete ${whose}: ${snippet}`, 'delete', () => deleteMessage(m)));
    }
    return actions;
  }

  function actionButton(text, label, className, onClick) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = `secondary ${className}`;
    button.textContent = text;
    button.setAttribute('aria-label', label);
    button.addEventListener('click', onClick);
    return button;
  }

  /** The stored message `id` of a view (null when not loaded: older history comes as it is now). */
  function findMessage(view, id) {
    for (const m of view.messages.values()) if (m.id === id) return m;
    return null;
  }

  /** The message's element in the open room, if shown. */
  function shownMessage(id) {
    return $('messages').querySelector(`li[data-id="${Number(id)}"]`);
  }

  /** Draw a stored message again where it is (after an edit, a deletion, or leaving the edit form). */
  function redraw(m) {
    if (m.room_id !== ctx.active()) return null;
    const old = shownMessage(m.id);
    if (!old) return null;
    const element = messageElement(m);
    old.replaceWith(element);
    return element;
  }

  /**
   * Store a message's new state (`{content, edited_at}` or `{deleted, content}`)
   * and show it. From the live stream, and from the answer to this page's own
   * PATCH or DELETE (which may come after a later edit's event: older edits lose).
   */
  function applyChange(roomId, id, change) {
    const view = views.get(roomId);
    const m = view && findMessage(view, id);
    // A tombstone stays one (an edit replayed after a deletion carries no content).
    if (!m || m.deleted) return;
    if (change.edited_at && m.edited_at && Date.parse(change.edited_at) < Date.parse(m.edited_at)) return;
    const next = { ...m, ...change };
    view.messages.set(m.seq, next);
    if (change.deleted) {
      // It may have counted as unread: the badge is app.js's.
      ctx.onDeleted(roomId, view, m);
      if (editing && editing.id === id) editing = null;
    } else if (editing && editing.id === id) {
      // Edited elsewhere while being edited here: the draft stays (saving wins);
      // the new content shows if the edit is cancelled.
      return;
    }
    const focused = shownMessage(id)?.contains(document.activeElement);
    const element = redraw(next);
    // The button that had the focus is gone with the old element: keep the focus near.
    if (focused && element) (element.querySelector('button') ?? $('scroller')).focus();
  }

  function startEdit(m) {
    editing = { roomId: m.room_id, id: m.id, draft: m.content };
    const element = redraw(m);
    const box = element?.querySelector('textarea');
    if (!box) return;
    // The form is taller than the message: its Save button may be below the fold.
    element.scrollIntoView({ block: 'nearest' });
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  }

  /** Leave the edit form; the focus goes back to the message's Edit button. */
  function stopEdit(m) {
    editing = null;
    const current = findMessage(viewOf(m.room_id), m.id) ?? m;
    redraw(current)?.querySelector('button.edit')?.focus();
  }

  /** The inline edit form: Enter (or Save) saves, Shift+Enter is a new line, Escape cancels. */
  function editForm(m) {
    const form = document.createElement('form');
    form.className = 'edit-form';
    const id = `edit-${m.id}`;
    const label = document.createElement('label');
    label.className = 'sr-only';
    label.htmlFor = id;
    label.textContent = 'Edit your message';
    const box = document.createElement('textarea');
    box.id = id;
    box.rows = 2;
    box.dir = 'auto';
    box.value = editing.draft;
    box.addEventListener('input', () => { if (editing) editing.draft = box.value; });
    box.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.preventDefault();
        stopEdit(m);
      } else if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    const save = document.createElement('button');
    save.type = 'submit';
    save.textContent = 'Save';
    const cancel = document.createElement('button');
    cancel.type = 'button';
    cancel.className = 'secondary';
    cancel.textContent = 'Cancel';
    cancel.addEventListener('click', () => stopEdit(m));
    const buttons = document.createElement('div');
    buttons.className = 'edit-buttons';
    buttons.append(save, cancel);
    const error = document.createElement('p');
    error.className = 'error';
    error.setAttribute('role', 'alert');
    form.append(label, box, buttons, error);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      saveEdit(m, box.value, error, save);
    });
    return form;
  }

  async function saveEdit(m, content, error, save) {
    error.textContent = '';
    if (!content.trim()) {
      error.textContent = 'Write something, or delete the message instead.';
      return;
    }
    const current = findMessage(viewOf(m.room_id), m.id) ?? m;
    if (content === current.content) {
      stopEdit(m);
      return;
    }
    save.disabled = true;
    try {
      const updated = await api('PATCH', `/api/rooms/${m.room_id}/messages/${m.id}`, { content });
      editing = null;
      applyChange(m.room_id, m.id, { content: updated.content, edited_at: updated.edited_at });
      stopEdit(m);
    } catch (err) {
      save.disabled = false;
      error.textContent = changeErrorText(err, 'edit');
    }
  }

  async function deleteMessage(m) {
    const mine = m.user_id === ctx.me().id;
    const question = mine
      ? 'Delete your message? The room will show that a message was deleted.'
      : `Delete this message by ${m.user?.nickname ?? 'another user'}? The room will show that a message was deleted.`;
    if (!window.confirm(question)) return;
    $('composer-error').textContent = '';
    try {
      await api('DELETE', `/api/rooms/${m.room_id}/messages/${m.id}`);
      // At once; the live `deleted` event that follows finds a tombstone and changes nothing.
      applyChange(m.room_id, m.id, { deleted: true, content: '' });
    } catch (err) {
      if (m.room_id === ctx.active()) $('composer-error').textContent = changeErrorText(err, 'delete');
    }
  }

  /**
   * Readable text for a refused edit or deletion: there `forbidden` is about
   * the message, not the room (as in app.js's FRIENDLY), and 404 means it is gone.
   * @param {Error & {code?: string, status?: number}} err
   * @param {'edit'|'delete'} action
   */
  function changeErrorText(err, action) {
    if (err.code === 'forbidden') {
      return action === 'edit'
        ? 'Only its author can edit a message.'
        : 'Only its author, or the room\'s owner and admins, can delete a message.';
    }
    if (err.code === 'edit_window_passed') return 'This message is too old to be edited now.';
    if (err.status === 404) return 'This message does not exist any more: it was deleted.';
    return errorText(err);
  }

  return { element: messageElement, applyChange, forgetEdit: () => { editing = null; } };
}

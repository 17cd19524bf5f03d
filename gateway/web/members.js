// The members panel of the chat page: who is in the open room, and for its
// owner and admins the Ban and Lift buttons. User data only goes into the DOM
// through textContent.

const $ = (id) => document.getElementById(id);

/**
 * Show the room's members in `#members`; to its owner and admins, a Ban
 * button per member they may ban, and the bans in force with a Lift button.
 * @param {{roomId: number, myRole: string|undefined, me: number,
 *   api: (method: string, path: string, body?: object) => Promise<any>,
 *   errorText: (err: Error) => string, stillShown: () => boolean}} ctx
 */
export async function showMembers(ctx) {
  const { roomId, myRole, me, api, errorText, stillShown } = ctx;
  const list = $('members');
  const bans = $('bans');
  $('members-error').textContent = '';
  const moderator = myRole === 'owner' || myRole === 'admin';
  try {
    const { members } = await api('GET', `/api/rooms/${roomId}/members`);
    if (!stillShown()) return;
    list.replaceChildren(...members.map((m) => {
      const li = document.createElement('li');
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = m.user.nickname;
      who.title = `@${m.user.username}`;
      const role = document.createElement('span');
      role.className = 'hint';
      role.textContent = m.role === 'member' ? '' : ` ${m.role}`;
      li.append(who, role);
      const bannable = m.role === 'member' || (m.role === 'admin' && myRole === 'owner');
      if (moderator && bannable && m.user.id !== me) {
        const ban = document.createElement('button');
        ban.type = 'button';
        ban.className = 'secondary ban';
        ban.textContent = 'Ban';
        ban.setAttribute('aria-label', `Ban ${m.user.nickname}`);
        ban.addEventListener('click', () => banUser(ctx, m.user));
        li.append(ban);
      }
      return li;
    }));
    bans.replaceChildren();
    $('bans-title').hidden = !moderator;
    if (!moderator) return;
    const { bans: inForce } = await api('GET', `/api/rooms/${roomId}/bans`);
    bans.replaceChildren(...inForce.map((b) => {
      const li = document.createElement('li');
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = b.user.nickname || `user ${b.user.id}`;
      const until = document.createElement('span');
      until.className = 'hint';
      until.textContent = b.expires_at ? ` until ${new Date(b.expires_at).toLocaleString()}` : ' for good';
      const lift = document.createElement('button');
      lift.type = 'button';
      lift.className = 'secondary';
      lift.textContent = 'Lift';
      lift.setAttribute('aria-label', `Lift the ban of ${b.user.nickname}`);
      lift.addEventListener('click', async () => {
        try {
          await api('DELETE', `/api/rooms/${roomId}/bans/${b.user.id}`);
          await showMembers(ctx);
        } catch (err) {
          $('members-error').textContent = errorText(err);
        }
      });
      li.append(who, until, lift);
      return li;
    }));
  } catch (err) {
    $('members-error').textContent = errorText(err);
  }
}

async function banUser(ctx, user) {
  const { roomId, api, errorText } = ctx;
  if (!window.confirm(`Ban ${user.nickname} from this room? They leave it now and cannot come back until the ban is lifted.`)) return;
  try {
    await api('POST', `/api/rooms/${roomId}/bans`, { user_id: user.id });
    await showMembers(ctx);
  } catch (err) {
    $('members-error').textContent = errorText(err);
  }
}

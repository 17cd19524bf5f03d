// The chat page in a real browser (Debian's Chromium, driven by playwright-core)
// against the local cluster of scripts/cluster.sh. Run by scripts/browser-test.sh:
//
//   node gateway/web/tests/browser.mjs CLUSTER_ENV ARTIFACTS_DIR
//
// PLAYWRIGHT_CORE_DIR names the directory whose node_modules holds playwright-core;
// CHROMIUM the browser (default /usr/bin/chromium).
//
// Alice's page is served by node A (and its WebSocket goes to node A), Bob's by
// node B. They register, meet in a new room, chat both ways, Alice edits one
// of her messages and deletes another and Bob sees both, Bob sees Alice
// typing, Bob opens a direct message with Alice, a message full of HTML stays
// text, Alice goes offline while Bob writes and comes back with every
// message exactly once (and her own message written while offline delivered
// once), an unread badge read on another device clears, scrolling back loads
// older pages (edited and deleted messages show so from the history too),
// Bob logs in through HAProxy, and the online lists follow joins
// and leaves.
// Screenshots go to ARTIFACTS_DIR.

import { createRequire } from 'node:module';
import { readFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';

const [envFile, artifacts = 'target/artifacts'] = process.argv.slice(2);
if (!envFile) {
  console.error('usage: node browser.mjs CLUSTER_ENV [ARTIFACTS_DIR]');
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(process.env.PLAYWRIGHT_CORE_DIR ?? '.'), 'index.js'));
const { chromium } = require('playwright-core');

const env = Object.fromEntries(
  readFileSync(envFile, 'utf8')
    .split('\n')
    .map((line) => line.match(/^([A-Z_]+)="(.*)"$/))
    .filter(Boolean)
    .map((m) => [m[1], m[2]]),
);
mkdirSync(artifacts, { recursive: true });

const started = Date.now();
const log = (msg) => console.log(`  [${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${msg}`);
const WAIT = 10_000;
const suffix = Date.now().toString(36).slice(-6);
const password = 'password-123';
const roomName = `browser-${suffix}`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});

/** Problems the pages report: script errors and CSP violations fail the test. */
const problems = [];
function watch(page, name) {
  page.on('pageerror', (err) => problems.push(`${name}: page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content Security Policy|Uncaught/.test(msg.text())) {
      problems.push(`${name}: ${msg.text()}`);
    }
  });
}

async function openPage(context, url, name) {
  const page = await context.newPage();
  watch(page, name);
  const res = await page.goto(url);
  assert.equal(res.status(), 200, `${name}: GET ${url}`);
  assert.match(res.headers()['content-security-policy'] ?? '', /script-src 'self'/);
  return page;
}

async function signIn(page, action, username, nickname) {
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  if (nickname) await page.getByLabel(/Nickname/).fill(nickname);
  await page.getByRole('button', { name: action === 'register' ? 'Register' : 'Log in' }).click();
  await page.locator('#conn[data-state="connected"]').waitFor({ timeout: WAIT });
}

/** The open room's stored messages, in page order: [{seq, text}]. */
function messages(page) {
  return page.$$eval('#messages li[data-seq]', (items) =>
    items.map((li) => ({ seq: Number(li.dataset.seq), text: li.querySelector('.content').textContent })));
}

async function say(page, text) {
  const box = page.getByLabel('Message', { exact: true });
  await box.fill(text);
  await box.press('Enter');
}

/** Wait until the open room shows a stored message with exactly this text. */
async function seen(page, text) {
  await page.waitForFunction(
    (t) => [...document.querySelectorAll('#messages li[data-seq] .content')].some((p) => p.textContent === t),
    text,
    { timeout: WAIT },
  );
}

/** The seqs the room's edits and deletions hold: no message has them. */
const changeSeqs = new Set();

function assertExactlyOnceInOrder(list, who) {
  const seqs = list.map((m) => m.seq);
  for (let i = 1; i < seqs.length; i += 1) {
    let next = seqs[i - 1] + 1;
    while (changeSeqs.has(next)) next += 1;
    assert.equal(seqs[i], next, `${who}: seqs not consecutive at ${i} (but for edits and deletions ${[...changeSeqs]}): ${seqs.join(',')}`);
  }
}

/** The open room's message with this text (its <li>). */
function messageItem(page, text) {
  return page.locator('#messages li[data-id]', { has: page.locator('.content', { hasText: text }) });
}

let failed = false;
try {
  const alice = await browser.newContext({ viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true });
  const bob = await browser.newContext({ viewport: { width: 1180, height: 720 } });

  // --- Register on two different nodes, meet in a new room -------------------------
  const pageA = await openPage(alice, `${env.NODE_A_URL}/`, 'alice@A');
  await signIn(pageA, 'register', `alice_${suffix}`, 'Alice');
  log(`Alice registered on node A (${env.NODE_A_URL}), connected`);

  await pageA.locator('summary', { hasText: 'New room' }).click();
  await pageA.getByLabel('Room name').fill(roomName);
  await pageA.getByRole('button', { name: 'Create' }).click();
  await pageA.locator('#room-title', { hasText: roomName }).waitFor({ timeout: WAIT });
  log(`Alice created room ${roomName}`);

  const pageB = await openPage(bob, `${env.NODE_B_URL}/`, 'bob@B');
  await signIn(pageB, 'register', `bob_${suffix}`, 'Bob');
  await pageB.locator('summary', { hasText: 'Public rooms' }).click();
  await pageB.getByRole('button', { name: `Join ${roomName}` }).click();
  await pageB.locator('#room-title', { hasText: roomName }).waitFor({ timeout: WAIT });
  log(`Bob registered on node B (${env.NODE_B_URL}) and joined the room`);

  // Presence: Alice sees Bob arrive (user_joined across nodes).
  await pageA.locator('#online li', { hasText: 'Bob' }).waitFor({ timeout: WAIT });
  await pageB.locator('#online li', { hasText: 'Alice' }).waitFor({ timeout: WAIT });
  log('each sees the other in the online list');

  // --- Chat both ways ---------------------------------------------------------------
  await say(pageA, 'Hi Bob, this is Alice on node A');
  await seen(pageB, 'Hi Bob, this is Alice on node A');
  await say(pageB, 'Hello Alice! Bob here, on node B. Grüße');
  await seen(pageA, 'Hello Alice! Bob here, on node B. Grüße');
  log('chatted both ways across nodes A and B');

  // --- Edit and delete: Alice changes her messages on node A, Bob sees it on node B -----------
  await pageB.evaluate(() => {
    window.__changes = [];
    for (const type of ['edited', 'deleted']) {
      window.chatApp.client.addEventListener(type, (e) => window.__changes.push({ type, ...e.detail }));
    }
  });
  await say(pageA, 'See you at 5 pm');
  await seen(pageB, 'See you at 5 pm');
  assert.equal(await messageItem(pageB, 'See you at 5 pm').getByRole('button').count(), 0,
    'Bob (a member) may neither edit nor delete Alice\'s message');
  const bobsOnA = messageItem(pageA, 'Hello Alice! Bob here');
  assert.equal(await bobsOnA.getByRole('button', { name: /^Delete Bob's message/ }).count(), 1, 'the owner may delete Bob\'s message');
  assert.equal(await bobsOnA.getByRole('button', { name: /^Edit/ }).count(), 0, 'nobody edits another\'s message');
  await messageItem(pageA, 'See you at 5 pm').getByRole('button', { name: /^Edit your message/ }).click();
  const editBox = pageA.getByRole('textbox', { name: 'Edit your message' });
  await editBox.fill('  ');
  await editBox.press('Enter');
  await pageA.locator('#messages form.edit-form .error', { hasText: 'Write something' }).waitFor({ timeout: WAIT });
  await editBox.fill('See you at 6 pm');
  await editBox.press('Enter');
  await seen(pageB, 'See you at 6 pm');
  const editedOnB = messageItem(pageB, 'See you at 6 pm').locator('.edited');
  await editedOnB.waitFor({ timeout: WAIT });
  assert.equal(await editedOnB.textContent(), '(edited)');
  assert.match(await editedOnB.getAttribute('title'), /^Edited /);
  await messageItem(pageA, 'See you at 6 pm').locator('.edited').waitFor({ timeout: WAIT });
  assert.equal(await pageB.locator('#messages .content', { hasText: 'See you at 5 pm' }).count(), 0);

  await say(pageA, 'oops, wrong room');
  await seen(pageB, 'oops, wrong room');
  const oops = await messageItem(pageA, 'oops, wrong room').getAttribute('data-id');
  pageA.once('dialog', (dialog) => dialog.accept());
  await messageItem(pageA, 'oops, wrong room').getByRole('button', { name: /^Delete your message/ }).click();
  await pageB.locator(`#messages li[data-id="${oops}"].deleted .tombstone`, { hasText: 'message deleted' }).waitFor({ timeout: WAIT });
  await pageA.locator(`#messages li[data-id="${oops}"].deleted`).waitFor({ timeout: WAIT });
  assert.equal(await pageB.locator('#messages .content', { hasText: 'oops' }).count(), 0, 'the deleted text is gone');
  const changes = await pageB.evaluate(() => window.__changes);
  assert.deepEqual(changes.map((c) => c.type), ['edited', 'deleted'], JSON.stringify(changes));
  for (const c of changes) changeSeqs.add(c.seq);
  log(`Alice edited a message on node A: Bob on node B saw the new text with "(edited)"; she deleted another: Bob saw the tombstone (event seqs ${[...changeSeqs].join(', ')})`);

  // --- Typing: Bob sees it across nodes, Alice does not see her own -------------------------
  // Alice's last typing went with her message above: one interval later the
  // next one is relayed (client and server send one per 2 s).
  await new Promise((resolve) => setTimeout(resolve, 2100));
  await pageA.getByLabel('Message', { exact: true }).pressSequentially('Are you th', { delay: 20 });
  await pageB.locator('#typing', { hasText: 'Alice is typing…' }).waitFor({ timeout: WAIT });
  assert.equal(await pageA.locator('#typing').textContent(), '', 'Alice sees her own typing');
  await pageA.getByLabel('Message', { exact: true }).pressSequentially('ere?');
  await pageA.getByLabel('Message', { exact: true }).press('Enter');
  await seen(pageB, 'Are you there?');
  await pageB.waitForFunction(() => document.querySelector('#typing').textContent === '', null, { timeout: WAIT });
  log('Bob saw "Alice is typing…" while she typed; it went when her message arrived');

  // --- A direct message: Bob opens it from the online list --------------------------------------
  await pageB.getByRole('button', { name: 'Message Alice' }).click();
  const dmLabel = `@ alice_${suffix}`;
  await pageB.locator('#room-title', { hasText: dmLabel }).waitFor({ timeout: WAIT });
  // Alice's page looks for new rooms every 20 s; the test asks at once.
  await pageA.evaluate(() => window.chatApp.enterNewRooms());
  await pageA.locator('#my-rooms button', { hasText: `@ bob_${suffix}` }).click();
  // Alice answers (Bob's send budget, 5/s here, is kept for what follows).
  await say(pageA, 'psst, just you and me');
  await seen(pageB, 'psst, just you and me');
  await pageA.locator('#my-rooms button', { hasText: roomName }).click();
  await pageB.locator('#my-rooms button', { hasText: roomName }).click();
  await pageA.locator('#room-title', { hasText: roomName }).waitFor({ timeout: WAIT });
  await pageB.locator('#room-title', { hasText: roomName }).waitFor({ timeout: WAIT });
  log(`Bob opened a direct message with Alice from the online list ("${dmLabel}"); she answered there`);

  // --- HTML and script are text ---------------------------------------------------------
  const hostile = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2"><b>not bold</b>';
  await say(pageB, hostile);
  await seen(pageA, hostile);
  const rendered = await pageA.evaluate(() => ({
    xss: window.__xss,
    tags: document.querySelectorAll('#messages script, #messages img, #messages b').length,
  }));
  assert.equal(rendered.xss, undefined, 'the hostile message ran');
  assert.equal(rendered.tags, 0, 'the hostile message made elements');
  log('a message with <script> and <img onerror> renders as text, runs nothing');

  // --- Readable errors ----------------------------------------------------------------------
  await say(pageA, 'x'.repeat(2001));
  await pageA.locator('#composer-error', { hasText: 'too long' }).waitFor({ timeout: WAIT });
  await pageA.locator('#messages li.failed').waitFor({ timeout: WAIT });
  log(`too long: "${await pageA.locator('#composer-error').textContent()}"`);

  // --- Offline and back: everything exactly once --------------------------------------------
  await pageA.evaluate(() => {
    window.__states = [];
    window.chatApp.client.addEventListener('state', (e) => window.__states.push(e.detail));
  });
  await alice.setOffline(true);
  await pageA.locator('#conn[data-state="offline"]').waitFor({ timeout: WAIT })
    .catch(async (err) => { console.error(await pageA.evaluate(() => JSON.stringify(window.__states))); throw err; });
  log('Alice is offline (the page shows it)');
  await say(pageA, 'written by Alice while offline');
  await pageA.locator('#messages li.pending').waitFor({ timeout: WAIT });
  for (let i = 1; i <= 5; i += 1) {
    await say(pageB, `while you were away ${i}`);
    await seen(pageB, `while you were away ${i}`);
  }
  log('Bob sent 5 messages meanwhile; Alice\'s own message waits (pending)');
  await alice.setOffline(false);
  await pageA.locator('#conn[data-state="connected"]').waitFor({ timeout: WAIT });
  await seen(pageA, 'while you were away 5');
  await seen(pageA, 'written by Alice while offline');
  await seen(pageB, 'written by Alice while offline');
  await pageA.waitForFunction(() => !document.querySelector('#messages li.pending'), null, { timeout: WAIT });
  for (const [page, who] of [[pageA, 'Alice'], [pageB, 'Bob']]) {
    const list = await messages(page);
    assertExactlyOnceInOrder(list, who);
    const texts = list.map((m) => m.text);
    for (const t of [...[1, 2, 3, 4, 5].map((i) => `while you were away ${i}`), 'written by Alice while offline', hostile]) {
      assert.equal(texts.filter((x) => x === t).length, 1, `${who}: "${t}" not exactly once`);
    }
  }
  log('Alice is back: all 5 missed messages exactly once, in seq order; her queued message delivered once');

  // --- Screenshots -------------------------------------------------------------------------------
  await pageB.screenshot({ path: path.join(artifacts, 'chat-page.png') });
  await pageA.screenshot({ path: path.join(artifacts, 'chat-page-phone.png') });
  const overflow = await pageA.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow} px wider than a 375 px screen`);
  log(`screenshots in ${artifacts}/ (chat-page.png, chat-page-phone.png); no horizontal scroll at 375 px`);

  // --- Several rooms: the other room counts unread messages ---------------------------------------
  await pageA.locator('#my-rooms button', { hasText: 'general' }).click();
  await pageA.locator('#room-title', { hasText: 'general' }).waitFor({ timeout: WAIT });
  await say(pageB, 'while Alice looks at general');
  await seen(pageB, 'while Alice looks at general');
  await pageA.locator('#my-rooms button', { hasText: roomName }).locator('.badge', { hasText: '1' }).waitFor({ timeout: WAIT });
  await pageA.locator('#my-rooms button', { hasText: roomName }).click();
  await seen(pageA, 'while Alice looks at general');
  assert.equal(await pageA.locator('#my-rooms .badge').count(), 0, 'the unread badge stays after opening the room');
  log('Alice switched to general and back: an unread badge, then the message');

  // --- A badge read on another device clears here -----------------------------------------------
  await pageA.locator('#my-rooms button', { hasText: 'general' }).click();
  await pageA.locator('#room-title', { hasText: 'general' }).waitFor({ timeout: WAIT });
  // Bob's send budget (5/s, bursts of 8 here) is about spent: let it refill.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  await say(pageB, 'unread one');
  await say(pageB, 'unread two');
  await seen(pageB, 'unread two');
  const badge = pageA.locator('#my-rooms button', { hasText: roomName }).locator('.badge');
  await badge.filter({ hasText: '2' }).waitFor({ timeout: WAIT });
  const { token, roomId: readRoom } = await pageA.evaluate((name) => ({
    token: JSON.parse(sessionStorage.getItem('chat.session')).token,
    roomId: Number([...document.querySelectorAll('#my-rooms button')].find((b) => b.textContent.includes(name)).dataset.room),
  }), roomName);
  // Alice's "phone": a REST client on node B marks the room read.
  const res = await fetch(`${env.NODE_B_URL}/api/rooms/${readRoom}/read`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ seq: 1_000_000 }),
  });
  assert.equal(res.status, 200, await res.text());
  await badge.waitFor({ state: 'detached', timeout: WAIT });
  const rooms = await (await fetch(`${env.NODE_A_URL}/api/rooms`, { headers: { authorization: `Bearer ${token}` } })).json();
  const listed = rooms.rooms.find((r) => r.id === readRoom);
  assert.equal(listed.unread_count, 0, JSON.stringify(listed));
  log(`Alice's badge (2 unread) cleared when her other device marked the room read (seq ${listed.last_read_seq})`);
  await pageA.locator('#my-rooms button', { hasText: roomName }).click();
  await seen(pageA, 'unread two');

  // --- Too fast: the gateway's rate limit (5/s, burst 8 here) shows in words ---------------------
  await pageA.evaluate(() => {
    const input = document.getElementById('composer-input');
    const form = document.getElementById('composer');
    for (let i = 1; i <= 12; i += 1) {
      input.value = `burst ${i}`;
      form.requestSubmit();
    }
  });
  await pageA.locator('#composer-error', { hasText: 'too fast' }).waitFor({ timeout: WAIT });
  await pageA.waitForFunction(() => !document.querySelector('#messages li.pending'), null, { timeout: WAIT });
  const refused = await pageA.locator('#messages li.failed', { hasText: 'burst' }).count();
  assert.ok(refused >= 1 && refused < 12, `${refused} of 12 refused`);
  log(`12 messages at once: ${refused} refused with "${await pageA.locator('#composer-error').textContent()}"`);

  // --- Scrolling back loads older pages -----------------------------------------------------------
  const roomId = await pageB.evaluate(() => Number(sessionStorage.getItem('chat.active')));
  await pageB.evaluate(async (id) => {
    const { token } = JSON.parse(sessionStorage.getItem('chat.session'));
    for (let i = 1; i <= 60; i += 1) {
      const res = await fetch(`/api/rooms/${id}/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ content: `history ${i}` }),
      });
      // The user's send budget (REST and WebSocket share it): wait as told.
      if (res.status === 429) {
        const wait = Number(res.headers.get('retry-after') ?? '1');
        await new Promise((r) => setTimeout(r, wait * 1000));
        i -= 1;
      } else if (res.status !== 201) throw new Error(`POST message: ${res.status}`);
    }
  }, roomId);
  await seen(pageA, 'history 60');
  await pageA.reload();
  await pageA.locator('#conn[data-state="connected"]').waitFor({ timeout: WAIT });
  await seen(pageA, 'history 60');
  const firstPage = await messages(pageA);
  assert.equal(firstPage.length, 50, 'a fresh page shows the newest 50');
  await pageA.locator('#scroller').evaluate((s) => { s.scrollTop = 0; });
  await seen(pageA, 'Hi Bob, this is Alice on node A');
  const all = await messages(pageA);
  assertExactlyOnceInOrder(all, 'Alice after scrolling back');
  assert.equal(all[0].seq, 1);
  // From the history: the edit and the deletion as they are now.
  await messageItem(pageA, 'See you at 6 pm').locator('.edited').waitFor({ timeout: WAIT });
  await pageA.locator(`#messages li[data-id="${oops}"].deleted .tombstone`).waitFor({ timeout: WAIT });
  log(`after a reload: newest 50 shown, scrolling up loaded the rest (${all.length} messages, seq 1..${all.at(-1).seq}; the edited one and the tombstone as before)`);

  // --- Through the load balancer: log in, same room, presence updates -----------------------------
  const bobViaLb = await browser.newContext({ viewport: { width: 800, height: 600 } });
  const pageC = await openPage(bobViaLb, `${env.LB_URL}/`, 'bob@haproxy');
  await signIn(pageC, 'login', `bob_${suffix}`);
  await pageC.locator('#my-rooms button', { hasText: roomName }).click();
  await seen(pageC, 'history 60');
  await say(pageC, 'Bob again, through HAProxy');
  await seen(pageA, 'Bob again, through HAProxy');
  log(`Bob logged in through HAProxy (${env.LB_URL}), same origin WebSocket, chatted`);

  await pageA.evaluate(() => {
    window.__presence = [];
    window.chatApp.client.addEventListener('presence', (e) => window.__presence.push(e.detail));
  });
  // Bob logs out everywhere: his last connection closing makes him leave Alice's list.
  await pageC.getByRole('button', { name: 'Log out' }).click();
  await pageB.getByRole('button', { name: 'Log out' }).click();
  await pageA.locator('#online li', { hasText: 'Bob' }).waitFor({ state: 'detached', timeout: WAIT })
    .catch(async (err) => {
      console.error(await pageA.evaluate(async (id) => {
        const { token } = JSON.parse(sessionStorage.getItem('chat.session'));
        const res = await fetch(`/api/rooms/${id}/online`, { headers: { authorization: `Bearer ${token}` } });
        return JSON.stringify({ online: await res.json(), presence: window.__presence, active: sessionStorage.getItem('chat.active') });
      }, roomId));
      throw err;
    });
  log('Bob logged out: Alice saw him leave');

  // --- Bans: the owner bans from the member list; the banned user sees why ----------------
  const malloryCtx = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const pageM = await openPage(malloryCtx, `${env.NODE_B_URL}/`, 'mallory@B');
  await pageM.getByLabel('Username').fill(`mallory_${suffix}`);
  await pageM.getByLabel('Password').fill(password);
  await pageM.getByLabel(/Nickname/).fill('Mallory \u202Eevil');
  await pageM.getByRole('button', { name: 'Register' }).click();
  await pageM.locator('#auth-error', { hasText: 'nickname' }).waitFor({ timeout: WAIT });
  await signIn(pageM, 'register', `mallory_${suffix}`, 'Mallory');
  await pageM.locator('summary', { hasText: 'Public rooms' }).click();
  await pageM.getByRole('button', { name: `Join ${roomName}` }).click();
  await pageM.locator('#room-title', { hasText: roomName }).waitFor({ timeout: WAIT });
  await pageA.locator('summary', { hasText: 'Members' }).click();
  pageA.once('dialog', (dialog) => dialog.accept());
  await pageA.getByRole('button', { name: 'Ban Mallory' }).click();
  await pageA.locator('#bans li', { hasText: 'Mallory' }).waitFor({ timeout: WAIT });
  await pageM.locator('#rooms-error', { hasText: `You were banned from ${roomName}` }).waitFor({ timeout: WAIT });
  await pageM.getByRole('button', { name: `Join ${roomName}` }).click({ timeout: WAIT });
  await pageM.locator('#rooms-error', { hasText: 'banned from this room' }).waitFor({ timeout: WAIT });
  log('Alice banned Mallory from the member list: Mallory was told, and her join is refused with the reason');

  assert.deepEqual(problems, [], 'the pages reported errors');
} catch (err) {
  failed = true;
  console.error(err);
  for (const context of browser.contexts()) {
    for (const [i, page] of context.pages().entries()) {
      await page.screenshot({ path: path.join(artifacts, `failure-${browser.contexts().indexOf(context)}-${i}.png`) }).catch(() => {});
    }
  }
  if (problems.length) console.error(problems.join('\n'));
} finally {
  await browser.close();
}
log(failed ? 'FAILED' : 'passed');
process.exit(failed ? 1 : 0);

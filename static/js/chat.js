// Booking chat: history with older pages on scroll, live messages, typing, read marks, presence,
// status changes inline, retries with the same client_id and resubscription from the last seq.
import { apiList, describeError, me } from './api.js';
import { $, dateRange, dateTime, h, STATUS_LABEL, timeOnly, toast } from './dom.js';
import { _, sameLocalDay } from './i18n.js';
import { LiveSocket } from './live.js';
import { attachmentsNode, chosenCount, pendingPhotosNode, setUpComposerPhotos, takeChosen, uploadPhotos } from './chat-photos.js';

const root = $('#chat');
const bookingId = Number(root.dataset.bookingId);
const otherId = Number(root.dataset.otherId);
const otherName = root.dataset.otherName;
const nameOf = {
  [root.dataset.ownerId]: root.dataset.ownerName,
  [root.dataset.sitterId]: root.dataset.sitterName,
};
// Whether the viewer takes part (or only watches, as an admin) is the server's rule, not ours.
const isParticipant = root.dataset.participant === 'true';

const PAGE = 40;
const RETRY_MS = 4000;
const TYPING_EVERY_MS = 2000;
const TYPING_SHOWN_MS = 3500;

const log = $('#chat-log');
const list = $('#messages');
const pendingList = h('ol', { class: 'messages', id: 'pending-messages' });
list.after(pendingList);
const historyStatus = $('#history-status');
const typingLine = $('#typing');
const input = $('#composer-input');
const composer = $('#composer');

const bySeq = new Map(); // seq -> message
const pending = new Map(); // client_id -> { content, node, lastTry }
let lastSeq = 0; // highest seq received, the resume point after a reconnect
let oldestSeq = null; // lowest seq loaded; older pages are read before it
let subscribedOnce = false;
let loadingOlder = false;
let reachedStart = false;
let otherReadSeq = 0;
let myReadSeq = 0;

document.body.classList.add('is-chat');
const when = $('#booking-when');
when.textContent = dateRange(when.getAttribute('datetime'), when.dataset.end);
if (!isParticipant) composer.hidden = true;

// --- rendering -----------------------------------------------------------------------------

function uuid() {
  if (window.crypto.randomUUID) return window.crypto.randomUUID();
  // randomUUID needs a secure context; getRandomValues does not.
  const b = window.crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function stamp(iso) {
  return sameLocalDay(iso, new Date().toISOString()) ? timeOnly(iso) : dateTime(iso);
}

function messageNode(msg) {
  const mine = msg.sender_id === me.id;
  const meta = h('span', { class: 'msg-meta' }, h('time', { datetime: msg.sent_at, text: stamp(msg.sent_at) }));
  if (mine) meta.append(h('span', { class: 'msg-status', text: _('Sent') }));
  return h('li', { class: `msg${mine ? ' mine' : ''}`, dataset: { seq: msg.seq, sender: msg.sender_id } },
    !isParticipant ? h('span', { class: 'msg-sender', text: nameOf[msg.sender_id] || _('User #{id}', { id: msg.sender_id }) }) : null,
    msg.content ? h('div', { class: 'msg-bubble', text: msg.content }) : null,
    attachmentsNode(msg),
    meta);
}

// Nodes stay sorted by seq whichever way they arrive (history pages, replay, live).
function insertSorted(node, seq) {
  let after = list.lastElementChild;
  while (after && Number(after.dataset.seq) > seq) after = after.previousElementSibling;
  if (after) after.after(node);
  else list.prepend(node);
}

function nearBottom() {
  return log.scrollHeight - log.scrollTop - log.clientHeight < 120;
}

function scrollToBottom() {
  log.scrollTop = log.scrollHeight;
}

function addMessage(msg) {
  if (msg.booking_id !== undefined && Number(msg.booking_id) !== bookingId) return;
  const resolved = msg.client_id && pending.get(msg.client_id);
  if (resolved && msg.sender_id === me.id) {
    resolved.node.remove();
    pending.delete(msg.client_id);
  }
  if (bySeq.has(msg.seq)) return;
  const stick = nearBottom() || msg.sender_id === me.id;
  bySeq.set(msg.seq, msg);
  insertSorted(messageNode(msg), msg.seq);
  lastSeq = Math.max(lastSeq, msg.seq);
  oldestSeq = oldestSeq === null ? msg.seq : Math.min(oldestSeq, msg.seq);
  historyStatus.hidden = true;
  if (msg.sender_id === otherId) hideTyping();
  updateSeen();
  if (stick) scrollToBottom();
  scheduleRead();
}

function systemLine(text) {
  const node = h('li', { class: 'sys-line', dataset: { seq: lastSeq + 0.5 }, text });
  insertSorted(node, lastSeq + 0.5);
  historyStatus.hidden = true;
  if (nearBottom()) scrollToBottom();
}

function updateSeen() {
  let lastSeen = null;
  for (const node of list.querySelectorAll('.msg.mine')) {
    const seen = Number(node.dataset.seq) <= otherReadSeq;
    node.dataset.seen = String(seen);
    const status = node.querySelector('.msg-status');
    status.textContent = seen ? '✓✓' : '✓';
    status.title = seen ? _('Seen') : _('Sent');
    status.classList.remove('msg-seen');
    if (seen) lastSeen = status;
  }
  if (lastSeen) {
    lastSeen.textContent = _('Seen');
    lastSeen.classList.add('msg-seen');
  }
}

// --- history -------------------------------------------------------------------------------

async function loadOlder(beforeSeq) {
  if (loadingOlder || reachedStart || beforeSeq <= 1) {
    if (beforeSeq <= 1) markStart();
    return;
  }
  loadingOlder = true;
  const heightBefore = log.scrollHeight;
  const topBefore = log.scrollTop;
  try {
    const { items } = await apiList(`/api/bookings/${bookingId}/messages`, { query: { before_seq: beforeSeq, limit: PAGE } });
    for (const msg of items) {
      if (bySeq.has(msg.seq)) continue;
      bySeq.set(msg.seq, msg);
      insertSorted(messageNode(msg), msg.seq);
      oldestSeq = oldestSeq === null ? msg.seq : Math.min(oldestSeq, msg.seq);
      lastSeq = Math.max(lastSeq, msg.seq);
    }
    updateSeen();
    // Keep the message the reader was looking at in place.
    log.scrollTop = topBefore + (log.scrollHeight - heightBefore);
    if (items.length < PAGE || (oldestSeq !== null && oldestSeq <= 1)) markStart();
  } catch (err) {
    toast(err.message, 'error');
  } finally {
    loadingOlder = false;
  }
}

function markStart() {
  reachedStart = true;
  historyStatus.hidden = false;
  historyStatus.textContent = bySeq.size ? _('This is the beginning of your conversation.') : _('No messages yet. Say hello to {name}!', { name: otherName });
  list.before(historyStatus);
}

log.addEventListener('scroll', () => {
  if (log.scrollTop < 80 && oldestSeq !== null) loadOlder(oldestSeq);
});

// --- live ----------------------------------------------------------------------------------

const live = new LiveSocket();

live.onOpen(() => {
  // First time: no replay, history comes over REST below last_seq. After a reconnect: exactly
  // what was missed, from the last seq seen.
  const frame = { type: 'subscribe', booking_id: bookingId };
  if (subscribedOnce) frame.after_seq = lastSeq;
  live.send(frame);
});

live.on('subscribed', async (frame) => {
  if (frame.booking_id !== bookingId) return;
  setPresence((frame.online || []).includes(otherId));
  otherReadSeq = Math.max(otherReadSeq, Number(frame.read?.[otherId] || 0));
  myReadSeq = Math.max(myReadSeq, Number(frame.read?.[me.id] || 0));
  for (const p of pending.keys()) trySend(p);
  if (!subscribedOnce) {
    subscribedOnce = true;
    lastSeq = Math.max(lastSeq, frame.last_seq || 0);
    if (frame.last_seq > 0) {
      await loadOlder(frame.last_seq + 1);
      // Fill the view so scrolling up has something to trigger on.
      while (!reachedStart && log.scrollHeight <= log.clientHeight && oldestSeq > 1) await loadOlder(oldestSeq);
    } else {
      markStart();
    }
    scrollToBottom();
    scheduleRead();
  }
  updateSeen();
  document.body.dataset.ready = 'true';
});

live.on('message', (frame) => addMessage(frame.message));
live.on('ack', (frame) => addMessage(frame.message));

live.on('typing', (frame) => {
  if (frame.booking_id !== bookingId || frame.user_id === me.id) return;
  typingLine.textContent = _('{name} is typing…', { name: nameOf[frame.user_id] || otherName });
  clearTimeout(typingLine.timer);
  typingLine.timer = setTimeout(hideTyping, TYPING_SHOWN_MS);
});

function hideTyping() {
  typingLine.textContent = '';
}

live.on('read', (frame) => {
  if (frame.booking_id !== bookingId) return;
  if (frame.user_id === otherId) {
    otherReadSeq = Math.max(otherReadSeq, frame.seq);
    updateSeen();
  } else if (frame.user_id === me.id) {
    myReadSeq = Math.max(myReadSeq, frame.seq);
  }
});

live.on('presence', (frame) => {
  if (frame.booking_id === bookingId && frame.user_id === otherId) setPresence(frame.online);
});

function setPresence(online) {
  const el = $('#presence');
  el.dataset.online = String(Boolean(online));
  $('#presence-label').textContent = online ? _('online') : _('offline');
}

// While our own connection is down we cannot know; say so rather than show a stale "online".
live.onStatus((state) => {
  if (state === 'online') return;
  $('#presence').dataset.online = 'false';
  $('#presence-label').textContent = _('waiting for connection…');
});

live.on('booking', (frame) => {
  const b = frame.booking;
  if (!b || b.booking_id !== bookingId) return;
  const badge = $('#booking-status');
  if (badge.dataset.status === b.status) return;
  badge.dataset.status = b.status;
  badge.className = `badge badge-${b.status} badge-flash`;
  badge.textContent = STATUS_LABEL[b.status] || b.status;
  systemLine(_('Booking: {status} · {time}', { status: STATUS_LABEL[b.status] || b.status, time: timeOnly(b.updated_at || new Date().toISOString()) }));
});

live.on('error', (frame) => {
  if (frame.ref?.booking_id !== undefined && frame.ref.booking_id !== bookingId) return;
  // Rate-limited sends are retried by the timer; anything else is worth telling the user.
  if (frame.code !== 'rate_limited') toast(describeError(400, { code: frame.code }), 'error');
});

// --- reading -------------------------------------------------------------------------------

let readTimer = null;
function scheduleRead() {
  if (!isParticipant) return;
  clearTimeout(readTimer);
  readTimer = setTimeout(() => {
    if (document.visibilityState !== 'visible' || lastSeq <= myReadSeq) return;
    if (live.send({ type: 'read', booking_id: bookingId, seq: lastSeq })) myReadSeq = lastSeq;
  }, 250);
}
document.addEventListener('visibilitychange', scheduleRead);

// --- sending -------------------------------------------------------------------------------

function trySend(clientId) {
  const p = pending.get(clientId);
  if (!p || p.uploading) return;
  const frame = { type: 'send', booking_id: bookingId, content: p.content, client_id: clientId };
  if (p.attachmentIds.length) frame.attachment_ids = p.attachmentIds;
  if (live.send(frame)) {
    p.lastTry = Date.now();
    p.node.querySelector('.msg-status').textContent = _('Sending…');
  } else {
    p.node.querySelector('.msg-status').textContent = _('Waiting for connection…');
  }
}

// Unacknowledged messages are sent again with the same client_id: the server stores each once.
setInterval(() => {
  for (const [clientId, p] of pending) {
    if (Date.now() - p.lastTry > RETRY_MS) trySend(clientId);
  }
}, 1000);

function send(content, photos = []) {
  const clientId = uuid();
  const node = h('li', { class: 'msg mine pending', dataset: { clientId } },
    content ? h('div', { class: 'msg-bubble', text: content }) : null,
    pendingPhotosNode(photos),
    h('span', { class: 'msg-meta' }, h('span', { class: 'msg-status', text: _('Sending…') })));
  pendingList.append(node);
  const entry = { content, node, lastTry: 0, attachmentIds: [], uploading: photos.length > 0 };
  pending.set(clientId, entry);
  historyStatus.hidden = true;
  scrollToBottom();
  if (entry.uploading) sendWithPhotos(clientId, entry, photos);
  else trySend(clientId);
}

// Photos go up first (each with its progress); the message then names them, and is retried
// with the same client_id like any other.
async function sendWithPhotos(clientId, entry, photos) {
  entry.node.querySelector('.msg-status').textContent = _('Uploading…');
  try {
    entry.attachmentIds = await uploadPhotos(bookingId, photos, entry.node);
  } catch (err) {
    pending.delete(clientId);
    entry.node.classList.add('failed');
    entry.node.querySelector('.msg-status').textContent = _('Not sent');
    toast(err.message, 'error');
    return;
  }
  entry.uploading = false;
  trySend(clientId);
}

setUpComposerPhotos((count) => { input.required = count === 0; });

composer.addEventListener('submit', (event) => {
  event.preventDefault();
  const content = input.value.trim();
  if (!content && !chosenCount()) return;
  if (content.length > 4000) {
    toast(_('A message can be at most 4000 characters'), 'error');
    return;
  }
  send(content, takeChosen());
  input.value = '';
  input.focus();
});

input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    composer.requestSubmit();
  }
});

let lastTypingSent = 0;
input.addEventListener('input', () => {
  if (!input.value.trim() || Date.now() - lastTypingSent < TYPING_EVERY_MS) return;
  if (live.send({ type: 'typing', booking_id: bookingId })) lastTypingSent = Date.now();
});

window.addEventListener('beforeunload', (event) => {
  if (pending.size) event.preventDefault();
});

// The notifications menu of every signed-in page: the unread count on the bell and the latest
// notifications. Read on load, every 30 s and when the page comes back into view; a page with a
// live socket also hears each `notification` frame at once.
import { api, apiList } from './api.js';
import { $, dateTime, h } from './dom.js';
import { _ } from './i18n.js';

const SHOWN = 10;
const REFRESH_MS = 30000;
const menu = $('#notify-menu');
const badge = $('#notify-badge');
const list = $('#notify-list');
const empty = $('#notify-empty');

function setUnread(count) {
  badge.textContent = count > 99 ? '99+' : String(count);
  badge.hidden = count === 0;
  badge.setAttribute('aria-label', _('{n} unread', { n: count }));
}

function item(n) {
  const link = n.booking_id ? `/bookings/${n.booking_id}/chat` : '';
  const title = link ? h('a', { href: link }, n.title) : h('strong', {}, n.title);
  return h(
    'li',
    { class: n.read_at ? 'notify-item' : 'notify-item unread', dataset: { id: String(n.notification_id) } },
    title,
    h('p', {}, n.body),
    h('small', { class: 'muted' }, dateTime(n.created_at)),
  );
}

async function refresh() {
  try {
    const [latest, unread] = await Promise.all([
      apiList(`/api/notifications?limit=${SHOWN}`),
      apiList('/api/notifications?unread=true&limit=1'),
    ]);
    list.replaceChildren(...latest.items.map(item));
    empty.hidden = latest.items.length > 0;
    setUnread(unread.total);
  } catch {
    // Offline or the server is away: the next refresh tries again.
  }
}

$('#notify-read-all')?.addEventListener('click', async () => {
  await api('/api/notifications/read', { method: 'POST', body: { all: true } });
  await refresh();
});

document.addEventListener('live-frame', (event) => {
  const frame = event.detail;
  if (frame?.type !== 'notification') return;
  if (list.querySelector(`[data-id="${frame.notification.notification_id}"]`)) return;
  list.prepend(item(frame.notification));
  while (list.children.length > SHOWN) list.lastElementChild.remove();
  empty.hidden = true;
  setUnread(Number(badge.hidden ? 0 : badge.textContent) + 1);
});

document.addEventListener('visibilitychange', () => {
  if (!document.hidden) refresh();
});

if (menu) {
  refresh();
  setInterval(refresh, REFRESH_MS);
}

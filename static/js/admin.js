// Admin dashboard: counters polled every 5 s, bookings-per-day chart, pending sitters, users.
import { api, apiList, me } from './api.js';
import { drawBarChart } from './chart.js';
import { $, badge, dateOnly, dateTime, h, money, ROLE_LABEL, SITTER_STATUS_LABEL, timeOnly, toast } from './dom.js';
import { _, fixed, ngettext, pgettext } from './i18n.js';

const STATS_EVERY_MS = 5000;
const USERS_PAGE = 10;

// --- counters ------------------------------------------------------------------------------

function pick(data, path) {
  return path.split('.').reduce((obj, key) => (obj == null ? undefined : obj[key]), data);
}

function bytesText(value) {
  const units = [pgettext('bytes', 'B'), pgettext('bytes', 'KB'), pgettext('bytes', 'MB'), pgettext('bytes', 'GB'), pgettext('bytes', 'TB')];
  let n = Number(value);
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit += 1;
  }
  return `${unit ? fixed(n, 1) : n} ${units[unit]}`;
}

const FORMATS = { money, bytes: bytesText };

async function loadStats() {
  let stats;
  try {
    stats = await api('/api/admin/stats');
  } catch {
    $('#stats-updated').textContent = _('Counters unavailable right now.');
    return;
  }
  const sum = (o) => Object.values(o || {}).reduce((a, b) => a + Number(b || 0), 0);
  stats.users.total = sum(stats.users);
  stats.sitters.total = sum(stats.sitters);
  stats.bookings.total = sum(stats.bookings);
  for (const el of document.querySelectorAll('[data-stat]')) {
    const value = pick(stats, el.dataset.stat);
    const text = value === undefined ? '—' : (FORMATS[el.dataset.format] || String)(value);
    if (el.textContent !== text) {
      const changed = el.textContent !== '—';
      el.textContent = text;
      if (changed) {
        el.classList.remove('stat-changed');
        void el.offsetWidth; // restart the highlight animation
        el.classList.add('stat-changed');
      }
    }
  }
  $('#stats-updated').textContent = _('Updated at {time}.', { time: timeOnly(new Date().toISOString()) });
}

let chartSeries = null;

async function loadChart() {
  const figure = $('#bookings-chart');
  try {
    const series = await api('/api/admin/stats/bookings-per-day', { query: { days: figure.dataset.days } });
    chartSeries = series;
    drawBarChart(figure, series);
    const total = series.reduce((a, d) => a + d.count, 0);
    // Each count with its own plural form (a nested call would hide them from the extraction).
    const bookings = ngettext('{n} booking', '{n} bookings', total);
    const days = ngettext('{n} day', '{n} days', series.length);
    $('#chart-total').textContent = _('{bookings} in the last {days}', { bookings, days });
  } catch (err) {
    $('#chart-total').textContent = err.message;
  }
}

let resizeTimer = null;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => { if (chartSeries) drawBarChart($('#bookings-chart'), chartSeries); }, 150);
});

// --- pending sitters -----------------------------------------------------------------------

async function loadPending() {
  const { items, total } = await apiList('/api/admin/sitters/pending', { query: { limit: 50 } });
  $('#pending-count').textContent = String(total);
  $('#pending-list').replaceChildren(
    ...items.map((s) => {
      const id = s.sitter_id ?? s.user_id;
      const name = s.full_name || _('sitter #{id}', { id });
      const experience = ngettext('{n} year of experience', '{n} years of experience', s.experience_years ?? 0);
      return h('li', { class: 'pending-sitter', dataset: { sitterId: id } },
        h('strong', { text: name }),
        h('p', { text: [s.location, experience].filter(Boolean).join(' · ') }),
        s.certificates ? h('p', { text: _('Certificates: {text}', { text: s.certificates }) }) : null,
        s.preferences ? h('p', { text: _('Preferences: {text}', { text: s.preferences }) }) : null,
        h('div', { class: 'btn-row' },
          h('button', { type: 'button', class: 'btn btn-primary btn-sm', text: _('Approve'), 'aria-label': _('Approve {name}', { name }), onclick: (e) => decide(e.currentTarget, id, 'approve', name) }),
          h('button', { type: 'button', class: 'btn btn-danger-outline btn-sm', text: _('Reject'), 'aria-label': _('Reject {name}', { name }), onclick: (e) => decide(e.currentTarget, id, 'reject', name) })));
    }),
  );
  $('#pending-empty').hidden = items.length > 0;
}

async function decide(button, sitterId, action, name) {
  button.disabled = true;
  try {
    await api(`/api/admin/sitters/${sitterId}/${action}`, { method: 'POST' });
    toast(action === 'approve' ? _('Sitter {name} approved', { name }) : _('Sitter {name} rejected', { name }));
    await Promise.all([loadPending(), loadStats(), loadUsers()]);
  } catch (err) {
    toast(err.message, 'error');
    button.disabled = false;
  }
}

// --- users ---------------------------------------------------------------------------------

const usersFilter = $('#users-filter');
let usersOffset = 0;
let usersTotal = 0;
let usersRequest = 0;

async function loadUsers() {
  const query = {
    role: usersFilter.elements.role.value,
    q: usersFilter.elements.q.value.trim(),
    limit: USERS_PAGE,
    offset: usersOffset,
  };
  // Typing fires several searches; only the newest answer may render.
  const ticket = ++usersRequest;
  let result;
  try {
    result = await apiList('/api/admin/users', { query });
  } catch (err) {
    if (ticket === usersRequest) toast(err.message, 'error');
    return;
  }
  if (ticket !== usersRequest) return;
  usersTotal = result.total;
  $('#users-body').replaceChildren(
    ...result.items.map((u) =>
      h('tr', { dataset: { userId: u.user_id } },
        h('td', {}, h('strong', { text: u.full_name }), h('small', { class: 'show-sm', text: u.email || '—' })),
        h('td', { class: 'hide-sm', text: u.email || '—' }),
        h('td', {}, badge(u.role, ROLE_LABEL), u.sitter?.status ? h('small', { text: SITTER_STATUS_LABEL[u.sitter.status] || u.sitter.status }) : null),
        h('td', { class: 'hide-sm', text: u.created_at ? dateOnly(u.created_at) : '—' }),
        h('td', {}, h('button', { type: 'button', class: 'btn btn-ghost btn-sm', text: _('Details'), 'aria-label': _('Details of {name}', { name: u.full_name }), onclick: () => openUser(u.user_id) })))),
  );
  $('#users-empty').hidden = result.items.length > 0;
  const shown = result.items.length;
  $('#users-range').textContent = shown ? _('{first}–{last} of {total}', { first: usersOffset + 1, last: usersOffset + shown, total: usersTotal }) : '';
  $('#users-prev').disabled = usersOffset === 0;
  $('#users-next').disabled = usersOffset + shown >= usersTotal;
}

let searchTimer = null;
usersFilter.addEventListener('input', () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => { usersOffset = 0; loadUsers(); }, 250);
});
usersFilter.addEventListener('submit', (event) => { event.preventDefault(); usersOffset = 0; loadUsers(); });
$('#users-prev').addEventListener('click', () => { usersOffset = Math.max(0, usersOffset - USERS_PAGE); loadUsers(); });
$('#users-next').addEventListener('click', () => { usersOffset += USERS_PAGE; loadUsers(); });

// --- user details and deletion -------------------------------------------------------------

const userDialog = $('#user-dialog');
let shownUser = null;

function fact(label, value) {
  return h('div', {}, h('dt', { text: label }), h('dd', { text: value === undefined || value === null || value === '' ? '—' : String(value) }));
}

async function openUser(userId) {
  let u;
  try {
    u = await api(`/api/admin/users/${userId}`);
  } catch (err) {
    toast(err.message, 'error');
    return;
  }
  shownUser = u;
  $('#user-title').textContent = u.full_name;
  const facts = [
    fact(_('Role'), ROLE_LABEL[u.role] || u.role), fact(_('E-mail'), u.email), fact(_('Phone'), u.phone),
    fact(_('Joined'), u.created_at && dateTime(u.created_at)),
  ];
  if (u.role === 'sitter') {
    try {
      const s = await api(`/api/admin/sitters/${userId}`);
      facts.push(
        fact(_('Status'), SITTER_STATUS_LABEL[s.status] || s.status), fact(_('Location'), s.location),
        fact(_('Experience'), ngettext('{n} year', '{n} years', s.experience_years)),
        fact(_('Services'), s.total_services),
        fact(_('Bookings'), ngettext('{n} ({completed} completed)', '{n} ({completed} completed)', s.total_bookings, { completed: s.completed_bookings })),
        fact(_('Rating'), s.total_reviews
          ? ngettext('{rating} from {n} review', '{rating} from {n} reviews', s.total_reviews, { rating: fixed(s.average_rating, 2) })
          : _('No reviews')),
      );
    } catch {
      // The profile is a bonus; the user's own facts are already shown.
    }
  }
  $('#user-facts').replaceChildren(...facts);
  $('#user-confirm').hidden = true;
  $('#user-error').hidden = true;
  const self = u.user_id === me.id;
  $('#user-delete').hidden = self;
  $('#user-delete-note').textContent = self
    ? _('This is your own account; another admin can delete it.')
    : _('Deleting removes personal data; bookings, reviews and messages stay, shown as a deleted user.');
  userDialog.showModal();
}

$('#user-close').addEventListener('click', () => userDialog.close());
$('#user-delete').addEventListener('click', () => {
  $('#user-confirm').hidden = false;
  $('#user-delete-keep').focus();
});
$('#user-delete-keep').addEventListener('click', () => { $('#user-confirm').hidden = true; });
$('#user-delete-confirm').addEventListener('click', async (event) => {
  const button = event.currentTarget;
  button.disabled = true;
  try {
    await api(`/api/admin/users/${shownUser.user_id}`, { method: 'DELETE' });
    userDialog.close();
    toast(_('Account of {name} deleted', { name: shownUser.full_name }));
    await Promise.all([loadUsers(), loadStats(), loadPending()]);
  } catch (err) {
    $('#user-error').textContent = err.message;
    $('#user-error').hidden = false;
  } finally {
    button.disabled = false;
  }
});

// --- start ---------------------------------------------------------------------------------

await Promise.allSettled([loadStats(), loadChart(), loadPending(), loadUsers()]);
// Counters are polled: cheap (one aggregate query) and they also reflect changes made elsewhere.
setInterval(() => { if (document.visibilityState === 'visible') loadStats(); }, STATS_EVERY_MS);
setInterval(() => { if (document.visibilityState === 'visible') loadChart(); }, STATS_EVERY_MS * 12);
document.body.dataset.ready = 'true';

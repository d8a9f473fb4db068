// Admin dashboard: counters polled every 5 s, bookings-per-day chart, pending sitters, users.
import { api, apiList, me } from './api.js';
import { drawBarChart } from './chart.js';
import { $, badge, capitalize, dateOnly, dateTime, h, money, toast } from './dom.js';

const STATS_EVERY_MS = 5000;
const USERS_PAGE = 10;

// --- counters ------------------------------------------------------------------------------

function pick(data, path) {
  return path.split('.').reduce((obj, key) => (obj == null ? undefined : obj[key]), data);
}

function bytesText(value) {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let n = Number(value);
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit += 1;
  }
  return `${unit ? n.toFixed(1) : n} ${units[unit]}`;
}

const FORMATS = { money, bytes: bytesText };

async function loadStats() {
  let stats;
  try {
    stats = await api('/api/admin/stats');
  } catch {
    $('#stats-updated').textContent = 'Counters unavailable right now.';
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
  $('#stats-updated').textContent = `Updated ${new Date().toLocaleTimeString('en-GB')}.`;
}

let chartSeries = null;

async function loadChart() {
  const figure = $('#bookings-chart');
  try {
    const series = await api('/api/admin/stats/bookings-per-day', { query: { days: figure.dataset.days } });
    chartSeries = series;
    drawBarChart(figure, series);
    const total = series.reduce((a, d) => a + d.count, 0);
    $('#chart-total').textContent = `${total} in the last ${series.length} days`;
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
      const name = s.full_name || `Sitter #${s.sitter_id ?? s.user_id}`;
      const id = s.sitter_id ?? s.user_id;
      return h('li', { class: 'pending-sitter', dataset: { sitterId: id } },
        h('strong', { text: name }),
        h('p', { text: [s.location, `${s.experience_years ?? 0} years experience`].filter(Boolean).join(' · ') }),
        s.certificates ? h('p', { text: `Certificates: ${s.certificates}` }) : null,
        s.preferences ? h('p', { text: `Preferences: ${s.preferences}` }) : null,
        h('div', { class: 'btn-row' },
          h('button', { type: 'button', class: 'btn btn-primary btn-sm', text: 'Approve', 'aria-label': `Approve ${name}`, onclick: (e) => decide(e.currentTarget, id, 'approve', name) }),
          h('button', { type: 'button', class: 'btn btn-danger-outline btn-sm', text: 'Reject', 'aria-label': `Reject ${name}`, onclick: (e) => decide(e.currentTarget, id, 'reject', name) })));
    }),
  );
  $('#pending-empty').hidden = items.length > 0;
}

async function decide(button, sitterId, action, name) {
  button.disabled = true;
  try {
    await api(`/api/admin/sitters/${sitterId}/${action}`, { method: 'POST' });
    toast(`${name} ${action === 'approve' ? 'approved' : 'rejected'}`);
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
        h('td', {}, badge(u.role), u.sitter?.status ? h('small', { text: capitalize(u.sitter.status) }) : null),
        h('td', { class: 'hide-sm', text: u.created_at ? dateOnly(u.created_at) : '—' }),
        h('td', {}, h('button', { type: 'button', class: 'btn btn-ghost btn-sm', text: 'Details', 'aria-label': `Details of ${u.full_name}`, onclick: () => openUser(u.user_id) })))),
  );
  $('#users-empty').hidden = result.items.length > 0;
  const shown = result.items.length;
  $('#users-range').textContent = shown ? `${usersOffset + 1}–${usersOffset + shown} of ${usersTotal}` : '';
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
  const facts = [fact('Role', capitalize(u.role)), fact('E-mail', u.email), fact('Phone', u.phone), fact('Joined', u.created_at && dateTime(u.created_at))];
  if (u.role === 'sitter') {
    try {
      const s = await api(`/api/admin/sitters/${userId}`);
      facts.push(
        fact('Status', capitalize(s.status)), fact('Location', s.location), fact('Experience', `${s.experience_years} years`),
        fact('Services', s.total_services), fact('Bookings', `${s.total_bookings} (${s.completed_bookings} completed)`),
        fact('Rating', s.total_reviews ? `${Number(s.average_rating).toFixed(2)} from ${s.total_reviews} reviews` : 'No reviews'),
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
    ? 'This is your own account; another admin can delete it.'
    : 'Deleting removes personal data; bookings, reviews and messages stay, shown as a deleted user.';
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
    toast(`${shownUser.full_name} deleted`);
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

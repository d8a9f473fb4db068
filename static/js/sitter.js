// Sitter dashboard: profile, services, incoming bookings with confirm/cancel/complete, live updates.
import { api, apiList, me } from './api.js';
import { bookingCard, BookingNames } from './bookings.js';
import {
  $, h, busy, clearErrors, startPage, confirmAction, formJson, money, SERVICE_LABEL, showError, stars, STATUS_LABEL, toast,
} from './dom.js';
import { _, pgettext } from './i18n.js';
import { LiveSocket } from './live.js';
import { SitterCalendar } from './calendar.js';

const names = new BookingNames();
const services = new Map();
const bookings = new Map();
const approved = $('#services-section').dataset.approved === 'true';

// --- profile -------------------------------------------------------------------------------

async function loadRating() {
  try {
    const r = await api(`/api/sitters/${me.id}/rating`);
    $('#my-rating').replaceChildren(stars(r.average_rating, r.total_reviews));
  } catch {
    $('#my-rating').textContent = '—';
  }
}

// --- services ------------------------------------------------------------------------------

const serviceForm = $('#service-form');

async function loadServices() {
  const { items } = await apiList(`/api/sitters/${me.id}/services`, { query: { limit: 200 } });
  services.clear();
  for (const s of items) {
    services.set(s.service_id, s);
    names.services.set(s.service_id, s.type);
  }
  renderServices();
}

function renderServices() {
  $('#service-list').replaceChildren(
    ...[...services.values()].map((s) =>
      h('li', { class: 'service', dataset: { serviceId: s.service_id } },
        h('div', { class: 'service-head' },
          h('span', { class: 'service-type', text: SERVICE_LABEL[s.type] || s.type }),
          h('span', { class: 'service-price' }, money(s.price_per_hour), h('small', { text: ` ${_('/ h')}` }))),
        s.description ? h('p', { class: 'service-desc', text: s.description }) : h('p', { class: 'service-desc muted', text: _('No description') }),
        h('div', { class: 'service-foot' },
          h('span'),
          h('div', { class: 'btn-row' },
            h('button', { type: 'button', class: 'btn btn-ghost btn-sm', text: _('Edit'), onclick: () => openServiceForm(s) }),
            h('button', { type: 'button', class: 'btn btn-danger-outline btn-sm', text: _('Delete'), onclick: () => deleteService(s) }))))),
  );
  const empty = $('#services-empty');
  empty.hidden = services.size > 0;
  if (!approved) empty.textContent = _('You can add services once an admin approves your profile.');
}

function openServiceForm(service) {
  clearErrors(serviceForm);
  serviceForm.reset();
  serviceForm.elements.service_id.value = service ? service.service_id : '';
  $('#service-form-title').textContent = service ? _('Edit service') : _('Add a service');
  if (service) {
    serviceForm.elements.type.value = service.type;
    serviceForm.elements.price_per_hour.value = Number(service.price_per_hour).toFixed(2);
    serviceForm.elements.description.value = service.description;
  }
  serviceForm.hidden = false;
  serviceForm.elements.type.focus();
}

serviceForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors(serviceForm);
  const body = formJson(serviceForm, ['type', 'price_per_hour', 'description']);
  const id = serviceForm.elements.service_id.value;
  await busy(serviceForm.querySelector('[type=submit]'), async () => {
    try {
      const saved = id
        ? await api(`/api/services/${id}`, { method: 'PUT', body })
        : await api('/api/services', { method: 'POST', body });
      services.set(saved.service_id, saved);
      renderServices();
      serviceForm.hidden = true;
      toast(id ? _('Service updated') : _('Service published'));
    } catch (err) {
      showError(serviceForm, err);
    }
  });
});

async function deleteService(s) {
  const ok = await confirmAction(
    _('Delete the service “{service}”?', { service: SERVICE_LABEL[s.type] || s.type }),
    _('Owners will no longer find it. Past bookings stay.'),
    _('Delete service'),
  );
  if (!ok) return;
  try {
    await api(`/api/services/${s.service_id}`, { method: 'DELETE' });
    services.delete(s.service_id);
    renderServices();
    toast(_('Service deleted'));
  } catch (err) {
    toast(err.code === 'conflict' ? _('The service has pending or confirmed bookings; settle them first.') : err.message, 'error');
  }
}

$('#service-add').addEventListener('click', () => openServiceForm(null));
$('#service-cancel').addEventListener('click', () => { serviceForm.hidden = true; });

// --- bookings ------------------------------------------------------------------------------

const filter = $('#booking-filter');

async function loadBookings() {
  const { items } = await apiList(`/api/sitters/${me.id}/bookings`, { query: { status: filter.value, limit: 100 } });
  bookings.clear();
  for (const b of items) bookings.set(b.booking_id, b);
  await names.resolve(items);
  renderBookings();
}

function transition(b, action, label) {
  return h('button', {
    type: 'button',
    class: `btn btn-sm ${action === 'confirm' ? 'btn-primary' : action === 'cancel' ? 'btn-ghost' : 'btn-secondary'}`,
    text: label,
    dataset: { action },
    onclick: (event) => changeStatus(event.currentTarget, b, action),
  });
}

function actionsFor(b) {
  const actions = [h('a', { class: 'btn btn-secondary btn-sm', href: `/bookings/${b.booking_id}/chat`, text: _('Chat') })];
  if (b.status === 'pending') actions.push(transition(b, 'confirm', _('Confirm')));
  if (b.status === 'confirmed' && new Date(b.end_time) <= new Date()) actions.push(transition(b, 'complete', _('Mark completed')));
  if (b.status === 'pending' || b.status === 'confirmed') actions.push(transition(b, 'cancel', pgettext('booking action', 'Cancel')));
  return actions;
}

function noteFor(b) {
  if (b.status === 'pending') return _('The owner is waiting for your answer.');
  if (b.status === 'confirmed' && new Date(b.end_time) > new Date()) return _('You can mark it completed after it ends.');
  return null;
}

function card(b) {
  return bookingCard(b, { who: _('Owner: {name}', { name: names.ownerName(b.owner_id, b) }), names, actions: actionsFor(b), note: noteFor(b) });
}

function renderBookings() {
  const rows = [...bookings.values()].filter((b) => !filter.value || b.status === filter.value);
  $('#booking-list').replaceChildren(...rows.map(card));
  $('#bookings-empty').hidden = rows.length > 0;
}

async function applyBooking(b, fresh = false) {
  bookings.set(b.booking_id, b);
  await names.resolve([b]);
  const old = document.querySelector(`.booking[data-booking-id="${b.booking_id}"]`);
  const node = card(b);
  if (fresh) node.classList.add('is-new');
  if (old) old.replaceWith(node);
  else if (!filter.value || filter.value === b.status) {
    $('#booking-list').prepend(node);
    $('#bookings-empty').hidden = true;
  }
}

async function changeStatus(button, b, action) {
  if (action === 'cancel') {
    const ok = await confirmAction(_('Cancel this booking?'), _('The owner is notified right away.'), _('Cancel booking'));
    if (!ok) return;
  }
  await busy(button, async () => {
    try {
      applyBooking(await api(`/api/bookings/${b.booking_id}/${action}`, { method: 'POST' }));
      toast(action === 'confirm' ? _('Booking confirmed') : action === 'complete' ? _('Booking completed') : _('Booking cancelled'));
    } catch (err) {
      toast(err.message, 'error');
    }
  });
}

filter.addEventListener('change', renderBookings);

// --- live ----------------------------------------------------------------------------------

const live = new LiveSocket();
live.on('booking', (frame) => {
  const b = frame.booking;
  if (!b || b.sitter_id !== me.id) return;
  const before = bookings.get(b.booking_id);
  applyBooking(b, true);
  if (!before) toast(_('New booking #{id} — please confirm it', { id: b.booking_id }));
  else if (before.status !== b.status) toast(_('Booking #{id}: {status}', { id: b.booking_id, status: STATUS_LABEL[b.status] || b.status }));
});
const calendar = new SitterCalendar(me.id);
// Bookings change the month too; the sitter's other tabs and devices hear its own changes.
live.on('availability', () => calendar.load());
live.on('booking', () => calendar.load());
let firstOpen = true;
live.onOpen(() => {
  if (!firstOpen) loadBookings();
  firstOpen = false;
});

await startPage([loadRating(), loadServices(), loadBookings(), calendar.load()]);
document.body.dataset.ready = 'true';

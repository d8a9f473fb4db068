// Owner dashboard: pets, service search, booking with the price shown first, bookings with live status.
import { api, apiList, me } from './api.js';
import { bookingCard, BookingNames } from './bookings.js';
import {
  $, h, busy, clearErrors, decimal, startPage, confirmAction, formJson, money, PET_LABEL, SERVICE_LABEL, showError, stars,
  STATUS_LABEL, toast,
} from './dom.js';
import { _, fromLocalInput, localDaysAhead, ngettext, pgettext, toLocalInput } from './i18n.js';
import { LiveSocket } from './live.js';
import { loadAvailability, monthView } from './calendar.js';
import { petAvatar, resetPetPhoto, savePetPhoto } from './pet-photo.js';

const PAGE_SIZE = 12;
const pets = new Map();
const names = new BookingNames();
const bookings = new Map();
let search = { offset: 0, total: 0, query: {} };

// --- pets ----------------------------------------------------------------------------------

const petForm = $('#pet-form');

async function loadPets() {
  const { items } = await apiList(`/api/owners/${me.id}/pets`, { query: { limit: 200 } });
  pets.clear();
  for (const pet of items) pets.set(pet.pet_id, pet);
  renderPets();
}

function renderPets() {
  const list = $('#pet-list');
  list.replaceChildren(
    ...[...pets.values()].map((pet) =>
      h('li', { class: 'pet', dataset: { petId: pet.pet_id } },
        petAvatar(pet),
        h('div', { class: 'pet-body' },
          h('strong', { text: pet.name }),
          h('p', { text: [PET_LABEL[pet.type] || pet.type, ngettext('{n} year', '{n} years', pet.age), pet.notes].filter(Boolean).join(' · ') })),
        h('div', { class: 'btn-row' },
          h('button', { type: 'button', class: 'btn btn-ghost btn-sm', text: _('Edit'), 'aria-label': _('Edit {name}', { name: pet.name }), onclick: () => openPetForm(pet) }),
          h('button', { type: 'button', class: 'btn btn-danger-outline btn-sm', text: _('Delete'), 'aria-label': _('Delete {name}', { name: pet.name }), onclick: () => deletePet(pet) })))),
  );
  $('#pets-empty').hidden = pets.size > 0;
  names.pets = new Map([...pets.values()].map((p) => [p.pet_id, p.name]));
}

function openPetForm(pet) {
  clearErrors(petForm);
  petForm.reset();
  petForm.elements.pet_id.value = pet ? pet.pet_id : '';
  resetPetPhoto(pet);
  $('#pet-form-title').textContent = pet ? _('Edit {name}', { name: pet.name }) : _('Add a pet');
  if (pet) {
    petForm.elements.name.value = pet.name;
    petForm.elements.type.value = pet.type;
    petForm.elements.age.value = pet.age;
    petForm.elements.notes.value = pet.notes;
  }
  petForm.hidden = false;
  petForm.elements.name.focus();
}

petForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors(petForm);
  const body = formJson(petForm, ['name', 'type', 'notes']);
  const age = petForm.elements.age.value.trim();
  body.age = /^\d+$/.test(age) ? Number(age) : age;
  const id = petForm.elements.pet_id.value;
  await busy($('#pet-save'), async () => {
    try {
      const pet = id
        ? await api(`/api/pets/${id}`, { method: 'PUT', body })
        : await api('/api/pets', { method: 'POST', body });
      pets.set(pet.pet_id, pet);
      // Saved: a photo that fails to upload is sent again as an edit of this pet.
      petForm.elements.pet_id.value = pet.pet_id;
      pets.set(pet.pet_id, await savePetPhoto(pet));
      renderPets();
      petForm.hidden = true;
      toast(id ? _('Pet {name} updated', { name: pet.name }) : _('Pet {name} added', { name: pet.name }));
    } catch (err) {
      renderPets();
      showError(petForm, err);
    }
  });
});

async function deletePet(pet) {
  const ok = await confirmAction(_('Delete {name}?', { name: pet.name }), _('Past bookings stay in your history.'), _('Delete pet'));
  if (!ok) return;
  try {
    await api(`/api/pets/${pet.pet_id}`, { method: 'DELETE' });
    pets.delete(pet.pet_id);
    renderPets();
    toast(_('Pet {name} deleted', { name: pet.name }));
  } catch (err) {
    const busyPet = _('{name} has a pending or confirmed booking; cancel it first.', { name: pet.name });
    toast(err.code === 'conflict' ? busyPet : err.message, 'error');
  }
}

$('#pet-add').addEventListener('click', () => openPetForm(null));
$('#pet-cancel').addEventListener('click', () => { petForm.hidden = true; });

// --- search --------------------------------------------------------------------------------

const searchForm = $('#search-form');

// The search's date range, when both ends are set (prefilled into a booking from a result).
function searchRange() {
  const start = fromLocalInput(searchForm.elements.from.value);
  const end = fromLocalInput(searchForm.elements.to.value);
  return start && end ? { start, end } : null;
}

async function runSearch(offset = 0) {
  const query = { ...formJson(searchForm, ['type', 'location', 'min_price', 'max_price', 'min_rating', 'sort']), limit: PAGE_SIZE, offset };
  const errorBox = $('#search-error');
  errorBox.hidden = true;
  const range = searchRange();
  if (Boolean(searchForm.elements.from.value) !== Boolean(searchForm.elements.to.value)) {
    errorBox.textContent = _('Set both ends of the date range, or neither.');
    errorBox.hidden = false;
    return;
  }
  if (range) {
    query.start_time = range.start.rfc3339;
    query.end_time = range.end.rfc3339;
  }
  try {
    const { items, total } = await apiList('/api/services/search', { query });
    search = { offset, total, query };
    renderResults(items);
  } catch (err) {
    errorBox.textContent = err.message;
    errorBox.hidden = false;
  }
}

function renderResults(items) {
  for (const s of items) {
    names.sitters.set(s.sitter_id, s.sitter_name);
    names.services.set(s.service_id, s.type);
  }
  $('#service-results').replaceChildren(
    ...items.map((s) =>
      h('li', { class: 'service', dataset: { serviceId: s.service_id } },
        h('div', { class: 'service-head' },
          h('span', { class: 'service-type', text: SERVICE_LABEL[s.type] || s.type }),
          h('span', { class: 'service-price' }, money(s.price_per_hour), h('small', { text: ` ${_('/ h')}` }))),
        h('p', { class: 'service-sitter', text: s.sitter_name }),
        h('p', { class: 'service-location', text: s.location }),
        s.description ? h('p', { class: 'service-desc', text: s.description }) : null,
        h('div', { class: 'service-foot' },
          stars(s.rating, s.total_reviews),
          h('button', { type: 'button', class: 'btn btn-primary btn-sm', text: _('Book'), 'aria-label': _('Book: {service}, sitter {name}', { service: SERVICE_LABEL[s.type] || s.type, name: s.sitter_name }), onclick: () => openBooking(s) })))),
  );
  $('#search-empty').hidden = items.length > 0;
  const pager = $('#search-pager');
  pager.hidden = search.total <= PAGE_SIZE;
  $('#search-range').textContent = _('{first}–{last} of {total}', { first: search.offset + 1, last: search.offset + items.length, total: search.total });
  $('#search-prev').disabled = search.offset === 0;
  $('#search-next').disabled = search.offset + items.length >= search.total;
}

searchForm.addEventListener('submit', (event) => {
  event.preventDefault();
  runSearch(0);
});
$('#search-prev').addEventListener('click', () => runSearch(Math.max(0, search.offset - PAGE_SIZE)));
$('#search-next').addEventListener('click', () => runSearch(search.offset + PAGE_SIZE));

// --- booking dialog ------------------------------------------------------------------------

const bookDialog = $('#book-dialog');
const bookForm = $('#book-form');
let bookingService = null;

function openBooking(service) {
  if (pets.size === 0) {
    toast(_('Add a pet first, then book a sitter for it.'), 'error');
    openPetForm(null);
    return;
  }
  bookingService = service;
  clearErrors(bookForm);
  $('#book-summary').textContent = _('{service} · sitter {name} · {price} per hour', { service: SERVICE_LABEL[service.type] || service.type, name: service.sitter_name, price: money(service.price_per_hour) });
  $('#book-pet').replaceChildren(...[...pets.values()].map((p) => h('option', { value: p.pet_id, text: `${p.name} (${PET_LABEL[p.type] || p.type})` })));
  // The search's range when set, else tomorrow 10:00 to 12:00 where the user lives (their
  // zone, not the browser's).
  const range = searchRange();
  const start = range ? range.start.date : localDaysAhead(1, 10);
  const end = range ? range.end.date : new Date(start.getTime() + 2 * 3600 * 1000);
  bookForm.elements.start_time.value = toLocalInput(start);
  bookForm.elements.end_time.value = toLocalInput(end);
  updatePrice();
  showSitterMonth(service.sitter_id);
  bookDialog.showModal();
}

// The sitter's next 30 days, shown before the owner books.
async function showSitterMonth(sitterId) {
  const box = $('#book-month');
  box.replaceChildren(h('p', { class: 'muted', text: _('Loading the sitter’s calendar…') }));
  try {
    const availability = await loadAvailability(sitterId);
    if (bookingService?.sitter_id === sitterId) box.replaceChildren(monthView(availability));
  } catch {
    box.replaceChildren(h('p', { class: 'muted', text: _('The sitter’s calendar could not be loaded.') }));
  }
}

// The inputs hold wall times in the user's zone; the API gets them as RFC 3339 with that offset.
function bookingTimes() {
  const start = fromLocalInput(bookForm.elements.start_time.value);
  const end = fromLocalInput(bookForm.elements.end_time.value);
  return { start, end, valid: Boolean(start && end && end.date > start.date) };
}

// The same rule as the server: price per hour × hours, rounded to 2 places.
function updatePrice() {
  const { start, end, valid } = bookingTimes();
  const confirmButton = $('#book-confirm');
  if (!bookingService || !valid) {
    $('#book-hours').textContent = _('Choose an end after the start');
    $('#book-price').textContent = '—';
    confirmButton.disabled = true;
    return;
  }
  const hours = (end.date - start.date) / 3600000;
  const total = Math.round(Number(bookingService.price_per_hour) * hours * 100) / 100;
  $('#book-hours').textContent = _('{hours} h × {price}', { hours: decimal(hours), price: money(bookingService.price_per_hour) });
  $('#book-price').textContent = money(total);
  confirmButton.disabled = false;
}

bookForm.elements.start_time.addEventListener('input', updatePrice);
bookForm.elements.end_time.addEventListener('input', updatePrice);
$('#book-cancel').addEventListener('click', () => bookDialog.close());

bookForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors(bookForm);
  const { start, end, valid } = bookingTimes();
  if (!valid) return;
  const body = {
    sitter_id: bookingService.sitter_id,
    service_id: bookingService.service_id,
    pet_id: Number(bookForm.elements.pet_id.value),
    start_time: start.rfc3339,
    end_time: end.rfc3339,
  };
  await busy($('#book-confirm'), async () => {
    try {
      const created = await api('/api/bookings', { method: 'POST', body });
      bookDialog.close();
      toast(_('Booked! {price} — waiting for the sitter to confirm.', { price: money(created.total_price) }));
      await refreshBooking(created.booking_id, true);
    } catch (err) {
      showError(bookForm, err);
    }
  });
});

// --- bookings ------------------------------------------------------------------------------

const filter = $('#booking-filter');

async function loadBookings() {
  const { items } = await apiList(`/api/owners/${me.id}/bookings`, { query: { status: filter.value, limit: 100 } });
  bookings.clear();
  for (const b of items) bookings.set(b.booking_id, b);
  await names.resolve(items);
  renderBookings();
}

function actionsFor(b) {
  const actions = [h('a', { class: 'btn btn-secondary btn-sm', href: `/bookings/${b.booking_id}/chat`, text: _('Chat') })];
  if (b.status === 'pending' || b.status === 'confirmed') {
    actions.push(h('button', { type: 'button', class: 'btn btn-ghost btn-sm', text: pgettext('booking action', 'Cancel'), dataset: { action: 'cancel' }, onclick: () => cancelBooking(b) }));
  }
  if ((b.status === 'confirmed' || b.status === 'completed') && b.paid === false) {
    actions.push(h('button', { type: 'button', class: 'btn btn-primary btn-sm', text: _('Pay'), dataset: { action: 'pay' }, onclick: () => openPay(b) }));
  }
  if (b.status === 'completed' && b.reviewed === false) {
    actions.push(h('button', { type: 'button', class: 'btn btn-secondary btn-sm', text: _('Leave a review'), dataset: { action: 'review' }, onclick: () => openReview(b) }));
  }
  return actions;
}

function noteFor(b) {
  if (b.status === 'pending') return _('Waiting for the sitter to confirm.');
  if (b.paid === true) return _('Paid.');
  if (b.reviewed === true) return _('Reviewed — thank you!');
  return null;
}

function renderBookings() {
  const list = $('#booking-list');
  const rows = [...bookings.values()].filter((b) => !filter.value || b.status === filter.value);
  list.replaceChildren(...rows.map((b) => card(b)));
  $('#bookings-empty').hidden = rows.length > 0;
  for (const b of rows) loadExtras(b);
}

// Whether a booking is paid or reviewed decides which buttons it gets; fetched once per booking.
async function loadExtras(b) {
  if ((b.status === 'confirmed' || b.status === 'completed') && b.paid === undefined) {
    try {
      const { items } = await apiList(`/api/bookings/${b.booking_id}/payments`);
      b.paid = items.some((p) => p.status === 'paid');
    } catch {
      b.paid = null;
    }
    replaceCard(b);
  }
  if (b.status === 'completed' && b.reviewed === undefined) {
    try {
      await api(`/api/bookings/${b.booking_id}/review`);
      b.reviewed = true;
    } catch (err) {
      b.reviewed = err.status === 404 ? false : null;
    }
    replaceCard(b);
  }
}

function card(b) {
  return bookingCard(b, { who: _('Sitter: {name}', { name: names.sitterName(b.sitter_id, b) }), names, actions: actionsFor(b), note: noteFor(b) });
}

function replaceCard(b, fresh = false) {
  const old = document.querySelector(`.booking[data-booking-id="${b.booking_id}"]`);
  const node = card(b);
  if (fresh) node.classList.add('is-new');
  if (old) old.replaceWith(node);
  else if (!filter.value || filter.value === b.status) {
    $('#booking-list').prepend(node);
    $('#bookings-empty').hidden = true;
  }
}

async function refreshBooking(id, fresh = false) {
  const b = await api(`/api/bookings/${id}`);
  applyBooking(b, fresh);
}

async function applyBooking(b, fresh = false) {
  const known = bookings.get(b.booking_id);
  if (known && known.status === b.status) {
    b.paid = known.paid;
    b.reviewed = known.reviewed;
  }
  bookings.set(b.booking_id, b);
  await names.resolve([b]);
  replaceCard(b, fresh);
  loadExtras(b);
}

async function cancelBooking(b) {
  const ok = await confirmAction(_('Cancel this booking?'), _('The sitter is notified right away. A paid booking is refunded.'), _('Cancel booking'));
  if (!ok) return;
  try {
    applyBooking(await api(`/api/bookings/${b.booking_id}/cancel`, { method: 'POST' }));
    toast(_('Booking cancelled'));
  } catch (err) {
    toast(err.message, 'error');
  }
}

filter.addEventListener('change', renderBookings);

// --- pay and review ------------------------------------------------------------------------

const payDialog = $('#pay-dialog');
const payForm = $('#pay-form');
let payingFor = null;

function openPay(b) {
  payingFor = b;
  clearErrors(payForm);
  $('#pay-amount').textContent = money(b.total_price);
  payDialog.showModal();
}

$('#pay-cancel').addEventListener('click', () => payDialog.close());
payForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors(payForm);
  try {
    await api(`/api/bookings/${payingFor.booking_id}/payments`, { method: 'POST', body: { method: payForm.elements.method.value } });
    payingFor.paid = true;
    replaceCard(payingFor);
    payDialog.close();
    toast(_('Paid {price}', { price: money(payingFor.total_price) }));
  } catch (err) {
    if (err.code === 'conflict' && !err.details.status) err.message = _('This booking is already paid.');
    showError(payForm, err);
  }
});

const reviewDialog = $('#review-dialog');
const reviewForm = $('#review-form');
let reviewing = null;

function openReview(b) {
  reviewing = b;
  clearErrors(reviewForm);
  reviewForm.reset();
  reviewDialog.showModal();
}

$('#review-cancel').addEventListener('click', () => reviewDialog.close());
reviewForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors(reviewForm);
  const body = {
    booking_id: reviewing.booking_id,
    rating: Number(reviewForm.elements.rating.value),
    comment: reviewForm.elements.comment.value,
  };
  try {
    await api('/api/reviews', { method: 'POST', body });
    reviewing.reviewed = true;
    replaceCard(reviewing);
    reviewDialog.close();
    toast(_('Thank you for your review!'));
  } catch (err) {
    showError(reviewForm, err);
  }
});

// --- live ----------------------------------------------------------------------------------

const live = new LiveSocket();
live.on('booking', (frame) => {
  const b = frame.booking;
  if (!b || b.owner_id !== me.id) return;
  const before = bookings.get(b.booking_id);
  applyBooking(b, true);
  if (before && before.status !== b.status) {
    toast(_('Booking #{id}: {status}', { id: b.booking_id, status: STATUS_LABEL[b.status] || b.status }));
  }
});
// After a reconnect, anything that changed while offline is read again.
let firstOpen = true;
live.onOpen(() => {
  if (!firstOpen) loadBookings();
  firstOpen = false;
});

await startPage([loadPets(), runSearch(0)]);
await startPage([loadBookings()]);
document.body.dataset.ready = 'true';

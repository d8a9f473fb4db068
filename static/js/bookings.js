// Booking cards shared by the owner and sitter dashboards, and the names they show.
import { api } from './api.js';
import { badge, dateRange, h, money, SERVICE_LABEL } from './dom.js';
import { _ } from './i18n.js';

// Bookings carry ids only; names come from fields the API may add, else from public reads, cached.
export class BookingNames {
  constructor() {
    this.pets = new Map();
    this.sitters = new Map();
    this.owners = new Map();
    this.services = new Map();
  }

  async resolve(bookings) {
    const jobs = [];
    for (const b of bookings) {
      if (b.pet_name) this.pets.set(b.pet_id, b.pet_name);
      if (b.sitter_name) this.sitters.set(b.sitter_id, b.sitter_name);
      if (b.owner_name) this.owners.set(b.owner_id, b.owner_name);
      if (b.service_type) this.services.set(b.service_id, b.service_type);
      if (b.service_id && !this.services.has(b.service_id)) {
        this.services.set(b.service_id, null);
        jobs.push(api(`/api/services/${b.service_id}`).then((s) => this.services.set(s.service_id, s.type)).catch(() => {}));
      }
      if (b.pet_id && !this.pets.has(b.pet_id)) {
        this.pets.set(b.pet_id, null);
        jobs.push(api(`/api/pets/${b.pet_id}`).then((p) => this.pets.set(p.pet_id, p.name)).catch(() => {}));
      }
    }
    await Promise.all(jobs);
  }

  serviceLabel(b) {
    const type = this.services.get(b.service_id) || b.service_type;
    return type ? SERVICE_LABEL[type] || type : _('Booking');
  }

  petName(b) {
    return this.pets.get(b.pet_id) || b.pet_name || null;
  }

  sitterName(id, b) {
    return b?.sitter_name || b?.sitter?.full_name || this.sitters.get(id) || _('sitter #{id}', { id });
  }

  ownerName(id, b) {
    return b?.owner_name || b?.owner?.full_name || this.owners.get(id) || _('owner #{id}', { id });
  }
}

// `who` is the other participant's line ("Sitter: Daniyar").
export function bookingCard(b, { who, names, actions, note }) {
  const pet = names.petName(b);
  const service = names.serviceLabel(b);
  const title = pet ? _('{service} for {pet}', { service, pet }) : service;
  return h('li', { class: 'booking', dataset: { bookingId: b.booking_id, status: b.status } },
    h('div', { class: 'booking-main' },
      h('p', { class: 'booking-title', text: title }),
      h('p', { class: 'booking-meta', text: who }),
      h('p', { class: 'booking-meta', text: dateRange(b.start_time, b.end_time) })),
    h('div', { class: 'booking-side' },
      badge(b.status),
      h('span', { class: 'booking-price', text: money(b.total_price) }),
      h('small', { class: 'muted', text: `#${b.booking_id}` })),
    note ? h('p', { class: 'booking-note', text: note }) : null,
    h('div', { class: 'booking-actions' }, actions));
}

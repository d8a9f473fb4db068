// Availability calendar: a sitter's month of days, the weekly schedule editor and time off
// (sitter dashboard), and the month view owners see before booking.
import { api } from './api.js';
import { $, h, busy, toast } from './dom.js';
import { _, fromLocalInput, toLocalInput } from './i18n.js';

export const WEEKDAY_LABEL = [_('Monday'), _('Tuesday'), _('Wednesday'), _('Thursday'), _('Friday'), _('Saturday'), _('Sunday')];
export const DAY_STATE_LABEL = {
  free: _('Free'),
  partly_booked: _('Partly booked'),
  booked: _('Booked'),
  off: _('Day off'),
};

export function loadAvailability(sitterId, query = {}) {
  const params = new URLSearchParams(query).toString();
  return api(`/api/sitters/${sitterId}/availability${params ? `?${params}` : ''}`);
}

// A month-like grid of the window's days, Monday first; each day names its state.
export function monthView(availability) {
  const cells = [];
  const first = availability.days[0];
  if (first) {
    const lead = (new Date(`${first.date}T00:00:00Z`).getUTCDay() + 6) % 7;
    for (let i = 0; i < lead; i += 1) cells.push(h('span', { class: 'day day-blank', 'aria-hidden': 'true' }));
  }
  for (const d of availability.days) {
    const label = DAY_STATE_LABEL[d.state] || d.state;
    cells.push(h('span', {
      class: `day day-${d.state}`,
      dataset: { date: d.date, state: d.state },
      title: `${d.date}: ${label}`,
      'aria-label': `${d.date}: ${label}`,
    }, h('span', { class: 'day-num', text: String(Number(d.date.slice(8, 10))) })));
  }
  return h('div', { class: 'month' },
    h('div', { class: 'month-head', 'aria-hidden': 'true' }, ...WEEKDAY_LABEL.map((w) => h('span', { text: w.slice(0, 2) }))),
    h('div', { class: 'month-grid', role: 'list' }, ...cells),
    h('p', { class: 'month-legend muted' }, ...Object.entries(DAY_STATE_LABEL).map(([state, label]) =>
      h('span', { class: `legend legend-${state}`, text: label }))),
    h('p', { class: 'muted', text: _('Times in the sitter’s time zone: {zone}', { zone: availability.timezone }) }));
}

// --- sitter: weekly schedule and time off ----------------------------------------------------

function intervalRow(interval = { start: '09:00', end: '18:00' }) {
  const row = h('span', { class: 'interval' },
    h('input', { type: 'time', class: 'interval-start', value: interval.start, 'aria-label': _('From') }),
    h('span', { text: '–' }),
    h('input', { type: 'time', class: 'interval-end', value: interval.end === '24:00' ? '23:59' : interval.end, 'aria-label': _('Until') }),
    h('button', { type: 'button', class: 'btn btn-ghost btn-sm interval-remove', text: '×', 'aria-label': _('Remove these hours'), onclick: () => row.remove() }));
  return row;
}

function weekGrid(weekly) {
  return h('div', { class: 'week-grid', id: 'week-grid' }, ...WEEKDAY_LABEL.map((label, weekday) => {
    const list = h('span', { class: 'intervals' }, ...weekly.filter((i) => i.weekday === weekday).map((i) => intervalRow(i)));
    return h('div', { class: 'week-day', dataset: { weekday } },
      h('span', { class: 'week-day-name', text: label }),
      list,
      h('button', { type: 'button', class: 'btn btn-ghost btn-sm interval-add', text: _('Add hours'), onclick: () => list.append(intervalRow()) }));
  }));
}

function readWeekGrid() {
  const weekly = [];
  for (const day of document.querySelectorAll('#week-grid .week-day')) {
    for (const row of day.querySelectorAll('.interval')) {
      let end = row.querySelector('.interval-end').value;
      if (end === '23:59') end = '24:00';
      weekly.push({ weekday: Number(day.dataset.weekday), start: row.querySelector('.interval-start').value, end });
    }
  }
  return weekly;
}

export class SitterCalendar {
  constructor(sitterId) {
    this.sitterId = sitterId;
    $('#schedule-form').addEventListener('submit', (event) => { event.preventDefault(); this.saveSchedule(); });
    $('#time-off-form').addEventListener('submit', (event) => { event.preventDefault(); this.addTimeOff(); });
  }

  async load() {
    const a = await loadAvailability(this.sitterId);
    $('#schedule-zone').value = a.timezone;
    $('#week-grid').replaceWith(weekGrid(a.weekly));
    $('#sitter-month').replaceChildren(monthView(a));
    $('#time-off-list').replaceChildren(...(a.time_off || []).map((t) =>
      h('li', { class: 'time-off', dataset: { timeOffId: t.time_off_id } },
        h('span', { text: `${toLocalInput(new Date(t.start_time)).replace('T', ' ')} – ${toLocalInput(new Date(t.end_time)).replace('T', ' ')}` }),
        h('button', { type: 'button', class: 'btn btn-danger-outline btn-sm', text: _('Delete'), onclick: () => this.deleteTimeOff(t) }))));
    $('#time-off-empty').hidden = (a.time_off || []).length > 0;
  }

  async saveSchedule() {
    const errorBox = $('#schedule-error');
    errorBox.hidden = true;
    await busy($('#schedule-save'), async () => {
      try {
        const done = await api(`/api/sitters/${this.sitterId}/availability`, {
          method: 'PUT', body: { timezone: $('#schedule-zone').value.trim(), weekly: readWeekGrid() },
        });
        const ids = done.conflicts.map((id) => `#${id}`).join(', ');
        toast(ids ? _('Schedule saved. Bookings outside it: {ids}', { ids }) : _('Schedule saved'));
        await this.load();
      } catch (err) {
        errorBox.textContent = err.message;
        errorBox.hidden = false;
      }
    });
  }

  async addTimeOff() {
    const form = $('#time-off-form');
    const errorBox = $('#time-off-error');
    errorBox.hidden = true;
    const start = fromLocalInput(form.elements.start_time.value);
    const end = fromLocalInput(form.elements.end_time.value);
    if (!start || !end) {
      errorBox.textContent = _('Choose when the time off starts and ends');
      errorBox.hidden = false;
      return;
    }
    await busy($('#time-off-add'), async () => {
      try {
        await api(`/api/sitters/${this.sitterId}/time-off`, { method: 'POST', body: { start_time: start.rfc3339, end_time: end.rfc3339 } });
        toast(_('Time off added'));
        form.reset();
        await this.load();
      } catch (err) {
        errorBox.textContent = err.message;
        errorBox.hidden = false;
      }
    });
  }

  async deleteTimeOff(t) {
    try {
      await api(`/api/sitters/${this.sitterId}/time-off/${t.time_off_id}`, { method: 'DELETE' });
      toast(_('Time off removed'));
      await this.load();
    } catch (err) {
      toast(err.message, 'error');
    }
  }
}

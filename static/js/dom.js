// DOM helpers. User data only ever enters the page as text (textContent), never as markup.
import { _, decimal, fixed, formatRange, formatTime, money, ngettext, pgettext } from './i18n.js';

export { money, decimal };

export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

// Times in the page's zone and language (see i18n.js).
export const dateTime = (iso) => formatTime(iso, 'datetime');
export const dateOnly = (iso) => formatTime(iso, 'date');
export const timeOnly = (iso) => formatTime(iso, 'time');
export const dayLabel = (iso) => formatTime(iso, 'day');
export const dateRange = formatRange;

// The API's enumerations in the page's language (the templates have the same in _labels.html).
export const SERVICE_LABEL = { walking: _('Walking'), boarding: _('Boarding'), 'home-care': _('Home care') };
export const PET_LABEL = { dog: _('Dog'), cat: _('Cat'), rodent: _('Rodent') };
export const STATUS_LABEL = {
  pending: _('Pending'), confirmed: _('Confirmed'), completed: _('Completed'), cancelled: _('Cancelled'),
};
export const SITTER_STATUS_LABEL = {
  pending: pgettext('sitter status', 'Pending'),
  approved: pgettext('sitter status', 'Approved'),
  rejected: pgettext('sitter status', 'Rejected'),
};
export const ROLE_LABEL = { owner: _('Pet owner'), sitter: _('Pet sitter'), admin: _('Administrator') };

export function badge(status, labels = STATUS_LABEL) {
  return h('span', { class: `badge badge-${status}`, text: labels[status] || status, dataset: { status } });
}

export function stars(rating, count) {
  const value = Number(rating || 0);
  const full = Math.round(value);
  const shown = fixed(value, 1);
  return h(
    'span',
    {
      class: 'stars',
      'aria-label': count
        ? ngettext('Rated {rating} of 5 from {n} review', 'Rated {rating} of 5 from {n} reviews', count, { rating: shown })
        : _('No reviews yet'),
    },
    count ? '★'.repeat(full) + '☆'.repeat(5 - full) : '☆☆☆☆☆',
    ' ',
    h('small', { text: count ? `${shown} (${count})` : _('new') }),
  );
}

export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const item = h('div', { class: `toast toast-${kind}`, text: message });
  box.append(item);
  while (box.children.length > 3) box.firstElementChild.remove();
  setTimeout(() => item.remove(), 4500);
}

// Server-side validation errors land next to the field they name (details.field), else on the form.
export function clearErrors(form) {
  for (const el of form.querySelectorAll('[data-error-for]')) {
    el.hidden = true;
    el.textContent = '';
  }
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

export function showError(form, err) {
  const field = err.field && form.querySelector(`[data-error-for="${CSS.escape(err.field)}"]`);
  const target = field || form.querySelector('[data-error-for="form"]');
  if (!target) {
    toast(err.message, 'error');
    return;
  }
  target.textContent = err.message;
  target.hidden = false;
  const input = field && form.elements.namedItem(err.field);
  if (input && input.setAttribute) {
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  }
}

// A confirmation step in the shared dialog; resolves true when confirmed.
export function confirmAction(title, message, confirmLabel = _('Delete')) {
  const dialog = document.getElementById('confirm-dialog');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-message').textContent = message;
  document.getElementById('confirm-ok').textContent = confirmLabel;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'confirm'), { once: true });
  });
}

export function formJson(form, fields) {
  const out = {};
  for (const name of fields) {
    const input = form.elements.namedItem(name);
    if (!input) continue;
    out[name] = input.value;
  }
  return out;
}

export async function busy(button, work) {
  button.disabled = true;
  try {
    return await work();
  } finally {
    button.disabled = false;
  }
}

// The first loads of a page: a failing one is reported once, and the rest of the page still works.
export async function startPage(loads) {
  const results = await Promise.allSettled(loads);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) toast(_('Some data could not be loaded: {reason}', { reason: failed.reason?.message || failed.reason }), 'error');
}

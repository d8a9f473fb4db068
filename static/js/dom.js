// DOM helpers. User data only ever enters the page as text (textContent), never as markup.

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

const moneyFormat = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
export const money = (value) => `${moneyFormat.format(Number(value || 0))} ₸`;

const dateTimeFormat = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'short' });
const timeFormat = new Intl.DateTimeFormat('en-GB', { timeStyle: 'short' });
const dayFormat = new Intl.DateTimeFormat('en-GB', { weekday: 'short', day: 'numeric', month: 'short' });
export const dateTime = (iso) => dateTimeFormat.format(new Date(iso));
const dateFormat = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium' });
export const dateOnly = (iso) => dateFormat.format(new Date(iso));
export const timeOnly = (iso) => timeFormat.format(new Date(iso));
export const dayLabel = (iso) => dayFormat.format(new Date(iso));

export function dateRange(startIso, endIso) {
  const start = new Date(startIso);
  const end = new Date(endIso);
  const sameDay = start.toDateString() === end.toDateString();
  return sameDay
    ? `${dateTimeFormat.format(start)} – ${timeFormat.format(end)}`
    : `${dateTimeFormat.format(start)} – ${dateTimeFormat.format(end)}`;
}

export const SERVICE_LABEL = { walking: 'Walking', boarding: 'Boarding', 'home-care': 'Home care' };
export const PET_LABEL = { dog: 'Dog', cat: 'Cat', rodent: 'Rodent' };
export const capitalize = (s) => (s ? s[0].toUpperCase() + s.slice(1) : '');

export function badge(status) {
  return h('span', { class: `badge badge-${status}`, text: capitalize(status), dataset: { status } });
}

export function stars(rating, count) {
  const value = Number(rating || 0);
  const full = Math.round(value);
  return h(
    'span',
    { class: 'stars', 'aria-label': count ? `Rated ${value.toFixed(1)} of 5 from ${count} reviews` : 'No reviews yet' },
    count ? '★'.repeat(full) + '☆'.repeat(5 - full) : '☆☆☆☆☆',
    ' ',
    h('small', { text: count ? `${value.toFixed(1)} (${count})` : 'new' }),
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
export function confirmAction(title, message, confirmLabel = 'Delete') {
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
  if (failed) toast(`Some data could not be loaded: ${failed.reason?.message || failed.reason}`, 'error');
}

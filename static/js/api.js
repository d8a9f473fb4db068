// Fetch wrapper for the REST API: same-origin cookie, CSRF header on writes, JSON errors as ApiError.
// The API's errors carry an English sentence and a stable code; the page shows its own words,
// chosen by the code (and the field, reason or details the error names).
import { _, formatRange, ngettext } from './i18n.js';
import { STATUS_LABEL } from './dom.js';

const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content ?? '';

const REASON_TEXT = {
  missing: () => _('Fill in this field.'),
  string_too_short: () => _('This is too short.'),
  string_too_long: () => _('This is too long.'),
  too_long: () => _('This is too long.'),
  less_than_equal: () => _('This value is too large.'),
  less_than: () => _('This value is too large.'),
  greater_than_equal: () => _('This value is too small.'),
  greater_than: () => _('This value is too small.'),
  int_type: () => _('Enter a whole number.'),
  int_parsing: () => _('Enter a whole number.'),
  int_from_float: () => _('Enter a whole number.'),
  decimal_parsing: () => _('Enter a number.'),
  decimal_type: () => _('Enter a number.'),
  decimal_max_places: () => _('Use at most two decimal places.'),
  literal_error: () => _('Choose one of the options.'),
  enum: () => _('Choose one of the options.'),
  string_pattern_mismatch: () => _('Check the format of this value.'),
};

// Fields whose errors say more than the reason alone (also those raised without a reason).
const FIELD_TEXT = {
  phone: () => _('Enter a mobile or landline number, like 8 701 123 45 67 or +7 701 123 45 67'),
  start_time: () => _('Choose a start time in the future.'),
  end_time: () => _('Choose an end after the start, at most 30 days later.'),
  time_zone: () => _('Choose a time zone from the list.'),
};

function validationText(field, reason) {
  if (field && FIELD_TEXT[field]) return FIELD_TEXT[field]();
  if (reason && REASON_TEXT[reason]) return REASON_TEXT[reason]();
  return _('Check this field and try again.');
}

function conflictText(details) {
  if (details.clash_start && details.clash_end) {
    return _('The sitter is already booked at {range}.', { range: formatRange(details.clash_start, details.clash_end) });
  }
  if (details.limit !== undefined) {
    return ngettext(
      'You already have {n} booking waiting for an answer; at most {limit} may wait at once.',
      'You already have {n} bookings waiting for an answer; at most {limit} may wait at once.',
      Number(details.pending), { limit: details.limit },
    );
  }
  if (details.booking_id) {
    return _('Booking #{id} is confirmed at that time; cancel it first.', { id: details.booking_id });
  }
  if (details.status) {
    return _('This booking is now “{status}”. Reload the page to see what changed.', { status: STATUS_LABEL[details.status] || details.status });
  }
  return _('This was changed meanwhile. Reload the page and try again.');
}

// The page's own words for an API error (status 0: the server could not be reached).
export function describeError(status, body, retryAfter) {
  const details = body?.details || {};
  // 409 `unavailable`: the booking does not fit the sitter's calendar (503 is the server's).
  if (status === 409 && body?.code === 'unavailable') {
    return details.reason === 'time_off'
      ? _('The sitter is away then. Pick other dates from the sitter’s calendar.')
      : _('The sitter does not work at these hours. Pick a time from the sitter’s calendar.');
  }
  switch (status === 0 ? 'network' : body?.code) {
    case 'network': return _('Cannot reach the server. Check your connection and try again.');
    case 'validation_error': return validationText(details.field, details.reason);
    case 'unauthorized': return _('Your session has expired. Sign in again.');
    case 'forbidden': return _('You are not allowed to do this.');
    case 'not_found': return _('This no longer exists; it may have been deleted.');
    case 'conflict': return conflictText(details);
    case 'rate_limited': {
      const wait = Number(retryAfter || details.retry_after || 0);
      return wait
        ? ngettext('Too many attempts. Try again in {n} second.', 'Too many attempts. Try again in {n} seconds.', wait)
        : _('Too many attempts. Try again a little later.');
    }
    case 'payload_too_large': return _('This is too large to send.');
    case 'unavailable': return _('The service is briefly unavailable. Try again in a moment.');
    default: return _('Something went wrong on our side. Try again in a moment.');
  }
}

export class ApiError extends Error {
  constructor(status, body, retryAfter = null) {
    super(describeError(status, body, retryAfter));
    this.status = status;
    this.code = status === 0 ? 'network' : body?.code || 'error';
    this.field = body?.details?.field || null;
    this.details = body?.details || {};
    this.serverMessage = body?.error || '';
    this.retryAfter = retryAfter;
  }
}

function buildUrl(path, query) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, value);
  }
  return url;
}

async function request(path, { method = 'GET', body, query } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = csrfToken;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(buildUrl(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    });
  } catch {
    throw new ApiError(0, null);
  }
  if (resp.status === 401) {
    // The session cookie expired: sign in again and come back here.
    const login = document.body.dataset.loginUrl || '/login';
    window.location.assign(`${login}?next=${encodeURIComponent(window.location.pathname)}`);
    throw new ApiError(401, { code: 'unauthorized' });
  }
  const data = resp.status === 204 ? null : await resp.json().catch(() => null);
  if (!resp.ok) throw new ApiError(resp.status, data, resp.headers.get('Retry-After'));
  return { data, total: Number(resp.headers.get('X-Total-Count') ?? NaN) };
}

export async function api(path, options) {
  return (await request(path, options)).data;
}

// A list endpoint: the rows and the X-Total-Count header.
export async function apiList(path, options) {
  const { data, total } = await request(path, options);
  return { items: data || [], total: Number.isFinite(total) ? total : (data || []).length };
}

export const me = {
  id: Number(document.body.dataset.userId || 0),
  role: document.body.dataset.role || '',
};

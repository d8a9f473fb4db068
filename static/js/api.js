// Fetch wrapper for the REST API: same-origin cookie, CSRF header on writes, JSON errors as ApiError.

const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content ?? '';

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error || `Request failed (${status})`);
    this.status = status;
    this.code = body?.code || 'error';
    this.field = body?.details?.field || null;
    this.retryAfter = null;
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
    throw new ApiError(0, { error: 'Cannot reach the server. Check your connection and try again.' });
  }
  if (resp.status === 401) {
    // The session cookie expired: sign in again and come back here.
    const login = document.body.dataset.loginUrl || '/login';
    window.location.assign(`${login}?next=${encodeURIComponent(window.location.pathname)}`);
    throw new ApiError(401, { error: 'Your session has expired' });
  }
  const data = resp.status === 204 ? null : await resp.json().catch(() => null);
  if (!resp.ok) {
    const err = new ApiError(resp.status, data);
    err.retryAfter = resp.headers.get('Retry-After');
    throw err;
  }
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

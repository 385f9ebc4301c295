// The management API of rpi-deployd (docs/api.md), called with the session cookie.
// Every path the dashboard uses is in this file.

export const API = '/api/v1';

export class APIError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.field = body && body.field;
  }
}

function toLogin() {
  const next = location.pathname + location.search + location.hash;
  location.assign(`/login?next=${encodeURIComponent(next)}`);
}

// request(method, path, {query, body, raw}) → parsed JSON (or text for non-JSON answers).
export async function request(method, path, opts = {}) {
  const url = new URL(path.startsWith('/') ? path : `${API}/${path}`, location.origin);
  for (const [k, v] of Object.entries(opts.query || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const headers = { Accept: 'application/json' };
  let body = opts.body;
  if (body !== undefined && !(body instanceof Blob) && !(body instanceof FormData) && typeof body !== 'string') {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(body);
  } else if (opts.contentType) {
    headers['Content-Type'] = opts.contentType;
  }
  const res = await fetch(url, { method, headers, body, credentials: 'same-origin' });
  if (res.status === 401) {
    toLogin();
    throw new APIError(401, { error: 'login required' });
  }
  const type = res.headers.get('Content-Type') || '';
  const data = type.includes('json') ? await res.json().catch(() => null) : await res.text();
  if (!res.ok) throw new APIError(res.status, typeof data === 'object' ? data : { error: data || `HTTP ${res.status}` });
  return data;
}

export const get = (p, query) => request('GET', p, { query });
export const post = (p, body) => request('POST', p, { body: body ?? {} });
export const put = (p, body) => request('PUT', p, { body: body ?? {} });
export const patch = (p, body) => request('PATCH', p, { body: body ?? {} });
export const del = (p) => request('DELETE', p);

// list(x) accepts either a bare array or an object wrapping one ({items: […]} or
// {venues: […]}), so pages read lists one way.
export function list(x) {
  if (Array.isArray(x)) return x;
  if (x && typeof x === 'object') {
    for (const v of Object.values(x)) if (Array.isArray(v)) return v;
  }
  return [];
}

export const session = {
  me: () => get(`${API}/me`),
  logout: () => post(`${API}/logout`),
};

export function url(path, query) {
  const u = new URL(`${API}/${path}`, location.origin);
  for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, v);
  return u.pathname + u.search;
}

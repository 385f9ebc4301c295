// Deployment history with filters and CSV export.

import { get, list, url } from '../api.js';
import { h, clear, table, when, pill, bytes, duration, field, formValues, download } from '../ui.js';
import { lookups, venueOptions, productOptions } from './common.js';

const KEYS = ['venue', 'product', 'state', 'batch', 'q', 'since', 'until'];

function nextDay(day) {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
}

export async function render(view, { query }) {
  const f = Object.fromEntries(KEYS.map((k) => [k, query.get(k) || '']));
  // Dates are days; the API compares RFC 3339 times as text, so "until" is the next day.
  const api = { ...f, until: f.until ? nextDay(f.until) : '' };
  const [lk, deps] = await Promise.all([lookups(), get('deployments', { ...api, limit: 1000 })]);
  const rows = list(deps);
  const form = h('form.inline', { id: 'history-filter', onsubmit: (ev) => {
    ev.preventDefault();
    location.hash = `#/deployments?${new URLSearchParams(Object.entries(formValues(form)).filter(([, v]) => v))}`;
  } },
  field('venue', 'Venue', { options: venueOptions(lk.venues, 'all'), value: f.venue }),
  field('product', 'Product', { options: productOptions(lk.products, 'all'), value: f.product }),
  field('state', 'Result', { options: [['', 'all'], ['open', 'in progress'], ['verified', 'verified'], ['failed', 'failed'], ['abandoned', 'abandoned']], value: f.state }),
  field('batch', 'Batch #', { type: 'number', value: f.batch, min: 1 }),
  field('q', 'Hostname or serial', { value: f.q }),
  field('since', 'From', { type: 'date', value: f.since }),
  field('until', 'To', { type: 'date', value: f.until }),
  h('button', { type: 'submit' }, 'Filter'));
  const csv = () => download(url('deployments', { ...api, format: 'csv', limit: 100000 }));
  clear(view).append(h('section.panel',
    h('h2', 'Deployment history', h('span.muted', `${rows.length} shown`), h('span.spacer'),
      h('button', { id: 'history-csv', onclick: csv }, 'Export CSV')),
    h('div.toolbar', form),
    table([
      { key: 'id', label: '#', num: true },
      { key: 'started_at', label: 'Started', render: (d) => when(d.started_at) },
      { key: 'hostname', label: 'Hostname', render: (d) => h('strong.mono', d.hostname) },
      { key: 'serial', label: 'Serial', render: (d) => h('a.mono', { href: `#/boards/${d.serial}` }, d.serial) },
      { key: 'venue', label: 'Venue' },
      { key: 'product', label: 'Product' },
      { key: 'batch_id', label: 'Batch', num: true, render: (d) => d.batch_id || '' },
      { key: 'image', label: 'Image' },
      { key: 'state', label: 'Result', render: (d) => pill(d.state === 'open' ? d.phase : d.state, d.state) },
      { key: 'error', label: 'Cause', render: (d) => d.error ? h('span.error', `${d.error_phase}: ${d.error}`) : '' },
      { key: 'bytes_written', label: 'Written', num: true, render: (d) => d.bytes_written ? bytes(d.bytes_written) : '' },
      { key: 'duration_ms', label: 'Took', num: true, render: (d) => d.duration_ms ? duration(d.duration_ms / 1000) : '' },
    ], rows, { empty: 'No deployment matches.' })));
}

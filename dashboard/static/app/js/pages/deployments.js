// Deployment history with filters and CSV export.

import { get, post, list, url } from '../api.js';
import { h, clear, table, when, pill, bytes, duration, field, formValues, download, dialog } from '../ui.js';
import { lookups, venueOptions, productOptions } from './common.js';
import { currentSite, siteQuery } from '../site.js';

const KEYS = ['venue', 'product', 'state', 'batch', 'q', 'since', 'until'];

function nextDay(day) {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
}

export async function render(view, { args, query }) {
  if (args[0]) return detail(view, args[0]);
  const f = Object.fromEntries(KEYS.map((k) => [k, query.get(k) || '']));
  // Dates are days; the API compares RFC 3339 times as text, so "until" is the next day.
  const api = { ...f, until: f.until ? nextDay(f.until) : '', ...siteQuery() };
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
    h('h2', 'Deployment history', h('span.muted', `${rows.length} shown${currentSite() ? ` at site ${currentSite()}` : ''}`), h('span.spacer'),
      h('button', { id: 'history-csv', onclick: csv }, 'Export CSV')),
    h('div.toolbar', form),
    table([
      { key: 'id', label: '#', num: true },
      { key: 'started_at', label: 'Started', render: (d) => when(d.started_at) },
      { key: 'hostname', label: 'Hostname', render: (d) => h('strong.mono', d.hostname) },
      { key: 'serial', label: 'Serial', render: (d) => h('a.mono', { href: `#/boards/${d.serial}` }, d.serial) },
      { key: 'venue', label: 'Venue' },
      { key: 'product', label: 'Product' },
      { key: 'site', label: 'Site' },
      { key: 'batch_id', label: 'Batch', num: true, render: (d) => d.batch_id || '' },
      { key: 'image', label: 'Image' },
      { key: 'state', label: 'Result', render: (d) => pill(d.state === 'open' ? d.phase : d.state, d.state) },
      { key: 'error', label: 'Cause', render: (d) => d.error ? h('span.error', `${d.error_phase}: ${d.error}`) : '' },
      { key: 'bytes_written', label: 'Written', num: true, render: (d) => d.bytes_written ? bytes(d.bytes_written) : '' },
      { key: 'duration_ms', label: 'Took', num: true, render: (d) => d.duration_ms ? duration(d.duration_ms / 1000) : '' },
    ], rows, { empty: 'No deployment matches.', onRow: (d) => { location.hash = `#/deployments/${d.id}`; } })));
}

// detail shows one deployment with every phase and its time.
async function detail(view, id) {
  const d = await get(`deployments/${id}`);
  const phases = d.phases || [];
  const t0 = Date.parse(d.started_at);
  const abandon = () => dialog(`Abandon deployment #${d.id}`, [
    h('p', `${d.hostname} on board ${d.serial} will be marked abandoned; the board keeps its name and starts over on its next hello.`),
    field('reason', 'Reason', { required: true, placeholder: 'board pulled from the rack' }),
  ], 'Abandon', async (v) => {
    await post(`deployments/${d.id}/abandon`, { reason: v.reason });
    detail(view, id);
  });
  clear(view).append(h('section.panel',
    h('h2', h('a', { href: '#/deployments' }, 'History'), ` / #${d.id} `, h('span.mono', d.hostname), pill(d.state === 'open' ? d.phase : d.state, d.state),
      h('span.spacer'), d.state === 'open' ? h('button.danger', { onclick: abandon }, 'Abandon') : null),
    h('dl.kv',
      h('dt', 'Board'), h('dd', h('a.mono', { href: `#/boards/${d.serial}` }, d.serial), d.mac ? h('span.muted.mono', ` ${d.mac}`) : null),
      h('dt', 'Venue · product'), h('dd', `${d.venue} · ${d.product}`),
      h('dt', 'Site'), h('dd', d.site || '—'),
      h('dt', 'Batch'), h('dd', d.batch_id ? h('a', { href: `#/deployments?batch=${d.batch_id}` }, `#${d.batch_id}`) : '—'),
      h('dt', 'Image'), h('dd.mono', d.image),
      h('dt', 'Started'), h('dd', when(d.started_at)),
      h('dt', 'Finished'), h('dd', d.finished_at ? `${when(d.finished_at)} (${duration((Date.parse(d.finished_at) - t0) / 1000)})` : '—'),
      d.error ? [h('dt', 'Cause'), h('dd.error', `${d.error_phase}: ${d.error}`)] : null,
      d.sha256 ? [h('dt', 'SHA256 read back'), h('dd.mono', d.sha256)] : null,
      h('dt', 'Written · fetched'), h('dd', `${bytes(d.bytes_written)} · ${bytes(d.bytes_fetched)}`)),
    h('h3', 'Phases'),
    table([
      { key: 'at', label: 'When', render: (p) => when(p.at) },
      { key: 'offset', label: '+', num: true, render: (p) => duration((Date.parse(p.at) - t0) / 1000) },
      { key: 'phase', label: 'Phase', render: (p) => h('strong', p.phase) },
      { key: 'bytes', label: 'Bytes', num: true, render: (p) => p.bytes ? bytes(p.bytes) : '' },
      { key: 'message', label: 'Message', render: (p) => h('span.mono', p.message || '') },
    ], phases, { empty: 'No phase recorded yet.' })));
}

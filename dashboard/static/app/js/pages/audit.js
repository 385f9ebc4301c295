// The audit log of operator actions, newest first.

import { get, list } from '../api.js';
import { h, clear, table, when, field, formValues } from '../ui.js';

export async function render(view, { query }) {
  const filters = { actor: query.get('actor') || '', action: query.get('action') || '' };
  const match = (r, k) => !filters[k] || String(r[k] || '').toLowerCase().includes(filters[k].toLowerCase());
  const rows = list(await get('audit', { limit: 1000 })).filter((r) => match(r, 'actor') && match(r, 'action'));
  const form = h('form.inline', { onsubmit: (ev) => {
    ev.preventDefault();
    location.hash = `#/audit?${new URLSearchParams(formValues(form))}`;
  } },
  field('actor', 'Who', { value: filters.actor }),
  field('action', 'Action', { value: filters.action, placeholder: 'e.g. batch' }),
  h('button', { type: 'submit' }, 'Filter'));
  clear(view).append(h('section.panel', h('h2', 'Audit log'), h('div.toolbar', form),
    table([
      { key: 'at', label: 'When', render: (r) => when(r.at) },
      { key: 'actor', label: 'Who' },
      { key: 'action', label: 'Action', render: (r) => h('strong', r.action) },
      { key: 'object', label: 'Object', render: (r) => h('span.mono', r.object || '') },
      { key: 'detail', label: 'Detail', render: (r) => h('span.mono', typeof r.detail === 'string' ? r.detail : JSON.stringify(r.detail)) },
    ], rows, { empty: 'No operator action recorded yet.' })));
}

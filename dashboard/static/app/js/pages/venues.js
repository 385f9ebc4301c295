// Venues: a 4-letter code and a name.

import { get, post, put, del, list } from '../api.js';
import { h, clear, table, dialog, field, run, when, confirmAction } from '../ui.js';

export async function render(view) {
  const venues = list(await get('venues'));
  const add = () => dialog('New venue', [
    field('code', 'Code (4 upper-case letters)', { required: true, pattern: '[A-Z]{4}', placeholder: 'CORO' }),
    field('name', 'Name', { required: true, placeholder: 'Coronado Karting' }),
  ], 'Create venue', async (v) => {
    await post('venues', { code: (v.code || '').toUpperCase(), name: v.name });
    render(view);
  });
  clear(view).append(h('section.panel',
    h('h2', 'Venues', h('span.spacer'), h('button.primary', { id: 'venue-add', onclick: add }, 'New venue')),
    table([
      { key: 'code', label: 'Code', render: (v) => h('strong.mono', v.code) },
      { key: 'name', label: 'Name' },
      { key: 'created_at', label: 'Created', render: (v) => when(v.created_at) },
      { key: 'actions', label: '', render: (v) => h('div.actions',
        h('button.small', { onclick: () => dialog(`Rename ${v.code}`, [
          field('name', 'Name', { required: true, value: v.name }),
        ], 'Save', async (x) => {
          await put(`venues/${v.code}`, { name: x.name });
          render(view);
        }) }, 'Rename'),
        h('a.button', { href: `#/pools?venue=${v.code}` }, 'Pools'),
        h('a.button', { href: `#/deployments?venue=${v.code}` }, 'History'),
        h('button.danger.small', { onclick: () => confirmAction(`Delete venue ${v.code}? Only a venue without names, batches or deployments can go.`, 'Delete', async () => {
          await run(() => del(`venues/${v.code}`), `venue ${v.code} deleted`);
          render(view);
        }) }, 'Delete')) },
    ], venues, { empty: 'No venue yet: create the first one.' })));
}

// Hostname pools: per venue and product; generate, import and export CSV, retire a
// name, see which board holds which name.

import { get, post, request, list, url } from '../api.js';
import { h, clear, table, dialog, field, run, when, pill, formValues, download, confirmAction } from '../ui.js';
import { lookups, venueOptions, productOptions } from './common.js';

export async function render(view, { query }) {
  const sel = { venue: query.get('venue') || '', product: query.get('product') || '', q: query.get('q') || '' };
  const [lk, summaries, names] = await Promise.all([
    lookups(), get('pools'),
    sel.venue || sel.product || sel.q ? get('pools/names', { venue: sel.venue, product: sel.product }) : null,
  ]);
  const poolProducts = lk.products.filter((p) => p.naming === 'pool');
  const go = (v) => { location.hash = `#/pools?${new URLSearchParams(Object.entries(v).filter(([, x]) => x))}`; };
  const reload = () => render(view, { query });

  const generate = () => dialog('Generate names', [
    field('venue', 'Venue', { options: venueOptions(lk.venues), value: sel.venue, required: true }),
    field('product', 'Product', { options: productOptions(poolProducts), value: sel.product || 'KXP2', required: true }),
    field('count', 'How many', { type: 'number', min: 1, max: 10000, value: 20, required: true }),
    field('start', 'First number (empty = after the highest)', { type: 'number', min: 1 }),
  ], 'Generate', async (v) => {
    const r = await post('pools/generate', { venue: v.venue, product: v.product, count: v.count, start: v.start || 0 });
    go({ venue: v.venue, product: v.product });
    reloadIfSame(v);
    return r;
  });
  const reloadIfSame = (v) => { if (v.venue === sel.venue && v.product === sel.product) reload(); };

  const importCSV = () => dialog('Import names from CSV', [
    h('p.muted', 'One name per line, or a CSV with a "name" column (as exported). Names must look like PRODUCT-VENUE-NNN.'),
    field('venue', 'Venue', { options: venueOptions(lk.venues), value: sel.venue, required: true }),
    field('product', 'Product', { options: productOptions(poolProducts), value: sel.product || 'KXP2', required: true }),
    field('file', 'CSV file', { type: 'file', accept: '.csv,text/csv,text/plain' }),
    field('csv', '…or paste', { type: 'textarea', placeholder: 'name\nKXP2-CORO-001\nKXP2-CORO-002' }),
  ], 'Import', async (v, form) => {
    const file = form.elements.file.files[0];
    const text = file ? await file.text() : (v.csv || '');
    if (!text.trim()) throw new Error('choose a file or paste names');
    const r = await request('POST', url('pools/import', { venue: v.venue, product: v.product }), { body: text, contentType: 'text/csv' });
    go({ venue: v.venue, product: v.product });
    reloadIfSame(v);
    return r;
  });

  const filter = h('form.inline', { id: 'pool-filter', onsubmit: (ev) => { ev.preventDefault(); go(formValues(filter)); } },
    field('venue', 'Venue', { options: venueOptions(lk.venues, 'all venues'), value: sel.venue }),
    field('product', 'Product', { options: productOptions(poolProducts, 'all products'), value: sel.product }),
    field('q', 'Name or serial', { value: sel.q }),
    h('button', { type: 'submit' }, 'Show names'));

  const summaryTable = table([
    { key: 'venue', label: 'Venue', render: (s) => h('strong.mono', s.venue) },
    { key: 'product', label: 'Product', render: (s) => h('span.mono', s.product) },
    { key: 'total', label: 'Names', num: true },
    { key: 'bound', label: 'Held', num: true },
    { key: 'free', label: 'Free', num: true, render: (s) => h('strong', { class: s.free === 0 ? 'error' : 'ok' }, s.free) },
    { key: 'retired', label: 'Retired', num: true },
    { key: 'actions', label: '', render: (s) => h('div.actions',
      h('button.small', { onclick: () => go({ venue: s.venue, product: s.product }) }, 'Names'),
      h('button.small', { onclick: () => download(url('pools/export', { venue: s.venue, product: s.product })) }, 'Export CSV')) },
  ], list(summaries), { empty: 'No pool yet: generate names for a venue.', onRow: (s) => go({ venue: s.venue, product: s.product }) });

  let namesPanel = null;
  if (names) {
    const q = sel.q.toLowerCase();
    const rows = list(names).filter((n) => !q || n.name.toLowerCase().includes(q) || (n.serial || '').includes(q));
    namesPanel = h('section.panel', { id: 'pool-names' },
      h('h2', `Names — ${sel.venue || 'all venues'} · ${sel.product || 'all products'}`, h('span.spacer'),
        h('button', { id: 'pool-export', onclick: () => download(url('pools/export', { venue: sel.venue, product: sel.product })) }, 'Export CSV')),
      table([
        { key: 'name', label: 'Name', render: (n) => h('strong.mono', n.name) },
        { key: 'state', label: 'State', render: (n) => n.retired ? pill('retired', 'bad') : n.serial ? pill('held', 'open') : pill('free', 'ok') },
        { key: 'serial', label: 'Held by', render: (n) => n.serial ? h('a.mono', { href: `#/boards/${n.serial}` }, n.serial) : '' },
        { key: 'bound_at', label: 'Since', render: (n) => n.bound_at ? when(n.bound_at) : '' },
        { key: 'actions', label: '', render: (n) => h('div.actions', n.serial && !n.retired ? h('button.small', {
          onclick: () => confirmAction(`Release ${n.name} from board ${n.serial}? The name goes back to the pool; the board gets a new one on its next deployment.`, 'Release', async () => {
            await run(() => post(`pools/names/${encodeURIComponent(n.name)}/release`), `${n.name} released`);
            reload();
          }),
        }, 'Release') : null, n.retired ? h('button.small', {
          onclick: () => run(() => post(`pools/names/${encodeURIComponent(n.name)}/unretire`), `${n.name} back in the pool`).then(reload),
        }, 'Unretire') : h('button.small.danger', {
          onclick: () => confirmAction(`Retire ${n.name}? It will never be handed out again${n.serial ? ` (its board ${n.serial} keeps running with it until re-imaged)` : ''}.`, 'Retire', async () => {
            await run(() => post(`pools/names/${encodeURIComponent(n.name)}/retire`), `${n.name} retired`);
            reload();
          }),
        }, 'Retire')) },
      ], rows, { empty: 'No names match.' }));
  }

  clear(view).append(
    h('section.panel',
      h('h2', 'Hostname pools', h('span.spacer'),
        h('button.primary', { id: 'pool-generate', onclick: generate }, 'Generate names'),
        h('button', { id: 'pool-import', onclick: importCSV }, 'Import CSV')),
      h('p.muted', 'Pool products (KXP2) take the next free name of the venue\'s pool. A name is bound to one board for good.'),
      summaryTable),
    h('section.panel', h('div.toolbar', filter)),
    namesPanel);
}

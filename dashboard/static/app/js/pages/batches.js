// Batches: create, pause, resume, cancel, reprioritise.

import { get, post, list } from '../api.js';
import { h, clear, table, dialog, field, run, when, bar, pill } from '../ui.js';
import { lookups, venueOptions, productOptions, imageOptions } from './common.js';

export async function render(view) {
  const [batches, lk] = await Promise.all([get('batches'), lookups()]);
  const rows = list(batches).sort((a, b) => order(a) - order(b) || (b.priority || 0) - (a.priority || 0) || b.id - a.id);
  const create = () => dialog('New batch', [
    field('venue', 'Venue', { options: venueOptions(lk.venues), required: true }),
    field('product', 'Product', { options: productOptions(lk.products), required: true }),
    field('image', 'Image', { options: imageOptions(lk.images, "the product's active image") }),
    field('count', 'Boards (empty = open-ended: every unknown board joins)', { type: 'number', min: 1 }),
    field('priority', 'Priority (higher goes first)', { type: 'number', value: 0 }),
    field('note', 'Note'),
    field('paused', 'Create paused (start it later)', { type: 'checkbox' }),
  ], 'Create batch', async (v) => {
    await post('batches', { venue: v.venue, product: v.product, image: v.image || '', count: v.count || 0, priority: v.priority || 0, paused: v.paused || false, note: v.note || '' });
    render(view);
  });
  const act = (b, what) => run(() => post(`batches/${b.id}/${what}`), `batch #${b.id}: ${what}`).then(() => render(view));
  const reprio = (b) => dialog(`Priority of batch #${b.id}`, [
    field('priority', 'Priority (higher goes first)', { type: 'number', value: b.priority || 0, required: true }),
  ], 'Save', async (v) => {
    await post(`batches/${b.id}/priority`, { priority: v.priority });
    render(view);
  });
  clear(view).append(h('section.panel',
    h('h2', 'Batches', h('span.spacer'), h('button.primary', { id: 'batch-add', onclick: create }, 'New batch')),
    table([
      { key: 'id', label: '#', num: true },
      { key: 'state', label: 'State', render: (b) => pill(b.state) },
      { key: 'venue', label: 'Venue', render: (b) => h('strong.mono', b.venue) },
      { key: 'product', label: 'Product', render: (b) => h('span.mono', b.product) },
      { key: 'image', label: 'Image', render: (b) => b.image || h('span.muted', 'active image') },
      { key: 'progress', label: 'Progress', render: (b) => h('div', { class: 'batch-progress' },
        h('div', b.count ? `${b.done || 0} / ${b.count}` : `${b.done || 0} (open-ended)`,
          h('span.muted', ` · ${b.in_progress || 0} running · ${b.failed || 0} failed`)),
        b.count ? bar((b.done || 0) / b.count, b.state === 'complete' ? 'ok' : '') : null) },
      { key: 'priority', label: 'Priority', num: true },
      { key: 'created_at', label: 'Created', render: (b) => when(b.created_at) },
      { key: 'actions', label: '', render: (b) => h('div.actions',
        (b.state === 'active' || b.state === 'pending') ? h('button.small', { onclick: () => act(b, 'pause') }, 'Pause') : null,
        b.state === 'paused' ? h('button.small', { onclick: () => act(b, 'resume') }, 'Resume') : null,
        (b.state !== 'complete' && b.state !== 'cancelled') ? h('button.small', { onclick: () => reprio(b) }, 'Priority') : null,
        (b.state !== 'complete' && b.state !== 'cancelled') ? h('button.small.danger', { onclick: () => act(b, 'cancel') }, 'Cancel') : null,
        h('a.button', { href: `#/deployments?batch=${b.id}` }, 'Boards')) },
    ], rows, { empty: 'No batch yet. A batch says: deploy N boards of a product for a venue.' })));
}

function order(b) { return { active: 0, paused: 1, pending: 2, complete: 3, cancelled: 4 }[b.state] ?? 5; }

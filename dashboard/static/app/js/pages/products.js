// Products: naming strategy and the active image.

import { get, post, list } from '../api.js';
import { h, clear, table, dialog, field, when } from '../ui.js';
import { imageOptions } from './common.js';

export async function render(view) {
  const [products, images] = await Promise.all([get('products'), get('images')]);
  const imgs = list(images);
  const add = () => dialog('New product', [
    field('code', 'Code (upper-case letters and digits)', { required: true, placeholder: 'KXP3' }),
    field('name', 'Name', { required: true }),
    field('naming', 'Naming', { options: [['pool', 'pool — next free name of the venue pool'], ['serial', 'serial — PRODUCT-VENUE-SERIAL8']] }),
    field('digits', 'Pool number width', { type: 'number', value: 3, min: 1, max: 8 }),
  ], 'Create product', async (v) => {
    await post('products', { code: (v.code || '').toUpperCase(), name: v.name, naming: v.naming, digits: v.digits || 3 });
    render(view);
  });
  const activate = (p) => dialog(`Active image of ${p.code}`, [
    field('image', 'Image', { options: imageOptions(imgs), value: p.active_image || '', required: true }),
  ], 'Activate', async (v) => {
    await post(`images/${encodeURIComponent(v.image)}/activate`, { product: p.code });
    render(view);
  });
  clear(view).append(h('section.panel',
    h('h2', 'Products', h('span.spacer'), h('button.primary', { id: 'product-add', onclick: add }, 'New product')),
    table([
      { key: 'code', label: 'Code', render: (p) => h('strong.mono', p.code) },
      { key: 'name', label: 'Name' },
      { key: 'naming', label: 'Naming', render: (p) => p.naming === 'pool' ? `pool (${p.code}-VENUE-${'0'.repeat((p.digits || 3) - 1)}1)` : `serial (${p.code}-VENUE-ABCD1234)` },
      { key: 'active_image', label: 'Active image', render: (p) => p.active_image ? h('span.mono', p.active_image) : h('span.muted', 'none') },
      { key: 'created_at', label: 'Created', render: (p) => when(p.created_at) },
      { key: 'actions', label: '', render: (p) => imgs.length ? h('button.small', { onclick: () => activate(p) }, 'Set image') : '' },
    ], list(products))));
}

// Boards: every board ever seen; one board's history; flag for re-imaging.

import { get, post, list } from '../api.js';
import { currentSite, siteQuery } from '../site.js';
import { h, clear, table, run, when, pill, formValues, field, bytes, duration } from '../ui.js';

export async function render(view, { args, query }) {
  if (args[0]) return detail(view, args[0]);
  const q = query.get('q') || '';
  const boards = list(await get('boards', { q, limit: 1000, ...siteQuery() }));
  const site = currentSite();
  const form = h('form.inline', { onsubmit: (ev) => { ev.preventDefault(); location.hash = `#/boards?${new URLSearchParams(formValues(form))}`; } },
    field('q', 'Serial, MAC or hostname', { value: q }), h('button', { type: 'submit' }, 'Search'));
  clear(view).append(h('section.panel', h('h2', 'Boards', site ? h('span.muted', ` seen last at site ${site}`) : null), h('div.toolbar', form),
    table([
      { key: 'serial', label: 'Serial', render: (b) => h('a.mono', { href: `#/boards/${b.serial}` }, b.serial) },
      { key: 'hostname', label: 'Hostname', render: (b) => h('strong.mono', b.hostname || '') },
      { key: 'mac', label: 'MAC', render: (b) => h('span.mono', b.mac) },
      { key: 'site', label: 'Site' },
      { key: 'image', label: 'Image' },
      { key: 'state', label: 'State', render: (b) => [b.deployed ? pill('deployed', 'ok') : pill('not deployed', 'warn'), b.reimage ? pill('re-image', 'bad') : null] },
      { key: 'last_event', label: 'Last event' },
      { key: 'last_seen', label: 'Last seen', render: (b) => when(b.last_seen) },
      { key: 'actions', label: '', render: (b) => reimageButton(b, () => render(view, { args, query })) },
    ], boards, { empty: 'No board has been seen yet.', onRow: (b) => { location.hash = `#/boards/${b.serial}`; } })));
}

function reimageButton(b, after) {
  return h('button.small', {
    class: b.reimage ? 'small' : 'small danger',
    onclick: () => run(() => post(`boards/${b.serial}/reimage`, { reimage: !b.reimage }),
      b.reimage ? `${b.serial}: re-imaging cancelled` : `${b.serial} will be re-imaged on its next network boot`).then(after),
  }, b.reimage ? 'Cancel re-image' : 'Re-image');
}

async function detail(view, serial) {
  const board = await get(`boards/${serial}`);
  const deps = board.deployments || [];
  const events = board.history || [];
  clear(view).append(
    h('section.panel',
      h('h2', h('a', { href: '#/boards' }, 'Boards'), ' / ', h('span.mono', serial), h('span.spacer'), reimageButton(board, () => detail(view, serial))),
      h('dl.kv',
        h('dt', 'Hostname'), h('dd.mono', board.hostname || '—'),
        h('dt', 'MAC'), h('dd.mono', board.mac || '—'),
        h('dt', 'Model'), h('dd', `${board.model || '—'} (rev ${board.revision || '?'})`),
        h('dt', 'IP'), h('dd.mono', board.ip || '—'),
        h('dt', 'Site (seen last at)'), h('dd', board.site || '—'),
        h('dt', 'Image'), h('dd', board.image || '—'),
        h('dt', 'Deployed'), h('dd', board.deployed ? 'yes' : 'no'),
        h('dt', 'Re-image on next boot'), h('dd', board.reimage ? 'yes' : 'no'),
        h('dt', 'First seen'), h('dd', when(board.first_seen)),
        h('dt', 'Last seen'), h('dd', when(board.last_seen)))),
    h('section.panel', h('h2', 'Deployments'),
      table([
        { key: 'id', label: '#', num: true },
        { key: 'started_at', label: 'Started', render: (d) => when(d.started_at) },
        { key: 'hostname', label: 'Hostname', render: (d) => h('span.mono', d.hostname) },
        { key: 'image', label: 'Image' },
        { key: 'site', label: 'Site' },
        { key: 'state', label: 'Result', render: (d) => pill(d.state) },
        { key: 'error', label: 'Cause', render: (d) => d.error ? h('span.error', `${d.error_phase}: ${d.error}`) : '' },
        { key: 'bytes_written', label: 'Written', num: true, render: (d) => d.bytes_written ? bytes(d.bytes_written) : '' },
        { key: 'duration_ms', label: 'Took', num: true, render: (d) => d.duration_ms ? duration(d.duration_ms / 1000) : '' },
      ], list(deps), { empty: 'Never deployed.', onRow: (d) => { location.hash = `#/deployments/${d.id}`; } })),
    h('section.panel', h('h2', 'Network boot and agent events'),
      table([
        { key: 'at', label: 'When', render: (e) => when(e.at) },
        { key: 'kind', label: 'What', render: (e) => h('strong', e.kind) },
        { key: 'site', label: 'Site' },
        { key: 'detail', label: 'Detail', render: (e) => h('span.mono', e.detail || '') },
      ], list(events), { empty: 'No event recorded.' })));
}

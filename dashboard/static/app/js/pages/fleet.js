// The fleet view: every board in progress, live; batch progress; throughput chart.

import { h, clear, bar, mbps, duration, bytes, table } from '../ui.js';
import { live, TERMINAL } from '../live.js';
import { drawThroughput } from '../chart.js';
import { get } from '../api.js';

export const PHASE_LABEL = {
  dhcp: 'DHCP', tftp: 'TFTP', hello: 'Hello', streaming: 'Streaming', verifying: 'Verifying',
  naming: 'Naming', commit: 'Committing', rebooting: 'Rebooting', verified: 'Verified',
  failed: 'Failed', abandoned: 'Abandoned',
};

// Share of the whole job each phase stands for (streaming dominates).
const SPAN = {
  dhcp: [0, 0.01], tftp: [0.01, 0.03], hello: [0.03, 0.04], streaming: [0.04, 0.78],
  verifying: [0.78, 0.97], naming: [0.97, 0.98], commit: [0.98, 0.99], rebooting: [0.99, 1],
};

export function progress(r) {
  if (r.phase === 'verified') return 1;
  // A failed board's bar stops where it failed.
  const span = SPAN[r.phase === 'failed' ? r.error_phase : r.phase];
  if (!span) return 0;
  const frac = r.total > 0 ? Math.min(1, r.bytes / r.total) : 0;
  return span[0] + (span[1] - span[0]) * frac;
}

// eta in seconds for one board, or null when unknown.
export function eta(r) {
  if (!r.rate_bps || r.rate_bps <= 0 || !r.total) return null;
  const left = Math.max(0, r.total - r.bytes);
  // Read-back runs from the card, typically faster than the network: count it at 2×.
  if (r.phase === 'streaming') return left / r.rate_bps + r.total / (2 * r.rate_bps);
  if (r.phase === 'verifying') return left / r.rate_bps;
  return null;
}

function order(r) {
  if (r.phase === 'failed') return 0;
  if (TERMINAL.has(r.phase)) return 2;
  return 1;
}

function sortRows(rows) {
  return rows.sort((a, b) => order(a) - order(b) ||
    (order(a) === 1 ? String(a.started_at || '').localeCompare(String(b.started_at || '')) : b.seen - a.seen) ||
    a.serial.localeCompare(b.serial));
}

// A row's elements are made once per board and then updated in place: with a
// hundred boards reporting twice a second, rebuilding every row would spend the
// tablet's time in layout.
function makeRow() {
  const refs = {
    host: h('div.host'), meta: h('div.meta'), phase: document.createTextNode(''), detail: h('span.detail'),
    pct: h('span.pct'), bar: bar(0), rate: document.createTextNode(''), eta: document.createTextNode(''),
    cause: h('div.cause', { hidden: true }),
  };
  const el = h('div.row', { title: 'open this board', tabindex: 0, role: 'link' },
    h('div.name', refs.host, refs.meta),
    h('div.phase', refs.phase, refs.detail),
    h('div.progress', refs.pct, refs.bar),
    h('div.rate', refs.rate, h('small', 'MB/s')),
    h('div.eta', refs.eta, h('small', 'ETA')),
    refs.cause);
  const open = () => {
    const r = el.row;
    location.hash = r.serial.includes(':') ? `#/boards?q=${encodeURIComponent(r.display)}` : `#/boards/${r.serial}`;
  };
  el.addEventListener('click', open);
  el.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') open(); });
  el.refs = refs;
  return el;
}

function set(node, key, value) { if (node[key] !== value) node[key] = value; }

function fillRow(el, r) {
  const { refs } = el;
  const p = progress(r);
  const failed = r.phase === 'failed';
  const moving = r.phase === 'streaming' || r.phase === 'verifying';
  const detail = r.phase === 'tftp' ? r.detail : (failed ? `in ${PHASE_LABEL[r.error_phase] || r.error_phase || '?'}` :
    moving && r.total ? `${bytes(r.bytes)} / ${bytes(r.total)}` : r.detail);
  el.row = r;
  set(el, 'className', `row ${r.phase}`);
  if (el.dataset.serial !== r.serial) el.dataset.serial = r.serial;
  if (el.dataset.phase !== r.phase) el.dataset.phase = r.phase;
  if (el.dataset.hostname !== (r.hostname || '')) el.dataset.hostname = r.hostname || '';
  if (el.dataset.site !== (r.site || '')) el.dataset.site = r.site || '';
  set(refs.host, 'textContent', r.hostname || 'new board');
  set(refs.meta, 'textContent', [r.display || r.serial, r.venue, r.product, r.site && `site ${r.site}`].filter(Boolean).join(' · '));
  set(refs.phase, 'data', PHASE_LABEL[r.phase] || r.phase);
  set(refs.detail, 'textContent', detail || '');
  set(refs.detail, 'hidden', !detail);
  set(refs.pct, 'textContent', `${Math.floor(p * 100)}%`);
  set(refs.bar, 'className', `bar ${failed ? 'bad' : r.phase === 'verified' ? 'ok' : ''}`);
  const width = `${Math.floor(Math.max(0, Math.min(1, p)) * 100)}%`;
  if (refs.bar.firstChild.style.width !== width) {
    refs.bar.firstChild.style.width = width;
    refs.bar.setAttribute('aria-valuenow', Math.floor(p * 100));
  }
  set(refs.rate, 'data', moving ? mbps(r.rate_bps) : '—');
  set(refs.eta, 'data', r.phase === 'verified' ? '✓' : failed ? '✖' : duration(eta(r)));
  set(refs.cause, 'hidden', !failed);
  set(refs.cause, 'textContent', failed ? (r.error || 'failed (no cause given)') : '');
}

// batchETA estimates the seconds until a batch with a count is complete.
function batchETA(b, rows) {
  const remaining = (b.count || 0) - (b.done || 0);
  if (!b.count || remaining <= 0) return null;
  const mine = rows.filter((r) => r.batch_id === b.id);
  const done = mine.filter((r) => r.phase === 'verified' && r.started_at && r.finished_at);
  const running = mine.filter((r) => !TERMINAL.has(r.phase));
  if (running.length === 0) return null; // waiting for boards to be powered on
  const conc = running.length;
  if (done.length) {
    const avg = done.reduce((s, r) => s + (Date.parse(r.finished_at) - Date.parse(r.started_at)) / 1000, 0) / done.length;
    if (avg > 0) return (remaining * avg) / conc;
  }
  const etas = running.map(eta).filter((x) => x !== null);
  if (etas.length && remaining <= running.length) return Math.max(...etas);
  return null;
}

function batchView(b, rows) {
  const frac = b.count ? Math.min(1, (b.done || 0) / b.count) : 0;
  const inProgress = rows.filter((r) => r.batch_id === b.id && !TERMINAL.has(r.phase)).length;
  const failed = rows.filter((r) => r.batch_id === b.id && r.phase === 'failed').length;
  return h('div.batch', { dataset: { batch: b.id } },
    h('div.title', `#${b.id} ${b.venue} · ${b.product}`, h('span.pill', { class: `pill ${b.state}` }, b.state),
      h('span.spacer'), h('span', b.count ? `${b.done || 0} / ${b.count}` : `${b.done || 0} done · open-ended`)),
    b.count ? bar(frac, b.state === 'complete' ? 'ok' : 'big') : null,
    h('div.sub', `${inProgress || b.in_progress || 0} in progress · ${failed || b.failed || 0} failed · image ${b.image || 'active'} · `,
      b.count && !inProgress && (b.done || 0) < b.count ? 'waiting for boards' : `ETA ${duration(batchETA(b, rows))}`));
}

export function render(view) {
  const stats = h('div.stats');
  const batches = h('div');
  const canvas = h('canvas.chart', { role: 'img', 'aria-label': 'aggregate streaming throughput, MB/s, over the last minutes' });
  const rowsBox = h('div.rows', { id: 'fleet-rows' });
  const empty = h('p.empty', 'No board is deploying. Power boards on and they appear here.');
  const rowEls = new Map(); // serial → row element
  const rateNow = h('span.muted');
  const swarmBox = h('section.panel', { id: 'swarm', hidden: true });
  const stopSwarm = pollSwarm(swarmBox);
  clear(view).append(
    stats,
    h('div.fleet-top',
      h('section.panel', h('h2', 'Batches'), batches),
      h('section.panel', h('h2', 'Throughput', h('span.spacer'), rateNow), canvas)),
    h('section.panel', h('h2', 'Boards'), empty, rowsBox),
    swarmBox);

  // Paint on the next animation frame after a change, all the changes since the last
  // paint at once; but leave at least PAINT_IDLE times the last paint's duration between
  // two paints, so that painting takes at most a sixth of the time however big the
  // fleet and however many events a second it sends (a tablet stays responsive).
  const PAINT_IDLE = 5;
  let pending = false;
  let nextPaint = 0;
  function paint() {
    pending = false;
    const start = performance.now();
    const rows = sortRows(live.visibleRows());
    const active = rows.filter((r) => !TERMINAL.has(r.phase));
    const streaming = active.filter((r) => r.phase === 'streaming');
    const sum = streaming.reduce((s, r) => s + (r.rate_bps || 0), 0);
    clear(stats).append(
      stat('In progress', active.length, ''),
      stat('Verified', rows.filter((r) => r.phase === 'verified').length, 'ok', '15 min'),
      stat('Failed', rows.filter((r) => r.phase === 'failed').length, rows.some((r) => r.phase === 'failed') ? 'bad' : '', '15 min'),
      stat('MB/s', mbps(sum), '', `${streaming.length} streaming`));
    const bs = [...live.batches.values()].filter((b) => b.state === 'active' || b.state === 'paused' || b.state === 'pending')
      .sort((a, b) => (b.priority || 0) - (a.priority || 0) || a.id - b.id);
    clear(batches).append(...(bs.length ? bs.map((b) => batchView(b, rows)) : [h('p.empty', 'No active batch. Create one on the Batches page.')]));
    empty.hidden = rows.length > 0;
    const keep = new Set();
    rows.forEach((r, i) => {
      let el = rowEls.get(r.serial);
      if (!el) rowEls.set(r.serial, (el = makeRow()));
      fillRow(el, r);
      keep.add(r.serial);
      if (rowsBox.children[i] !== el) rowsBox.insertBefore(el, rowsBox.children[i] || null);
    });
    for (const [serial, el] of rowEls) {
      if (!keep.has(serial)) { el.remove(); rowEls.delete(serial); }
    }
    rateNow.textContent = `${mbps(sum)} MB/s now`;
    const end = performance.now();
    nextPaint = end + PAINT_IDLE * (end - start);
  }
  function schedule() {
    if (pending) return;
    pending = true;
    const wait = nextPaint - performance.now();
    if (wait <= 0) requestAnimationFrame(paint);
    else setTimeout(() => requestAnimationFrame(paint), wait);
  }
  const onChange = (ev) => {
    if (ev.detail === 'tick') drawThroughput(canvas, live.history);
    else schedule();
  };
  live.addEventListener('change', onChange);
  paint();
  drawThroughput(canvas, live.history);
  const onResize = () => drawThroughput(canvas, live.history);
  window.addEventListener('resize', onResize);
  return () => { stopSwarm(); live.removeEventListener('change', onChange); window.removeEventListener('resize', onResize); };
}

function stat(k, v, cls, sub) {
  return h('div.stat', { class: `stat ${cls}` }, h('div.v', String(v)), h('div.k', k, sub ? h('span.muted', ` · ${sub}`) : null));
}

// pollSwarm shows, every 2 s while P2P is on (rpi-deployd --p2p=on), the server's
// image upload rate and, per board in a swarm, the compressed bytes it got from the
// server and from other boards and what it sent them (GET /api/v1/swarm).
function pollSwarm(box) {
  let timer = null;
  let stopped = false;
  async function tick() {
    try {
      const s = await get('swarm');
      box.hidden = !s.enabled;
      if (s.enabled) renderSwarm(box, s);
    } catch (e) {
      box.hidden = true;
    }
    if (!stopped) timer = setTimeout(tick, 2000);
  }
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

function renderSwarm(box, s) {
  const members = s.members || [];
  const fromServer = members.reduce((a, m) => a + (m.from_server || 0), 0);
  const fromPeers = members.reduce((a, m) => a + (m.from_peers || 0), 0);
  clear(box).append(
    h('h2', 'Peer-to-peer', h('span.spacer'),
      h('span.muted', `server upload ${mbps(s.server_upload_bps || 0)} MB/s · ${members.length} boards · ${bytes(fromServer)} from the server, ${bytes(fromPeers)} from peers`)),
    table([
      { key: 'serial', label: 'Board' },
      { key: 'image', label: 'Image' },
      { key: 'from_server', label: 'From server', num: true, render: (m) => bytes(m.from_server || 0) },
      { key: 'from_peers', label: 'From peers', num: true, render: (m) => bytes(m.from_peers || 0) },
      { key: 'uploaded', label: 'Sent to peers', num: true, render: (m) => bytes(m.uploaded || 0) },
      { key: 'state', label: 'State', render: (m) => (m.done ? (m.seeding ? 'seeding' : 'done') : 'downloading') },
    ], members, { class: 'swarm', empty: 'No board is in a swarm right now.' }));
}

// The live fleet state: a snapshot from the management API, kept current by the
// server's event stream (SSE). EventSource reconnects by itself; after every
// (re)connect the snapshot is fetched again so nothing missed while away is lost.

import { API, get } from './api.js';

const RECENT_MS = 15 * 60 * 1000; // finished boards stay on the fleet view this long
const HISTORY_S = 600;            // throughput chart: ten minutes, one sample a second
const STALE_MS = 15 * 1000;       // a streaming board silent this long adds no rate
const NETBOOT_MS = 2 * 60 * 1000; // a board seen on DHCP/TFTP that never said hello

const EVENT_NAMES = [
  'deployment.created', 'deployment.progress', 'deployment.finished', 'batch.changed', 'board.changed',
  'board.netboot', 'image.changed', 'venue.changed', 'product.changed', 'pool.changed', 'hello.retry',
];
// "reset": the server dropped events for this client; only a new snapshot helps.

export const TERMINAL = new Set(['verified', 'failed', 'abandoned']);

class Live extends EventTarget {
  constructor() {
    super();
    this.rows = new Map();    // serial → row (see rowFrom)
    this.batches = new Map(); // id → batch
    this.connected = false;
    this.history = [];        // [{t: ms, bps: aggregate streaming rate}]
    this.lastEvent = 0;
    this.snapshotTimer = null;
    this.source = null;
    this.site = ''; // the site shown ("" = all): ?site= of the snapshot and the stream
  }

  start(site = '') {
    if (this.source) return;
    this.site = site;
    this.snapshot();
    this.connect();
    setInterval(() => this.sample(), 1000);
  }

  // setSite shows another site ("" = all): the rows and batches start over from a
  // snapshot of that site, and the event stream is opened again for it.
  setSite(site) {
    if (site === this.site) return;
    this.site = site;
    this.rows = new Map();
    this.batches = new Map();
    this.counts = {};
    if (this.source) { this.source.close(); this.source = null; }
    this.everConnected = false;
    this.setConnected(false);
    this.emit('snapshot');
    this.snapshot();
    this.connect();
  }

  connect() {
    const q = this.site ? `?site=${encodeURIComponent(this.site)}` : '';
    const es = new EventSource(`${API}/events${q}`, { withCredentials: true });
    this.source = es;
    es.onopen = () => {
      if (es !== this.source) return; // a stream of the site shown before
      const again = this.everConnected;
      this.everConnected = true;
      this.setConnected(true);
      if (again) this.snapshot(); // events may have been missed while away
    };
    es.onerror = () => {
      if (es !== this.source) return;
      this.setConnected(false);
      // The browser retries by itself unless the server refused the stream
      // (e.g. the session expired): then check the session and retry by hand.
      if (es.readyState === EventSource.CLOSED) {
        this.source = null;
        setTimeout(async () => {
          try { await get(`${API}/me`); } catch { return; } // 401 goes to /login
          if (!this.source) this.connect();
        }, 2000);
      }
    };
    es.onmessage = (ev) => this.onEvent('message', ev.data);
    // The server may name its events (SSE "event:" lines) or send them all unnamed.
    for (const name of EVENT_NAMES) {
      es.addEventListener(name, (ev) => this.onEvent(name, ev.data));
    }
    es.addEventListener('reset', () => this.snapshot());
  }

  setConnected(on) {
    if (this.connected === on) return;
    this.connected = on;
    this.emit('status');
  }

  emit(what) { this.dispatchEvent(new CustomEvent('change', { detail: what })); }

  // snapshot re-reads everything the fleet view shows (GET /api/v1/fleet).
  async snapshot() {
    const site = this.site;
    try {
      const f = await get(`${API}/fleet`, site ? { site } : {});
      if (site !== this.site) return; // the operator chose another site meanwhile
      const rows = new Map();
      // Oldest first, so a board's newest deployment wins.
      const deps = [...(f.recent || []), ...(f.active || [])].sort((a, b) => (a.id || 0) - (b.id || 0));
      for (const d of deps) rows.set(d.serial, rowFrom(d, rows.get(d.serial)));
      // An event that arrived while the snapshot was on its way may be newer.
      for (const [serial, cur] of this.rows) {
        const snap = rows.get(serial);
        if (snap && newer(cur, snap)) rows.set(serial, cur);
      }
      // Boards seen on the network but not yet at hello keep their netboot rows.
      for (const [serial, r] of this.rows) {
        if (!rows.has(serial) && (r.phase === 'dhcp' || r.phase === 'tftp') && Date.now() - r.recv < NETBOOT_MS) rows.set(serial, r);
      }
      for (const d of deps) dropNetbootRows(rows, d);
      this.rows = rows;
      this.batches = new Map((f.batches || []).map((b) => [b.id, b]));
      this.counts = f.counts || {};
      this.emit('snapshot');
    } catch (err) {
      console.warn('snapshot:', err);
    }
  }

  // Any event the dashboard does not understand in detail triggers a (coalesced)
  // snapshot, so the view stays true even if the server adds event kinds.
  resnapshot() {
    if (this.snapshotTimer) return;
    this.snapshotTimer = setTimeout(() => { this.snapshotTimer = null; this.snapshot(); }, 250);
  }

  onEvent(name, raw) {
    this.lastEvent = Date.now();
    let data;
    try { data = JSON.parse(raw); } catch { this.resnapshot(); return; }
    // Envelope {seq, time, type: "deployment.progress", data: {…}} (server/events).
    let kind = name;
    if (data && typeof data.type === 'string' && data.data !== undefined) {
      kind = data.type;
      data = data.data || {};
    }
    const noun = kind.split('.')[0];
    const dep = data.deployment || (noun === 'deployment' ? data : null);
    const batch = data.batch || (noun === 'batch' ? data : null);
    // Inventory changes do not touch the fleet rows; pages that list them re-read.
    let handled = ['image', 'venue', 'product', 'pool', 'hello', 'board'].includes(noun) && kind !== 'board.netboot';
    if (dep && dep.serial) {
      const cur = this.rows.get(dep.serial);
      const row = rowFrom(dep, cur);
      if (!cur || !newer(cur, row)) this.rows.set(dep.serial, row);
      dropNetbootRows(this.rows, dep);
      handled = true;
    }
    if (batch && typeof batch === 'object' && batch.id !== undefined) {
      this.batches.set(batch.id, { ...this.batches.get(batch.id), ...batch });
      handled = true;
    }
    const net = kind === 'board.netboot' || noun === 'netboot' ? netbootFrom(data) : null;
    if (net) {
      const cur = this.rows.get(net.serial);
      // A netboot event starts a new row unless an agent is already at work.
      if (!cur || TERMINAL.has(cur.phase) || cur.phase === 'dhcp' || cur.phase === 'tftp') {
        this.rows.set(net.serial, { ...(cur && !TERMINAL.has(cur.phase) ? cur : {}), ...net });
      }
      handled = true;
    }
    if (dep && dep.state && TERMINAL.has(dep.state) && dep.batch_id) this.resnapshot(); // batch counters moved
    if (!handled) this.resnapshot();
    this.emit(noun);
  }

  // sample adds one point to the throughput history: the sum of the recent rates of
  // every board streaming right now.
  sample() {
    const now = Date.now();
    let bps = 0;
    for (const r of this.rows.values()) {
      if (r.phase === 'streaming' && now - r.recv < STALE_MS) bps += r.rate_bps || 0;
    }
    this.history.push({ t: now, bps });
    while (this.history.length > HISTORY_S) this.history.shift();
    this.emit('tick');
  }

  visibleRows() {
    const now = Date.now();
    return [...this.rows.values()].filter((r) => {
      if (r.phase === 'dhcp' || r.phase === 'tftp') return now - r.recv < NETBOOT_MS; // booted locally after all
      return !TERMINAL.has(r.phase) || now - r.seen < RECENT_MS;
    });
  }
}

// newer reports whether row a is a later state than row b of the same board: a later
// deployment, a later update of the same one, or a finished one.
function newer(a, b) {
  if ((a.deployment_id || 0) !== (b.deployment_id || 0)) return (a.deployment_id || 0) > (b.deployment_id || 0);
  if (TERMINAL.has(a.state) !== TERMINAL.has(b.state)) return TERMINAL.has(a.state);
  return String(a.updated_at || '') > String(b.updated_at || '');
}

// rowFrom turns a deployment (as the API and the events give it) into a fleet row.
export function rowFrom(d, prev) {
  const state = d.state || 'open';
  let phase = d.phase || (prev && prev.phase) || 'hello';
  if (state === 'verified') phase = 'verified';
  if (state === 'failed') phase = 'failed';
  if (state === 'abandoned') phase = 'abandoned';
  const now = Date.now();
  const t = Date.parse(d.finished_at || d.updated_at || '') || now;
  return {
    serial: d.serial,
    hostname: d.hostname || '',
    venue: d.venue || '',
    product: d.product || '',
    site: d.site || (prev && prev.site) || '',
    image: d.image || '',
    deployment_id: d.id ?? d.deployment_id,
    batch_id: d.batch_id ?? null,
    state,
    phase,
    detail: d.message || '',
    bytes: d.bytes || 0,
    total: d.total || 0,
    rate_bps: d.rate_bps || 0,
    error: d.error || '',
    error_phase: d.error_phase || '',
    started_at: d.started_at,
    updated_at: d.updated_at,
    finished_at: d.finished_at,
    seen: Math.min(t, now), // server time of the last change (never in the future)
    recv: now,              // when this browser heard of it
    mac: d.mac || (prev && prev.mac) || '',
  };
}

// netbootFrom turns a board.netboot event (store.BoardEvent: {serial, mac, kind,
// detail}) into a row for a board that has not said hello yet. A board the server
// does not know yet has no serial in the event: the row is keyed by the short serial
// (TFTP prefix, in the detail as "serial abcd1234: …") or the MAC until its hello.
export function netbootFrom(d) {
  const ev = d.event || d;
  const kind = String(ev.kind || '').toLowerCase();
  if (!kind.startsWith('dhcp') && !kind.startsWith('tftp')) return null;
  let detail = String(ev.detail || '');
  let short = '';
  const m = /^serial ([0-9a-f]{8}): (.*)$/i.exec(detail);
  if (m) { short = m[1].toLowerCase(); detail = m[2]; }
  const key = ev.serial || (short ? `short:${short}` : '') || (ev.mac ? `mac:${ev.mac}` : '');
  if (!key) return null;
  // Details read "tftp.file NAME N bytes in T", "tftp.failed NAME: ERR", "dhcp.offer IP".
  const rest = detail.startsWith(kind) ? detail.slice(kind.length).trim() : detail;
  const tftp = kind.startsWith('tftp');
  const file = tftp ? rest.split(/[\s:]/)[0] : '';
  let shown = rest;
  if (tftp) shown = kind === 'tftp.failed' ? `${rest}` : file;
  else shown = `${kind.slice(5)} ${rest}`.trim();
  const now = Date.now();
  return {
    serial: key, display: ev.serial || short || ev.mac || '', short: short || (ev.serial ? ev.serial.slice(-8) : ''),
    hostname: '', venue: '', product: '', site: ev.site || '', state: 'open', phase: tftp ? 'tftp' : 'dhcp', detail: shown,
    bytes: 0, total: 0, rate_bps: 0, error: '', error_phase: '', seen: now, recv: now, mac: ev.mac || '',
  };
}

// dropNetbootRows removes the DHCP/TFTP rows that stood for the board of deployment
// d before the server knew its serial.
function dropNetbootRows(rows, d) {
  const short = String(d.serial || '').slice(-8).toLowerCase();
  rows.delete(`short:${short}`);
  if (d.mac) rows.delete(`mac:${String(d.mac).toLowerCase()}`);
}

export const live = new Live();

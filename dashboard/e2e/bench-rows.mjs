// Dashboard bench (scripts/bench/80-dashboard.sh): how long the fleet view takes from
// an event's arrival in the browser to the update of its board's row, with 1000 boards
// live against 10, in one run. A real rpi-deployd, real hellos (each opens a
// deployment), headless Chromium on the fleet view; progress events are posted with
// each deployment's secret as an agent does. In the page, the arrival of each event
// message (EventSource, wrapped before the app loads) and the moment the board's row
// shows it (polled every 2 ms) are timed with performance.now(): the server's batching
// of the stream is not counted, the dashboard's work is.
//
// Prints:
//   bench: dashboard-event-to-row-ms-p50 ours=AT_1000_ROWS baseline=AT_10_ROWS ratio=R
//   bench: dashboard-event-to-row-ms-p95 ours=AT_1000_ROWS baseline=AT_10_ROWS ratio=R
//
// Environment: RPI_BIN, E2E_IMAGE (as the browser tests), BENCH_ROWS (1000),
// BENCH_EVENTS (40 per size).

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { BIN, IMAGE, api, loggedIn, startServer, tempDir } from './harness.mjs';

const TOKEN = 'bench-token-0123456789abcdef';
const ROWS = Number(process.env.BENCH_ROWS || 1000);
const EVENTS = Number(process.env.BENCH_EVENTS || 40);
const WARMUP = 3; // events not counted after each page load (the first paints, the JIT)

// Runs in the page before its scripts: every event message's arrival time, by the
// deployment id and bytes it carries.
function recordArrivals() {
  window.__arrivals = new Map();
  const Real = window.EventSource;
  window.EventSource = class extends Real {
    addEventListener(type, fn, opts) {
      super.addEventListener(type, (ev) => {
        try {
          const d = JSON.parse(ev.data).data;
          if (d && d.id !== undefined && d.bytes !== undefined) window.__arrivals.set(`${d.id}/${d.bytes}`, performance.now());
        } catch { /* not ours */ }
        fn.call(this, ev);
      }, opts);
    }
  };
}

function pct(v, p) {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))];
}

async function hellos(server, from, n) {
  const out = [];
  for (let i = from; i < from + n; i += 16) {
    const batch = [];
    for (let j = i; j < Math.min(from + n, i + 16); j++) {
      const serial = `b0000000${j.toString(16).padStart(8, '0')}`;
      const mac = `2c:cf:67:${((j >> 16) & 255).toString(16).padStart(2, '0')}:${((j >> 8) & 255).toString(16).padStart(2, '0')}:${(j & 255).toString(16).padStart(2, '0')}`;
      batch.push(fetch(`${server.url}/api/v1/agent/hello`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ serial, mac, model: 'Raspberry Pi 5 Model B Rev 1.0', revision: 'd04170', agent_version: 'bench',
          disk: { device: '/dev/mmcblk0', size_bytes: 32 << 30 } }),
      }).then(async (r) => {
        const body = await r.json();
        if (!r.ok || !body.deployment) throw new Error(`hello ${serial}: HTTP ${r.status} ${JSON.stringify(body)}`);
        return { serial, id: body.deployment.deployment_id, secret: body.deployment.secret };
      }));
    }
    out.push(...await Promise.all(batch));
  }
  return out;
}

async function progress(server, d, bytes) {
  const r = await fetch(`${server.url}/api/v1/deployments/${d.id}/events`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Deployment-Secret': d.secret },
    body: JSON.stringify({ phase: 'streaming', bytes, total: 1 << 30, rate_bps: 5e7 }),
  });
  if (!r.ok) throw new Error(`event for ${d.id}: HTTP ${r.status} ${await r.text()}`);
}

// measure posts WARMUP + EVENTS progress events, one at a time, each for another
// board, and returns the times (ms) from each event's arrival in the page to its row's
// change, the first WARMUP left out.
async function measure(server, page, deps) {
  const times = [];
  for (let k = 0; k < EVENTS + WARMUP; k++) {
    const d = deps[(k * 7919) % deps.length];
    const bytes = (k + 1) * 12_345_678;
    await progress(server, d, bytes);
    const key = `${d.id}/${bytes}`;
    let ms;
    try {
      // The row element holds the row it shows (fleet.js fillRow): the update is done
      // when that carries the event's bytes.
      ms = await page.waitForFunction(({ k, serial, b }) => {
        const t = window.__arrivals.get(k);
        const el = document.querySelector(`#fleet-rows .row[data-serial="${serial}"]`);
        return t !== undefined && el && el.row && el.row.bytes === b ? performance.now() - t : null;
      }, { k: key, serial: d.serial, b: bytes }, { polling: 2, timeout: 20000 });
    } catch (err) {
      const seen = await page.evaluate(() => (window.__arrivals ? [...window.__arrivals.keys()].slice(-5) : 'no recorder'));
      throw new Error(`event ${key}: no row update seen (last arrivals: ${JSON.stringify(seen)}): ${err.message}`);
    }
    if (k >= WARMUP) times.push(await ms.jsonValue());
  }
  return times;
}

async function main() {
  if (!IMAGE || !fs.existsSync(IMAGE)) throw new Error(`E2E_IMAGE (${IMAGE}) must name a packed .img.zst`);
  const work = tempDir('rpi-bench-rows-');
  // Every board of the bench holds an open deployment at once: no admission limit.
  const config = path.join(work, 'config.json');
  fs.writeFileSync(config, JSON.stringify({ max_streams: ROWS + 100 }));
  const server = await startServer({ token: TOKEN, dataDir: path.join(work, 'data'), log: path.join(work, 'rpi-deployd.log'), config });
  let ctx;
  try {
    await promisify(execFile)(path.join(BIN, 'rpi-deployd'), ['image', 'add', IMAGE, '--activate', 'KXP2',
      '--server', server.url, '--token', TOKEN]);
    await api(server, TOKEN, 'POST', '/api/v1/venues', { code: 'BNCH', name: 'bench' });
    await api(server, TOKEN, 'POST', '/api/v1/pools/generate', { venue: 'BNCH', product: 'KXP2', count: ROWS + 10 });
    await api(server, TOKEN, 'POST', '/api/v1/batches', { venue: 'BNCH', product: 'KXP2', count: 0 });
    const few = await hellos(server, 0, 10);
    let page;
    ({ ctx, page } = await loggedIn(server, TOKEN, work, 'bench', 'bench-password-1'));
    await page.bringToFront(); // a background tab gets no animation frames
    await page.addInitScript(recordArrivals);
    const load = async (n) => {
      await page.reload(); // a fresh snapshot, and the init script runs
      await page.waitForFunction((want) => document.querySelectorAll('#fleet-rows .row').length >= want, n, { timeout: 60000 });
      await page.waitForTimeout(1000); // the first paints and the stream settle
    };
    await load(10);
    const small = await measure(server, page, few);
    const many = few.concat(await hellos(server, 10, ROWS - 10));
    await load(ROWS);
    const big = await measure(server, page, many);
    console.error(`bench-rows: ${EVENTS} events each; 10 rows: ${small.map((x) => x.toFixed(1)).join(' ')}`);
    console.error(`bench-rows: ${ROWS} rows: ${big.map((x) => x.toFixed(1)).join(' ')}`);
    for (const p of [50, 95]) {
      const a = pct(big, p), b = pct(small, p);
      console.log(`bench: dashboard-event-to-row-ms-p${p} ours=${a.toFixed(1)} baseline=${b.toFixed(1)} ratio=${(a / b).toFixed(2)} # ${ROWS} rows vs 10`);
    }
  } finally {
    if (ctx) await ctx.close();
    await server.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => { console.error('bench-rows:', err); process.exit(1); });

// Unit tests of the dashboard's live state and fleet arithmetic: the same modules the
// browser runs (dashboard/static/app/js), imported into Node (no DOM needed for these).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { live, rowFrom, netbootFrom } from '../static/app/js/live.js';
import { progress, eta } from '../static/app/js/pages/fleet.js';

// No server here: a finished deployment asks for a fresh snapshot (batch counters);
// count those requests instead.
let snapshots = 0;
live.snapshot = async () => { snapshots++; };

const SERIAL = '10000000abcd1234';
const dep = (over) => ({
  id: 7, serial: SERIAL, mac: '2c:cf:67:00:00:01', hostname: 'KXP2-CORO-007', venue: 'CORO', product: 'KXP2',
  batch_id: 1, state: 'open', phase: 'streaming', bytes: 0, total: 1000, rate_bps: 100,
  started_at: '2026-11-25T20:00:00.000000000Z', updated_at: '2026-11-25T20:00:01.000000000Z', ...over,
});
// An SSE message as the server sends it (server/events.Event).
const sse = (type, data, seq = 1) => JSON.stringify({ seq, time: '2026-11-25T20:00:00Z', type, data });

test('rowFrom: the state decides terminal phases; a failure keeps its phase and cause', () => {
  assert.equal(rowFrom(dep({ state: 'verified', phase: 'rebooting' })).phase, 'verified');
  const f = rowFrom(dep({ state: 'failed', phase: 'streaming', error_phase: 'streaming', error: 'chunk 3: sha256 mismatch' }));
  assert.deepEqual([f.phase, f.error_phase, f.error], ['failed', 'streaming', 'chunk 3: sha256 mismatch']);
  // A server clock ahead of ours never puts a row in the future.
  assert.ok(rowFrom(dep({ updated_at: '2999-01-01T00:00:00Z' })).seen <= Date.now());
});

test('netbootFrom: TFTP and DHCP events of known and unknown boards', () => {
  for (const [name, ev, want] of [
    ['unknown board at TFTP', { kind: 'tftp.file', detail: 'serial abcd1234: tftp.file kernel_2712.img 300000 bytes in 7ms' },
      { serial: 'short:abcd1234', phase: 'tftp', detail: 'kernel_2712.img', display: 'abcd1234' }],
    ['known board loading', { serial: SERIAL, kind: 'tftp.start', detail: 'tftp.start initramfs_2712 1000 bytes in 0s' },
      { serial: SERIAL, phase: 'tftp', detail: 'initramfs_2712', display: SERIAL }],
    ['DHCP by MAC only', { mac: '2c:cf:67:00:00:09', kind: 'dhcp.offer', detail: 'dhcp.offer 10.42.0.100' },
      { serial: 'mac:2c:cf:67:00:00:09', phase: 'dhcp', detail: 'offer 10.42.0.100', display: '2c:cf:67:00:00:09' }],
  ]) {
    const r = netbootFrom(ev);
    assert.ok(r, name);
    assert.deepEqual({ serial: r.serial, phase: r.phase, detail: r.detail, display: r.display }, want, name);
  }
  assert.equal(netbootFrom({ serial: SERIAL, kind: 'agent.hello', detail: 'x' }), null, 'not a netboot kind');
  assert.equal(netbootFrom({ kind: 'tftp.file', detail: 'tftp.file x 1 bytes in 1ms' }), null, 'no serial, no MAC');
});

test('events: a row never goes back in time, and hello replaces the netboot row', async () => {
  live.rows.clear();
  live.onEvent('board.netboot', sse('board.netboot', { kind: 'tftp.file', detail: 'serial abcd1234: tftp.file kernel_2712.img 1 bytes in 1ms' }));
  assert.equal(live.rows.get('short:abcd1234').phase, 'tftp');

  live.onEvent('deployment.progress', sse('deployment.progress', dep({ bytes: 600, updated_at: '2026-11-25T20:00:03Z' })));
  assert.equal(live.rows.has('short:abcd1234'), false, 'the deployment replaces the board\'s TFTP row');
  // An older progress report arriving late changes nothing.
  live.onEvent('deployment.progress', sse('deployment.progress', dep({ bytes: 300, updated_at: '2026-11-25T20:00:02Z' })));
  assert.equal(live.rows.get(SERIAL).bytes, 600);

  live.onEvent('deployment.finished', sse('deployment.finished', dep({ state: 'verified', phase: 'verified', updated_at: '2026-11-25T20:00:09Z', finished_at: '2026-11-25T20:00:09Z' })));
  live.onEvent('deployment.progress', sse('deployment.progress', dep({ phase: 'naming', updated_at: '2026-11-25T20:00:08Z' })));
  assert.equal(live.rows.get(SERIAL).phase, 'verified', 'a late progress report does not reopen a finished board');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(snapshots, 1, 'a finished deployment of a batch re-reads the batch counters once');

  // The board's next deployment (re-imaging) starts a new row.
  live.onEvent('deployment.created', sse('deployment.created', dep({ id: 8, phase: 'hello', updated_at: '2026-11-25T21:00:00Z' })));
  assert.deepEqual([live.rows.get(SERIAL).deployment_id, live.rows.get(SERIAL).phase], [8, 'hello']);
  live.rows.clear();
});

test('progress and ETA', () => {
  const row = (over) => rowFrom(dep(over));
  assert.equal(progress(row({ state: 'verified' })), 1);
  const half = progress(row({ bytes: 500 }));
  assert.ok(half > progress(row({ bytes: 100 })) && half < progress(row({ phase: 'verifying', bytes: 0 })), `streaming half: ${half}`);
  // A failed board's bar stops where it failed.
  assert.equal(progress(row({ state: 'failed', error_phase: 'streaming', bytes: 500 })), half);
  // 500 bytes left at 100 B/s, then a read-back of 1000 bytes at twice that rate.
  assert.equal(eta(row({ bytes: 500 })), 5 + 5);
  assert.equal(eta(row({ phase: 'verifying', bytes: 800 })), 2);
  assert.equal(eta(row({ rate_bps: 0 })), null, 'no rate, no ETA');
});

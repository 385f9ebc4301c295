// Browser tests of the dashboard: a real rpi-deployd, real rpi-agent processes
// flashing image files, headless Chromium driven by playwright-core. The steps run
// in order and share one server and one browser, as an operator's session would.
//
//   scripts/test.d/30-browser.sh      (builds everything, then runs this)

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  IMAGE, Agent, api, freeUDPPort, launch, parseCSV, screenshot, serialFor, startServer, targetFile, tempDir,
  tftpGet, tftpSetup,
} from './harness.mjs';

const TOKEN = 'e2e-admin-token-0123456789';
const USER = 'operator';
const PASSWORD = 'correct horse battery staple';
const VENUE = 'CORO';
const GOOD_BOARDS = 4;

describe('dashboard in a real browser', { concurrency: false }, () => {
  let work; let server; let ctx; let page; let imageName; let manifest; let restoreImage; let config; let tftpPort;
  const agents = [];
  const cards = tempDir('rpi-e2e-cards-');

  // visit opens a page of the application and waits until that page has rendered
  // (hash navigation keeps the previous page's elements until then).
  const visit = async (hash) => {
    const target = `${server.url}/ui/${hash}`;
    const name = hash.replace(/^#\//, '').split(/[/?]/)[0];
    const before = await page.evaluate(() => document.body.dataset.rendered || '').catch(() => '');
    const same = page.url() === target;
    await page.goto(target);
    await page.waitForFunction(([b, n, same]) => document.body.dataset.page === n &&
      (same || (document.body.dataset.rendered || '') !== b), [before, name, same]);
  };

  // Each step builds on the ones before: after a failure the rest are skipped (not
  // left to time out), and the failing page is saved as a screenshot.
  let broken = '';
  const step = (name, fn) => test(name, async (t) => {
    if (broken) { t.skip(`an earlier step failed: ${broken}`); return; }
    try {
      await fn(t);
    } catch (err) {
      broken = name;
      if (page) {
        await screenshot(page, `FAILED-${name.replace(/[^a-z0-9]+/gi, '-')}`, { fullPage: true }).catch(() => {});
        const text = await page.textContent('body').catch(() => '');
        console.error(`# page at ${page.url()}:\n${(text || '').replace(/\s+/g, ' ').slice(0, 1500)}`);
      }
      throw err;
    }
  });

  before(async () => {
    assert.ok(IMAGE && fs.existsSync(IMAGE), `E2E_IMAGE (${IMAGE}) must name a packed .img.zst`);
    manifest = JSON.parse(fs.readFileSync(IMAGE.replace(/\.img\.zst$/, '.manifest.json'), 'utf8'));
    imageName = manifest.name;
    work = tempDir('rpi-e2e-');
    tftpPort = await freeUDPPort();
    config = tftpSetup(work, tftpPort);
    server = await startServer({ token: TOKEN, dataDir: path.join(work, 'data'), log: path.join(work, 'rpi-deployd.log'), config });
    await api(server, TOKEN, 'PUT', `/api/v1/users/${USER}`, { password: PASSWORD });
    ctx = await launch(path.join(work, 'chromium-profile'));
    page = await ctx.newPage();
    page.setDefaultTimeout(15000);
    page.on('pageerror', (err) => console.error('page error:', err));
  });

  after(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    if (ctx) await ctx.close();
    if (server) await server.stop();
    console.log(`# logs and data: ${work}`);
    fs.rmSync(cards, { recursive: true, force: true });
  });

  step('without a session only the login page answers', async () => {
    const res = await page.goto(`${server.url}/ui/`);
    assert.match(page.url(), /\/login\?next=%2Fui%2F$/);
    assert.equal(res.status(), 200);
    await page.locator('#login').waitFor();
    const answers = await page.evaluate(async () => {
      const out = {};
      for (const p of ['/api/v1/fleet', '/api/v1/venues', '/api/v1/events', '/ui/js/main.js', '/api/v1/deployments?format=csv']) {
        out[p] = (await fetch(p)).status;
      }
      return out;
    });
    for (const [p, status] of Object.entries(answers)) assert.equal(status, 401, `${p} without a session`);
    await screenshot(page, 'login');
  });

  step('a wrong password is refused with a clear message', async () => {
    await page.fill('#username', USER);
    await page.fill('#password', 'wrong');
    await page.click('button[type=submit]');
    await page.locator('#login-error').waitFor({ state: 'visible' });
    assert.match(await page.textContent('#login-error'), /wrong user or password/i);
  });

  step('log in and see the live fleet view', async () => {
    await page.fill('#username', USER);
    await page.fill('#password', PASSWORD);
    await page.click('button[type=submit]');
    await page.waitForURL(/\/ui\/$/);
    await page.locator('#live.on').waitFor();
    assert.equal(await page.textContent('#user'), USER);
    assert.match(await page.textContent('#view'), /No board is deploying/);
  });

  step('create a venue', async () => {
    await visit(`#/venues`);
    await page.click('#venue-add');
    await page.fill('#f-code', 'coro1');
    await page.fill('#f-name', 'Coronado Kartin');
    await page.click('dialog button[type=submit]');
    // The browser refuses the pattern before the server sees it; fix and resend.
    assert.equal(await page.locator('dialog[open]').count(), 1);
    await page.fill('#f-code', VENUE);
    await page.click('dialog button[type=submit]');
    await page.locator('dialog').waitFor({ state: 'detached' });
    await page.locator('td', { hasText: 'Coronado Kartin' }).waitFor();
    await page.locator('tr', { hasText: VENUE }).locator('button:text("Rename")').click();
    await page.fill('#f-name', 'Coronado Karting & Grill');
    await page.click('dialog button[type=submit]');
    await page.locator('td', { hasText: 'Coronado Karting & Grill' }).waitFor();
  });

  step('generate a hostname pool and export it as CSV', async () => {
    await visit(`#/pools`);
    await page.click('#pool-generate');
    await page.selectOption('#f-venue', VENUE);
    await page.selectOption('#f-product', 'KXP2');
    await page.fill('#f-count', '12');
    await page.click('dialog button[type=submit]');
    await page.locator('#pool-names td', { hasText: 'KXP2-CORO-012' }).waitFor();
    assert.equal(await page.locator('#pool-names tbody tr').count(), 12);
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#pool-export')]);
    const rows = parseCSV(fs.readFileSync(await dl.path(), 'utf8')).filter((r) => r.join('') !== '');
    const names = rows.map((r) => r[0]).filter((n) => /^KXP2-CORO-\d+$/.test(n));
    assert.deepEqual(names, Array.from({ length: 12 }, (_, i) => `KXP2-CORO-${String(i + 1).padStart(3, '0')}`));

    // Import: a bad line is refused with its line number and adds nothing; then a
    // good file adds its names. Retire one of them.
    await page.click('#pool-import');
    await page.selectOption('#f-venue', VENUE);
    await page.selectOption('#f-product', 'KXP2');
    await page.fill('#f-csv', 'name\nKXP2-CORO-013\nnot a hostname!\n');
    await page.click('dialog button[type=submit]');
    await page.locator('dialog .error', { hasText: 'line 3' }).waitFor();
    await page.fill('#f-csv', 'name\nKXP2-CORO-013\nKXP2-CORO-014\n');
    await page.click('dialog button[type=submit]');
    await page.locator('dialog').waitFor({ state: 'detached' });
    await page.locator('#pool-names td', { hasText: 'KXP2-CORO-014' }).waitFor();
    assert.equal(await page.locator('#pool-names tbody tr').count(), 14);
    const row14 = page.locator('#pool-names tr', { hasText: 'KXP2-CORO-014' });
    await row14.locator('button:text("Retire")').click();
    await page.click('dialog button[type=submit]');
    await row14.locator('.pill', { hasText: 'retired' }).waitFor();
    await screenshot(page, 'pools', { fullPage: true });
  });

  step('upload an image with progress, activate it, read its manifest', async () => {
    // An earlier upload broke off after 5 MiB: the page goes on from there.
    const manifestText = fs.readFileSync(IMAGE.replace(/\.img\.zst$/, '.manifest.json'));
    await fetch(`${server.url}/api/v1/images/${imageName}/manifest`, { method: 'PUT', headers: { Authorization: `Bearer ${TOKEN}` }, body: manifestText });
    const head = fs.readFileSync(IMAGE).subarray(0, 5 << 20);
    const res = await fetch(`${server.url}/api/v1/images/${imageName}/data`, {
      method: 'PUT', body: head,
      headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Range': `bytes 0-${head.length - 1}/${manifest.compressed_size}` },
    });
    assert.equal(res.status, 200, await res.text());
    await visit(`#/images`);
    await page.locator('tr', { hasText: imageName }).locator('.pill', { hasText: 'uploading' }).waitFor();
    await page.setInputFiles('#image-files', [IMAGE, IMAGE.replace(/\.img\.zst$/, '.manifest.json')]);
    await page.click('#image-upload');
    await page.locator('#uploads', { hasText: 'uploaded and verified (resumed at 5.2 MB)' }).waitFor({ timeout: 60000 });
    await page.locator('td a', { hasText: imageName }).waitFor();
    await page.locator('tr', { hasText: imageName }).locator('button', { hasText: 'Activate' }).click();
    await page.selectOption('#f-product', 'KXP2');
    await page.click('dialog button[type=submit]');
    await page.locator('tr', { hasText: imageName }).locator('.pill', { hasText: 'KXP2' }).waitFor();
    await screenshot(page, 'images');
    await page.click(`td a:text("${imageName}")`);
    await page.locator('#manifest').waitFor();
    assert.match(await page.textContent('#manifest'), new RegExp(manifest.sha256));
    await screenshot(page, 'image-manifest', { fullPage: true });
  });

  step('create a batch', async () => {
    await visit(`#/batches`);
    await page.click('#batch-add');
    await page.selectOption('#f-venue', VENUE);
    await page.selectOption('#f-product', 'KXP2');
    await page.fill('#f-count', String(GOOD_BOARDS));
    await page.fill('#f-priority', '5');
    await page.click('dialog button[type=submit]');
    await page.locator('td', { hasText: `0 / ${GOOD_BOARDS}` }).waitFor();
  });

  step('boards advance live to verified without a reload', async () => {
    await visit(`#/fleet`);
    await page.locator('#live.on').waitFor();
    // Mark this document: a reload would lose the mark. Record every phase each
    // row shows, as the operator would see it.
    await page.evaluate(() => {
      window.__sameDocument = true;
      window.__phases = {};
      const seen = () => {
        for (const row of document.querySelectorAll('#fleet-rows .row')) {
          const list = (window.__phases[row.dataset.serial] ||= []);
          if (list[list.length - 1] !== row.dataset.phase) {
            list.push(row.dataset.phase);
            if (row.dataset.phase === 'verified') (window.__verifiedAt ||= {})[row.dataset.serial] = Date.now();
          }
        }
      };
      new MutationObserver(seen).observe(document.getElementById('view'), { childList: true, subtree: true });
    });
    const boards = Array.from({ length: GOOD_BOARDS }, (_, i) => serialFor(i + 1));
    for (const [i, b] of boards.entries()) {
      const target = targetFile(cards, `card-${i + 1}.img`, manifest.size + (64 << 20));
      // An SD card writes at tens of MB/s: the cap makes each phase last long enough
      // for the operator (and this test) to see it.
      agents.push(new Agent({ server, ...b, target, log: path.join(work, `agent-${i + 1}.log`), extra: ['--write-rate-limit', '20'] }));
    }
    for (const b of boards) {
      await page.locator(`.row[data-serial="${b.serial}"][data-phase="verified"]`).waitFor({ timeout: 90000 });
    }
    const { same, phases } = await page.evaluate(() => ({ same: window.__sameDocument === true, phases: window.__phases }));
    assert.ok(same, 'the page reloaded');
    const hostnames = await page.$$eval('#fleet-rows .row.verified .host', (els) => els.map((e) => e.textContent).sort());
    assert.deepEqual(hostnames, Array.from({ length: GOOD_BOARDS }, (_, i) => `KXP2-CORO-00${i + 1}`));
    for (const b of boards) {
      const p = phases[b.serial] || [];
      assert.equal(p[p.length - 1], 'verified', `${b.serial} phases ${p}`);
      assert.ok(p.length >= 2, `${b.serial}: only ${p} was ever shown; want the phases before verified too`);
    }
    console.log('# phases shown:', JSON.stringify(phases));
    // How long after the server recorded each result the operator saw it.
    const shownAt = await page.evaluate(() => window.__verifiedAt);
    const deps = await api(server, TOKEN, 'GET', '/api/v1/deployments?state=verified');
    const lag = boards.map((b) => shownAt[b.serial] - Date.parse(deps.find((d) => d.serial === b.serial).finished_at));
    console.log(`# result on screen after the server recorded it: ${lag.map((ms) => `${ms} ms`).join(', ')}`);
    assert.ok(lag.every((ms) => ms < 1000), `updates within a second: ${lag}`);
    for (const a of agents) assert.equal(await a.exited, 0, `agent ${a.serial} (log ${a.log})`);
    await page.locator('.stat.ok .v', { hasText: String(GOOD_BOARDS) }).waitFor();
  });

  step('an injected failure stands out with its cause while others stream', async () => {
    await api(server, TOKEN, 'POST', '/api/v1/batches', { venue: VENUE, product: 'KXP2', count: 0, priority: 1, note: 'open-ended' });
    // Two more boards at SD-card speed, and one whose card cannot be opened (the
    // agent is pointed at a device that is not there).
    const slow = [serialFor(5), serialFor(6)];
    for (const [i, b] of slow.entries()) {
      const target = targetFile(cards, `card-slow-${i}.img`, manifest.size + (64 << 20));
      agents.push(new Agent({ server, ...b, target, log: path.join(work, `agent-slow-${i}.log`), extra: ['--write-rate-limit', '6'] }));
    }
    const bad = serialFor(66);
    const missing = path.join(cards, 'no-such-reader', 'card.img');
    agents.push(new Agent({ server, ...bad, target: missing, log: path.join(work, 'agent-missing.log') }));
    const row = page.locator(`.row[data-serial="${bad.serial}"][data-phase="failed"]`);
    await row.waitFor({ timeout: 60000 });
    const cause = (await row.locator('.cause').textContent()).trim();
    assert.match(cause, /no-such-reader.*no such file or directory/, `cause shown: ${cause}`);
    assert.match(await row.locator('.phase .detail').textContent(), /^in \S+/);
    // Failures sort first and the failed counter lights up.
    assert.equal(await page.locator('#fleet-rows .row').first().getAttribute('data-serial'), bad.serial);
    await page.locator('.stat.bad .v', { hasText: '1' }).waitFor();
    // A board that is loading its kernel over TFTP and has not said hello yet.
    const early = serialFor(9).serial.slice(-8);
    await tftpGet(tftpPort, `${early}/kernel_2712.img`);
    await page.locator(`.row[data-serial="short:${early}"][data-phase="tftp"] .detail`, { hasText: 'kernel_2712.img' }).waitFor();
    // The docs' picture: a failure, boards streaming, one at TFTP, boards verified.
    await page.locator('#fleet-rows .row.streaming').first().waitFor({ timeout: 60000 });
    await page.waitForTimeout(1500);
    await screenshot(page, 'fleet', { fullPage: true });
    for (const b of slow) {
      await page.locator(`.row[data-serial="${b.serial}"][data-phase="verified"]`).waitFor({ timeout: 90000 });
    }
    console.log(`# failure shown: ${cause}`);
  });

  step('a corrupted image fails the board with the cause the agent found', async () => {
    // Corrupt the stored image in the middle of a frame: the next board's agent finds
    // a chunk that does not decode to its hash and reports the failure.
    const stored = findFile(path.join(work, 'data'), `${imageName}.img.zst`);
    assert.ok(stored, 'stored image file');
    const chunk = manifest.chunks[Math.floor(manifest.chunks.length / 2)];
    const at = chunk.frame + Math.floor(chunk.frame_size / 2);
    const fd = fs.openSync(stored, 'r+');
    const good = Buffer.alloc(256);
    fs.readSync(fd, good, 0, 256, at);
    fs.writeSync(fd, Buffer.alloc(256, 0xa5), 0, 256, at);
    restoreImage = () => { fs.writeSync(fd, good, 0, 256, at); fs.closeSync(fd); };
    const b = serialFor(99);
    const target = targetFile(cards, 'card-corrupt.img', manifest.size + (64 << 20));
    agents.push(new Agent({ server, ...b, target, log: path.join(work, 'agent-corrupt.log'), extra: ['--retry-budget', '5s'] }));
    const row = page.locator(`.row[data-serial="${b.serial}"][data-phase="failed"]`);
    await row.waitFor({ timeout: 90000 });
    const cause = (await row.locator('.cause').textContent()).trim();
    assert.ok(cause.length > 10 && !/no cause given/.test(cause), `cause shown: ${cause}`);
    assert.match(await row.locator('.phase .detail').textContent(), /^in (Streaming|Verifying)/);
    await page.locator('.stat.bad .v', { hasText: '2' }).waitFor();
    console.log(`# corruption shown: ${cause}`);
    restoreImage();
  });

  step('deployment history filters and exports CSV', async () => {
    await visit(`#/deployments`);
    await page.locator('#history-filter').waitFor();
    await page.locator('td', { hasText: 'KXP2-CORO-001' }).first().waitFor();
    await screenshot(page, 'history', { fullPage: true });
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#history-csv')]);
    const [head, ...rows] = parseCSV(fs.readFileSync(await dl.path(), 'utf8')).filter((r) => r.join('') !== '');
    const col = (name) => { const i = head.indexOf(name); assert.ok(i >= 0, `CSV has no ${name} column: ${head}`); return i; };
    const byHost = new Map(rows.map((r) => [r[col('hostname')], r]));
    for (let i = 1; i <= GOOD_BOARDS; i++) {
      const r = byHost.get(`KXP2-CORO-00${i}`);
      assert.ok(r, `CSV lacks KXP2-CORO-00${i}`);
      assert.equal(r[col('state')], 'verified');
      assert.equal(r[col('venue')], VENUE);
    }
    const failed = rows.filter((r) => r[col('state')] === 'failed');
    assert.equal(failed.length, 2, 'two failed deployments in the CSV');
    for (const f of failed) assert.notEqual(f[col('error')], '');
    assert.equal(rows.filter((r) => r[col('state')] === 'verified').length, GOOD_BOARDS + 2);
    assert.equal(rows.length, GOOD_BOARDS + 4);

    // A filter narrows both the table and the export.
    await page.selectOption('#f-state', 'failed');
    await page.click('#history-filter button[type=submit]');
    await page.waitForURL(/state=failed/);
    await page.waitForFunction(() => {
      const pills = [...document.querySelectorAll('#view tbody td[data-col="state"] .pill')];
      return pills.length > 0 && pills.every((p) => p.classList.contains('failed'));
    });
    assert.equal(await page.locator('#view tbody tr').count(), 2);
    const [dl2] = await Promise.all([page.waitForEvent('download'), page.click('#history-csv')]);
    const rows2 = parseCSV(fs.readFileSync(await dl2.path(), 'utf8')).filter((r) => r.join('') !== '');
    assert.equal(rows2.length, 3, 'header and the two failed deployments');

    // One deployment: its cause and every phase with its time.
    await page.locator('#view tbody tr').first().click();
    await page.waitForURL(/#\/deployments\/\d+$/);
    await page.locator('dd.error').waitFor();
    assert.ok(await page.locator('#view tbody tr').count() >= 1, 'phases listed');
    await screenshot(page, 'deployment', { fullPage: true });
  });

  step('flag a board for re-imaging and see its history', async () => {
    const { serial } = serialFor(1);
    // Names go out in hello order, which concurrent boards do not promise.
    const { hostname } = await api(server, TOKEN, 'GET', `/api/v1/boards/${serial}`);
    assert.match(hostname, /^KXP2-CORO-00[1-4]$/);
    await visit(`#/boards/${serial}`);
    await page.locator('td', { hasText: hostname }).first().waitFor();
    await page.click('button:text("Re-image")');
    await page.locator('button:text("Cancel re-image")').waitFor();
    const board = await api(server, TOKEN, 'GET', `/api/v1/boards/${serial}`);
    assert.equal(board.reimage, true);
    await screenshot(page, 'board', { fullPage: true });
  });

  step('batches page: pause, resume, reprioritise, cancel', async () => {
    await visit(`#/batches`);
    const open = page.locator('tr', { hasText: 'open-ended' });
    await open.locator('button:text("Pause")').click();
    await open.locator('.pill.paused').waitFor();
    await open.locator('button:text("Resume")').click();
    await open.locator('.pill.active').waitFor();
    await open.locator('button:text("Priority")').click();
    await page.fill('#f-priority', '9');
    await page.click('dialog button[type=submit]');
    await open.locator('td[data-col="priority"]', { hasText: '9' }).waitFor();
    await screenshot(page, 'batches');
    await open.locator('button:text("Cancel")').click();
    await open.locator('.pill.cancelled').waitFor();
    await page.locator('tr', { hasText: `${GOOD_BOARDS} / ${GOOD_BOARDS}` }).locator('.pill.complete').waitFor();
  });

  step('audit log records the operator actions', async () => {
    await visit(`#/audit`);
    await page.locator('#view tbody tr').first().waitFor();
    // Every action this session took through the pages, by this operator.
    const mine = await page.$$eval('#view tbody tr', (trs) => trs
      .filter((tr) => tr.querySelector('td[data-col="actor"]').textContent === 'user:operator')
      .map((tr) => tr.querySelector('td[data-col="action"]').textContent));
    for (const action of ['user.login', 'venue.add', 'pool.generate', 'pool.import', 'pool.retire', 'venue.rename', 'image.ready',
      'image.activate', 'batch.add', 'batch.pause', 'batch.resume', 'batch.priority', 'batch.cancel', 'board.reimage']) {
      assert.ok(mine.includes(action), `audit log lacks ${action} by user:operator: ${mine}`);
    }
    // The filter narrows the list.
    await page.fill('#f-action', 'batch.');
    await page.click('#view form button[type=submit]');
    await page.waitForURL(/action=batch/);
    await page.waitForFunction(() => [...document.querySelectorAll('#view tbody td[data-col="action"]')]
      .every((td) => td.textContent.startsWith('batch.')));
    const filtered = await page.$$eval('#view tbody td[data-col="action"]', (tds) => tds.map((td) => td.textContent));
    assert.ok(filtered.length >= 5 && filtered.every((a) => a.startsWith('batch.')), `filtered: ${filtered}`);
    await screenshot(page, 'audit', { fullPage: true });
  });

  step('the live view reconnects after a server restart and catches up', async () => {
    await visit(`#/fleet`);
    await page.locator('#live.on').waitFor();
    await page.evaluate(() => { window.__sameDocument = true; });
    const listen = new URL(server.url).host;
    await server.stop();
    await page.locator('#live.off').waitFor();
    server = await startServer({ token: TOKEN, dataDir: path.join(work, 'data'), log: path.join(work, 'rpi-deployd-2.log'), listen, config });
    // A board flashes at full speed right after the restart, likely before the
    // browser is back: its row must come from the snapshot fetched on reconnect.
    await api(server, TOKEN, 'POST', '/api/v1/batches', { venue: VENUE, product: 'KXP2', count: 1 });
    const b = serialFor(7);
    const target = targetFile(cards, 'card-7.img', manifest.size);
    const agent = new Agent({ server, ...b, target, log: path.join(work, 'agent-7.log') });
    agents.push(agent);
    assert.equal(await agent.exited, 0, `agent log ${agent.log}`);
    await page.locator(`.row[data-serial="${b.serial}"][data-phase="verified"]`).waitFor({ timeout: 30000 });
    await page.locator('#live.on').waitFor();
    assert.ok(await page.evaluate(() => window.__sameDocument === true), 'the page reloaded');
  });

  step('a board shows at TFTP with the file it loads, then as its deployment', async () => {
    await api(server, TOKEN, 'POST', '/api/v1/batches', { venue: VENUE, product: 'KXP2', count: 1 });
    const b = serialFor(8);
    const short = b.serial.slice(-8);
    await tftpGet(tftpPort, `${short}/config.txt`);
    await tftpGet(tftpPort, `${short}/kernel_2712.img`);
    const early = page.locator(`.row[data-serial="short:${short}"][data-phase="tftp"]`);
    await early.locator('.detail', { hasText: 'kernel_2712.img' }).waitFor();
    assert.match(await early.locator('.meta').textContent(), new RegExp(short));
    const agent = new Agent({ server, ...b, target: targetFile(cards, 'card-8.img', manifest.size), log: path.join(work, 'agent-8.log') });
    agents.push(agent);
    await page.locator(`.row[data-serial="${b.serial}"][data-phase="verified"]`).waitFor({ timeout: 30000 });
    await early.waitFor({ state: 'detached' });
  });

  step('readable on a tablet', async () => {
    await page.setViewportSize({ width: 820, height: 1180 });
    await visit(`#/fleet`);
    await page.locator('#fleet-rows .row').first().waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `page scrolls sideways by ${overflow}px on a tablet`);
    const px = await page.$eval('#fleet-rows .row .host', (el) => parseFloat(getComputedStyle(el).fontSize));
    assert.ok(px >= 20, `hostname font ${px}px`);
    await screenshot(page, 'fleet-tablet', { fullPage: true });
    await page.setViewportSize({ width: 1440, height: 900 });
  });

  step('log out ends the session', async () => {
    await visit(`#/fleet`);
    await page.click('#logout');
    await page.waitForURL(/\/login$/);
    const status = await page.evaluate(async () => (await fetch('/api/v1/fleet')).status);
    assert.equal(status, 401);
    await page.goto(`${server.url}/ui/#/venues`);
    assert.match(page.url(), /\/login\?next=/);
  });
});

function findFile(dir, name) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isFile() && e.name === name) return p;
    if (e.isDirectory()) { const f = findFile(p, name); if (f) return f; }
  }
  return null;
}


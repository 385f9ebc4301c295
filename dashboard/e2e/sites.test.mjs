// Browser test of the site selector (rpi-deployd serve --site, docs/dashboard.md): a
// real rpi-deployd, headless Chromium (playwright-core, /usr/bin/chromium). One data
// directory is served first as site north, then as site south, as two servers on one
// database would share it: board 2 was seen last at north, boards 1 (first seen at
// north) and 3 at south. The operator sees every site, picks one, and the fleet view,
// the boards and the history show that site only, the choice kept in the URL across
// pages and a reload; the live view of one site never shows another site's boards.
//
//   scripts/test.d/30-browser.sh      (builds everything, then runs this)

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { IMAGE, api, loggedIn, screenshot, serialFor, startServer, tempDir } from './harness.mjs';

const TOKEN = 'e2e-sites-token-0123456789';
const USER = 'operator';
const PASSWORD = 'correct horse battery staple';

describe('site selector', { concurrency: false }, () => {
  let work; let server; let ctx; let page;
  const board = (n) => serialFor(n);

  const hello = async (srv, n) => {
    const b = board(n);
    const r = await api(srv, TOKEN, 'POST', '/api/v1/agent/hello', { serial: b.serial, mac: b.mac, agent_version: 'e2e' });
    assert.equal(r.action, 'deploy', `hello of board ${n}: ${JSON.stringify(r)}`);
    return r;
  };

  // rows are the fleet view's boards: serial → site.
  const rows = () => page.$$eval('#fleet-rows .row', (els) => Object.fromEntries(els.map((e) => [e.dataset.serial, e.dataset.site])));
  const waitRows = (want) => page.waitForFunction((w) => {
    const got = [...document.querySelectorAll('#fleet-rows .row')].map((e) => `${e.dataset.serial}@${e.dataset.site}`).sort();
    return JSON.stringify(got) === JSON.stringify(w);
  }, Object.entries(want).map(([s, site]) => `${s}@${site}`).sort());
  const rendered = (name) => page.waitForFunction((n) => document.body.dataset.page === n, name);

  before(async () => {
    assert.ok(IMAGE && fs.existsSync(IMAGE), `E2E_IMAGE (${IMAGE}) must name a packed .img.zst`);
    const manifestText = fs.readFileSync(IMAGE.replace(/\.img\.zst$/, '.manifest.json'));
    const manifest = JSON.parse(manifestText);
    work = tempDir('rpi-e2e-sites-');
    const data = path.join(work, 'data');
    const north = await startServer({ token: TOKEN, dataDir: data, log: path.join(work, 'north.log'), args: ['--site', 'north'] });
    try {
      await api(north, TOKEN, 'POST', '/api/v1/venues', { code: 'CORO', name: 'Coronado' });
      const auth = { Authorization: `Bearer ${TOKEN}` };
      let res = await fetch(`${north.url}/api/v1/images/${manifest.name}/manifest`, { method: 'PUT', headers: auth, body: manifestText });
      assert.equal(res.status, 200, await res.text());
      res = await fetch(`${north.url}/api/v1/images/${manifest.name}/data`, {
        method: 'PUT', body: fs.readFileSync(IMAGE),
        headers: { ...auth, 'Content-Range': `bytes 0-${manifest.compressed_size - 1}/${manifest.compressed_size}` },
      });
      assert.equal(res.status, 200, await res.text());
      await api(north, TOKEN, 'POST', `/api/v1/images/${manifest.name}/activate`, { product: 'RXP2', allow_no_first_boot: true });
      await api(north, TOKEN, 'POST', '/api/v1/batches', { venue: 'CORO', product: 'RXP2', count: 0, allow_no_first_boot: true });
      await hello(north, 1);
      await hello(north, 2);
    } finally {
      await north.stop();
    }
    server = await startServer({ token: TOKEN, dataDir: data, log: path.join(work, 'south.log'), args: ['--site', 'south'] });
    await hello(server, 1); // board 1 boots at south now
    await hello(server, 3);
    ({ ctx, page } = await loggedIn(server, TOKEN, work, USER, PASSWORD, 15000));
  });

  after(async () => {
    if (ctx) await ctx.close();
    if (server) await server.stop();
    console.log(`# logs and data: ${work}`);
  });

  test('all sites: every board, each row naming its site; the selector lists the sites', async () => {
    await page.goto(`${server.url}/ui/#/fleet`);
    await rendered('fleet');
    await waitRows({ [board(1).serial]: 'south', [board(2).serial]: 'north', [board(3).serial]: 'south' });
    await page.locator('#site option', { hasText: 'south (this server)' }).waitFor({ state: 'attached' });
    const options = await page.$$eval('#site option', (os) => os.map((o) => [o.value, o.textContent]));
    assert.deepEqual(options, [['', 'All sites'], ['north', 'north · 1 boards'], ['south', 'south (this server) · 2 boards']]);
    assert.match(await page.locator(`#fleet-rows .row[data-serial="${board(2).serial}"] .meta`).textContent(), /site north/);
  });

  test('picking a site filters the fleet view and stays in the URL across a reload', async () => {
    await page.selectOption('#site', 'north');
    await page.waitForURL(/\/ui\/\?site=north#\/fleet$/);
    await waitRows({ [board(2).serial]: 'north' });
    await screenshot(page, 'sites-fleet-north');
    await page.reload();
    await rendered('fleet');
    assert.equal(await page.inputValue('#site'), 'north');
    await waitRows({ [board(2).serial]: 'north' });
  });

  test('the boards and the history show that site only, with a site column', async () => {
    await page.click('#nav a[data-page="boards"]');
    await rendered('boards');
    assert.match(page.url(), /\?site=north#\/boards$/);
    await page.locator('td[data-col="site"]').first().waitFor();
    assert.deepEqual(await page.$$eval('td[data-col="site"]', (tds) => tds.map((t) => t.textContent)), ['north']);
    assert.deepEqual(await page.$$eval('td[data-col="serial"]', (tds) => tds.map((t) => t.textContent)), [board(2).serial]);
    await page.click('#nav a[data-page="deployments"]');
    await rendered('deployments');
    await page.locator('td[data-col="site"]').first().waitFor();
    assert.deepEqual(await page.$$eval('td[data-col="site"]', (tds) => tds.map((t) => t.textContent)), ['north']);
    await screenshot(page, 'sites-history-north');
  });

  test('live: a board saying hello at south never reaches the view of north, and does reach south\'s', async () => {
    await page.click('#nav a[data-page="fleet"]');
    await rendered('fleet');
    await waitRows({ [board(2).serial]: 'north' });
    await hello(server, 4);
    // Events of no site (a new batch) come through the same stream, in order: once the
    // batch is on screen, board 4's events (published before it) would have been too.
    const b = await api(server, TOKEN, 'POST', '/api/v1/batches', { venue: 'CORO', product: 'RXP2', count: 3, allow_no_first_boot: true });
    await page.locator(`.batch[data-batch="${b.id}"]`).waitFor();
    assert.deepEqual(await rows(), { [board(2).serial]: 'north' });
    await page.selectOption('#site', 'south');
    await page.waitForURL(/\/ui\/\?site=south#\/fleet$/);
    await waitRows({ [board(1).serial]: 'south', [board(3).serial]: 'south', [board(4).serial]: 'south' });
    await hello(server, 5);
    await waitRows({ [board(1).serial]: 'south', [board(3).serial]: 'south', [board(4).serial]: 'south', [board(5).serial]: 'south' });
  });

  test('all sites again: the site leaves the URL and every board is back', async () => {
    await page.selectOption('#site', '');
    await page.waitForURL(/\/ui\/#\/fleet$/);
    await waitRows({
      [board(1).serial]: 'south', [board(2).serial]: 'north', [board(3).serial]: 'south',
      [board(4).serial]: 'south', [board(5).serial]: 'south',
    });
    await screenshot(page, 'sites-fleet-all');
  });
});

// Browser test of the "New boards" page: a real rpi-deployd, headless Chromium, and
// Raspberry Pi's own Pi 5 firmware (kept beside the clone in
// shared/reference/rpi-eeprom, from the public raspberrypi/rpi-eeprom repository).
// The operator reads the three steps, uploads the firmware through the page, is told
// clearly when a file is wrong, and downloads the card the server built.
//
//   scripts/test.d/30-browser.sh      (builds everything, then runs this)

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { api, loggedIn, screenshot, startServer, tempDir } from './harness.mjs';

const TOKEN = 'e2e-admin-token-newboards-0123';
const USER = 'operator';
const PASSWORD = 'correct horse battery staple';

// firmwareDir finds shared/reference/rpi-eeprom beside the repository root (or
// further up, for a git worktree).
function firmwareDir() {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'go.mod'))) {
    const up = path.dirname(dir);
    assert.notEqual(up, dir, 'no go.mod above dashboard/e2e');
    dir = up;
  }
  for (let up = path.dirname(dir); ; up = path.dirname(up)) {
    const ref = path.join(up, 'shared', 'reference', 'rpi-eeprom');
    if (fs.existsSync(path.join(ref, 'recovery.bin'))) return ref;
    assert.notEqual(path.dirname(up), up, `Raspberry Pi's firmware is missing: no shared/reference/rpi-eeprom beside ${dir}`);
  }
}

describe('New boards page', { concurrency: false }, () => {
  let work; let server; let ctx; let page;
  const ref = firmwareDir();

  before(async () => {
    work = tempDir('rpi-e2e-newboards-');
    server = await startServer({ token: TOKEN, dataDir: path.join(work, 'data'), log: path.join(work, 'rpi-deployd.log') });
    ({ ctx, page } = await loggedIn(server, TOKEN, work, USER, PASSWORD, 20000));
  });

  after(async () => {
    if (ctx) await ctx.close();
    if (server) await server.stop();
    console.log(`# logs and data: ${work}`);
  });

  const open = async () => {
    await page.goto(`${server.url}/ui/#/newboards`);
    await page.waitForFunction(() => document.body.dataset.page === 'newboards');
  };

  test('before any firmware: three steps and where to get the firmware', async () => {
    await open();
    await page.locator('#nav a[data-page=newboards].active').waitFor();
    assert.equal(await page.locator('#eeprom-steps li').count(), 3);
    assert.match(await page.textContent('#eeprom-steps'), /rpi-image write card\.img/);
    assert.match(await page.textContent('#eeprom-missing'), /github\.com\/raspberrypi\/rpi-eeprom/);
    assert.equal(await page.locator('#eeprom-download').count(), 0);
    await screenshot(page, 'newboards-empty', { fullPage: true });
  });

  test('a wrong file is refused with the reason, and no card appears', async () => {
    await page.setInputFiles('#f-pieeprom', path.join(ref, 'recovery.bin'));
    await page.setInputFiles('#f-recovery', path.join(ref, 'recovery.bin'));
    await page.click('#eeprom-upload');
    await page.locator('#eeprom-error').waitFor({ state: 'visible' });
    assert.match(await page.textContent('#eeprom-error'), /not a Raspberry Pi 5 bootloader image/);
    const res = await page.evaluate(async () => (await fetch('/api/v1/eeprom/card')).status);
    assert.equal(res, 404);
  });

  test('an unknown bootloader key is refused by name', async () => {
    await page.setInputFiles('#f-pieeprom', path.join(ref, 'pieeprom-2026-05-26.bin'));
    await page.setInputFiles('#f-recovery', path.join(ref, 'recovery.bin'));
    await page.fill('#f-config', 'BOOT_ORDR=0xf21');
    await page.click('#eeprom-upload');
    await page.waitForFunction(() => /BOOT_ORDR/.test(document.getElementById('eeprom-error').textContent));
    assert.match(await page.textContent('#eeprom-error'), /unknown bootloader config key "BOOT_ORDR"/);
  });

  test('upload the firmware: the card is offered with its version and config', async () => {
    await page.fill('#f-config', 'TFTP_PREFIX=2');
    await page.click('#eeprom-upload');
    await page.locator('#eeprom-download').waitFor();
    assert.match(await page.textContent('#eeprom-card'), /pieeprom-2026-05-26\.bin — bootloader 2026-05-26/);
    const conf = await page.textContent('#eeprom-config');
    assert.match(conf, /^\[all\]\n/);
    for (const line of ['BOOT_ORDER=0xf21', 'NET_INSTALL_AT_POWER_ON=0', 'TFTP_FILE_TIMEOUT=300000', 'TFTP_PREFIX=2']) {
      assert.ok(conf.split('\n').includes(line), `config lacks ${line}:\n${conf}`);
    }
    await screenshot(page, 'newboards-card', { fullPage: true });
  });

  test('the download link gives the card the page describes', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#eeprom-download')]);
    assert.equal(download.suggestedFilename(), 'rpi-deploy-eeprom-card-2026-05-26.img');
    const file = path.join(work, 'card.img');
    await download.saveAs(file);
    const img = fs.readFileSync(file);
    const info = await api(server, TOKEN, 'GET', '/api/v1/eeprom/card');
    assert.equal(img.length, info.size);
    assert.equal(crypto.createHash('sha256').update(img).digest('hex'), info.sha256);
    assert.match(await page.textContent('#eeprom-card'), new RegExp(info.sha256));
    // MBR signature and one FAT32 (LBA) partition, as the server's Go tests check in depth.
    assert.equal(img.readUInt16LE(510), 0xaa55);
    assert.equal(img[446 + 4], 0x0c);
  });
});

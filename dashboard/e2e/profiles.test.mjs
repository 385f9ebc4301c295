// Browser test of the first-boot profiles page: a real rpi-deployd, headless Chromium
// (playwright-core, /usr/bin/chromium). An operator creates a profile, is refused with
// the offending field named and marked, edits it without retyping the secrets, and
// attaches it to a product; the page never holds the password or the Wi-Fi passphrase.
//
//   scripts/test.d/30-browser.sh      (builds everything, then runs this)

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { api, loggedIn, screenshot, startServer, tempDir } from './harness.mjs';

const TOKEN = 'e2e-profiles-token-0123456789';
const USER = 'operator';
const PASSWORD = 'correct horse battery staple';
const BOARD_PASSWORD = 'Board-Pw-5e1a';
const PASSPHRASE = 'wifi-phrase-77c3';

describe('first-boot profiles page', { concurrency: false }, () => {
  let work; let server; let ctx; let page; let key;

  before(async () => {
    work = tempDir('rpi-e2e-profiles-');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'op@browser', '-f', path.join(work, 'k')]);
    key = fs.readFileSync(path.join(work, 'k.pub'), 'utf8').trim();
    server = await startServer({ token: TOKEN, dataDir: path.join(work, 'data'), log: path.join(work, 'rpi-deployd.log') });
    ({ ctx, page } = await loggedIn(server, TOKEN, work, USER, PASSWORD, 15000));
  });

  after(async () => {
    if (ctx) await ctx.close();
    if (server) await server.stop();
    console.log(`# logs and data: ${work}`);
  });

  const submitExpectingError = async (re, fieldName) => {
    await page.click('dialog button[type=submit]');
    const err = page.locator('dialog p.error');
    await err.waitFor({ state: 'visible' });
    assert.match(await err.textContent(), re);
    assert.equal(await page.locator('dialog[open]').count(), 1, 'the dialog stays open');
    assert.equal(await page.getAttribute(`dialog [name="${fieldName}"]`, 'aria-invalid'), 'true', `${fieldName} marked`);
  };

  test('create a profile; bad fields are named and marked, nothing saved until right', async () => {
    await page.goto(`${server.url}/ui/#/profiles`);
    await page.waitForFunction(() => document.body.dataset.page === 'profiles');
    await page.locator('text=No profile yet').waitFor();
    await page.click('#profile-add');
    await page.fill('#f-name', 'kiosk');
    await page.fill('#f-user', 'kiosk');
    await page.fill('#f-password', BOARD_PASSWORD);
    await page.fill('#f-ssh_authorized_keys', key);
    await page.selectOption('#f-ssh_password_auth', 'off');
    await page.fill('#f-wifi_ssid', 'Venue Wi-Fi');
    await page.fill('#f-wifi_passphrase', 'short');
    await page.fill('#f-wifi_country', 'gb');
    await page.fill('#f-locale', 'en_GB.UTF-8');
    await page.fill('#f-timezone', 'Mars/Olympus_Mons');
    await page.fill('#f-files', JSON.stringify([{ path: '/etc/kiosk/board.conf', content: 'name={{.Hostname}} serial={{.Serial}}\n' }]));
    await page.fill('#f-run_once', 'systemctl enable kiosk');
    await submitExpectingError(/wifi\.passphrase/, 'wifi_passphrase');
    await page.fill('#f-wifi_passphrase', PASSPHRASE);
    await submitExpectingError(/timezone/, 'timezone');
    await page.fill('#f-timezone', 'Europe/London');
    await page.fill('#f-files', JSON.stringify([{ path: '/etc/kiosk/board.conf', content: '{{.Hostname}} {{.Secret}}' }]));
    await submitExpectingError(/files\[0\]\.content/, 'files');
    await page.fill('#f-files', JSON.stringify([{ path: '/etc/kiosk/board.conf', content: 'name={{.Hostname}} serial={{.Serial}}\n' }]));
    await page.click('dialog button[type=submit]');
    await page.locator('dialog').waitFor({ state: 'detached' });
    const row = page.locator('tr', { hasText: 'kiosk' });
    await row.locator('text=user kiosk (password set)').waitFor();
    assert.match(await row.textContent(), /Wi-Fi Venue Wi-Fi.*timezone Europe\/London.*1 files.*1 run-once commands/);
    await screenshot(page, 'profiles');
  });

  test('edit without retyping the secrets keeps them', async () => {
    await page.locator('tr', { hasText: 'kiosk' }).locator('button:text("Edit")').click();
    assert.match(await page.textContent('dialog'), /Password \(set; type to change\)/);
    assert.match(await page.textContent('dialog'), /Passphrase \(set; type to change\)/);
    assert.equal(await page.inputValue('#f-password'), '');
    await page.fill('#f-timezone', 'Europe/Rome');
    await page.click('dialog button[type=submit]');
    await page.locator('dialog').waitFor({ state: 'detached' });
    await page.locator('td', { hasText: 'timezone Europe/Rome' }).waitFor();
    const p = await api(server, TOKEN, 'GET', '/api/v1/profiles/kiosk');
    assert.equal(p.password_set, true);
    assert.equal(p.wifi.psk, 'set');
    assert.equal(p.ssh_password_auth, false);
    assert.deepEqual(p.ssh_authorized_keys, [key]);
  });

  test('attach to a product, detach, and no secret on the page', async () => {
    await page.locator('tr', { hasText: 'kiosk' }).locator('button:text("Attach")').click();
    await page.selectOption('#f-scope', 'product');
    await page.fill('#f-target', 'KXP2');
    await page.click('dialog button[type=submit]');
    await page.locator('dialog').waitFor({ state: 'detached' });
    await page.locator('td .pill', { hasText: 'product KXP2' }).waitFor();
    const eff = await api(server, TOKEN, 'GET', '/api/v1/effective-profile?product=KXP2&venue=CORO');
    assert.equal(eff.name, 'kiosk');
    const html = await page.content();
    for (const secret of [BOARD_PASSWORD, PASSPHRASE, '$6$']) assert.ok(!html.includes(secret), `the page holds ${secret}`);
    await page.locator('td .pill', { hasText: 'product KXP2' }).locator('button').click();
    await page.locator('td .pill', { hasText: 'product KXP2' }).waitFor({ state: 'detached' });
    assert.deepEqual((await api(server, TOKEN, 'GET', '/api/v1/profile-links')) || [], []);
  });
});

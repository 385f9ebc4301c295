// Harness of the dashboard's browser tests: a real rpi-deployd on a temp data dir and
// port 0, real rpi-agent processes flashing image files, headless Chromium.
//
// Environment (scripts/test.d/30-browser.sh sets it):
//   RPI_BIN     folder with rpi-deployd and rpi-agent (default ../../bin)
//   E2E_IMAGE   NAME.img.zst packed by scripts/bench/mktestimg -pack (manifest beside it)
//   ARTIFACTS   where screenshots go (default ./artifacts)

import { spawn, execFile } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const BIN = path.resolve(process.env.RPI_BIN || path.join(here, '../../bin'));
export const IMAGE = process.env.E2E_IMAGE ? path.resolve(process.env.E2E_IMAGE) : '';
export const ARTIFACTS = path.resolve(process.env.ARTIFACTS || path.join(here, 'artifacts'));

export function tempDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

// startServer runs `rpi-deployd serve` (with extra serve flags args) and resolves once
// it printed its URL.
export function startServer({ token, dataDir, log, listen = '127.0.0.1:0', config, args: extra = [] }) {
  // The virtual boards all say hello from 127.0.0.1: the per-address limits are off.
  const args = ['serve', '--data', dataDir, '--listen', listen, '--token', token, '--log-level', 'info',
    '--max-open-per-source', '-1', '--new-serials-per-minute', '-1', '--agent-requests-per-source', '-1'];
  if (config) args.push('--config', config);
  args.push(...extra);
  const proc = spawn(path.join(BIN, 'rpi-deployd'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = fs.createWriteStream(log);
  proc.stdout.pipe(out, { end: false });
  proc.on('close', () => out.end());
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`rpi-deployd printed no URL in 20 s; see ${log}`)), 20000);
    proc.stderr.on('data', (chunk) => {
      out.write(chunk);
      buf += chunk;
      const m = /rpi-deployd: listening on (http:\/\/\S+)/.exec(buf);
      if (m) {
        clearTimeout(timer);
        buf = '';
        resolve({ url: m[1], proc, stop: () => stop(proc) });
      }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`rpi-deployd exited with ${code}; see ${log}`)); });
  });
}

function stop(proc) {
  if (proc.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => proc.kill('SIGKILL'), 5000);
    proc.once('exit', () => { clearTimeout(kill); resolve(); });
    proc.kill('SIGTERM');
  });
}

// api calls the management API with the admin token.
export async function api(server, token, method, p, body) {
  const res = await fetch(server.url + p, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${p}: HTTP ${res.status}: ${text}`);
  try { return JSON.parse(text); } catch { return text; }
}

// Agent is one virtual board: rpi-agent flashing a file as the board SERIAL.
export class Agent {
  constructor({ server, serial, mac, target, log, extra = [] }) {
    this.serial = serial;
    this.target = target;
    this.log = log;
    const args = ['--server', server.url, '--target', target, '--serial', serial, '--mac', mac, ...extra];
    this.proc = spawn(path.join(BIN, 'rpi-agent'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = fs.createWriteStream(log);
    this.proc.stdout.pipe(out, { end: false });
    this.proc.stderr.pipe(out, { end: false });
    this.proc.on('close', () => out.end());
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, sig) => resolve(code ?? sig)));
  }

  stop() { return stop(this.proc); }
}

// targetFile makes an empty "SD card": a sparse file of size bytes.
export function targetFile(dir, name, size) {
  const p = path.join(dir, name);
  const fd = fs.openSync(p, 'w');
  fs.ftruncateSync(fd, size);
  fs.closeSync(fd);
  return p;
}

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

// launch starts headless Chromium (Debian's, no downloaded browser) with a fresh
// profile and returns its persistent context.
export async function launch(profileDir, viewport = { width: 1440, height: 900 }) {
  return chromium.launchPersistentContext(profileDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
    deviceScaleFactor: 1,
    acceptDownloads: true,
  });
}

// loggedIn gives a browser context and page with USER logged in to server through the
// login form (the user is created first with the admin token).
export async function loggedIn(server, token, work, user, password, timeout = 20000) {
  await api(server, token, 'PUT', `/api/v1/users/${user}`, { password });
  const ctx = await launch(path.join(work, 'chromium-profile'));
  const page = await ctx.newPage();
  page.setDefaultTimeout(timeout);
  page.on('pageerror', (err) => console.error('page error:', err));
  await page.goto(`${server.url}/login`);
  await page.fill('#username', user);
  await page.fill('#password', password);
  await page.click('button[type=submit]');
  await page.waitForURL(/\/ui\/$/);
  return { ctx, page };
}

export async function screenshot(page, name, opts = {}) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, ...opts });
  return file;
}

// serialFor gives the n-th virtual board a Pi-shaped serial and MAC (Raspberry Pi
// Trading OUI 2c:cf:67).
export function serialFor(n) {
  const hex = (0xe2e00000 + n).toString(16).padStart(8, '0');
  return { serial: `10000000${hex}`, mac: `2c:cf:67:e2:${(n >> 8).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}` };
}

// parseCSV reads RFC 4180 CSV (quoted fields, doubled quotes) into rows of strings.
export function parseCSV(text) {
  const rows = [];
  let row = []; let field = ''; let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field); rows.push(row); row = []; field = '';
    } else field += c;
  }
  if (field !== '' || row.length) { row.push(field); rows.push(row); }
  return rows;
}

// freeUDPPort asks the kernel for a free UDP port on loopback (for the TFTP server).
export function freeUDPPort() {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    sock.on('error', reject);
    sock.bind(0, '127.0.0.1', () => { const { port } = sock.address(); sock.close(() => resolve(port)); });
  });
}

// tftroot makes a TFTP root with the files the server insists on (random bytes: no
// board boots from them here) and a config file that serves it on loopback.
export function tftpSetup(dir, port) {
  const root = path.join(dir, 'tftproot');
  fs.mkdirSync(root, { recursive: true });
  for (const [name, size] of [['kernel_2712.img', 2 << 20], ['initramfs_2712', 1 << 20], ['bcm2712-rpi-5-b.dtb', 64 << 10]]) {
    fs.writeFileSync(path.join(root, name), Buffer.alloc(size, name.length));
  }
  const config = path.join(dir, 'rpi-deployd.json');
  fs.writeFileSync(config, JSON.stringify({ netboot: { tftp_root: root, tftp_listen: `127.0.0.1:${port}` } }));
  return config;
}

// tftpGet fetches FILE as the Pi 5 bootloader would (blksize 1468, tsize) with curl.
export function tftpGet(port, file) {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '--tftp-blksize', '1468', '-o', '/dev/null', `tftp://127.0.0.1:${port}/${file}`],
      (err, _out, stderr) => (err ? reject(new Error(`curl tftp ${file}: ${stderr || err.message}`)) : resolve()));
  });
}

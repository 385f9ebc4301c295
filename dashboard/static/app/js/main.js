// The application shell: hash routing (#/page/arg?query), the live indicator, logout.

import { session, get, list } from './api.js';
import { currentSite, setSite } from './site.js';
import { live } from './live.js';
import { h, clear, toast } from './ui.js';
import * as fleet from './pages/fleet.js';
import * as batches from './pages/batches.js';
import * as venues from './pages/venues.js';
import * as pools from './pages/pools.js';
import * as products from './pages/products.js';
import * as images from './pages/images.js';
import * as boards from './pages/boards.js';
import * as deployments from './pages/deployments.js';
import * as audit from './pages/audit.js';
import * as newboards from './pages/newboards.js';
import * as profiles from './pages/profiles.js';

const pages = { fleet, batches, venues, pools, products, profiles, images, boards, deployments, audit, newboards };
const view = document.getElementById('view');
let cleanup = null;

function parse() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, q] = raw.split('?');
  const [name, ...args] = path.split('/').filter(Boolean);
  return { name: pages[name] ? name : 'fleet', args, query: new URLSearchParams(q || '') };
}

async function route() {
  const { name, args, query } = parse();
  if (cleanup) { try { cleanup(); } catch { /* a page's cleanup must not stop navigation */ } }
  cleanup = null;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.page === name);
  document.title = `${name[0].toUpperCase()}${name.slice(1)} · rpi-deploy`;
  try {
    cleanup = (await pages[name].render(view, { args, query })) || null;
  } catch (err) {
    clear(view).append(h('section.panel', h('h2', 'Could not load this page'), h('p.error', err.message || String(err))));
  }
  // Which page is on screen, and a new mark per render (the browser tests wait on it).
  document.body.dataset.page = name;
  document.body.dataset.rendered = `${Date.now()}-${Math.random()}`;
}

function showLive() {
  const el = document.getElementById('live');
  el.className = `live ${live.connected ? 'on' : 'off'}`;
  el.textContent = live.connected ? 'live' : 'reconnecting';
}

document.getElementById('logout').addEventListener('click', async () => {
  try { await session.logout(); } catch (err) { if (err.status !== 401) toast(err.message, true); }
  location.assign('/login');
});

// The site selector: All sites, then every site the database knows (GET
// /api/v1/sites) with its board count; the server's own is marked. Choosing one puts
// it in the URL (site.js), refilters the live view and renders the page again.
const sitePick = document.getElementById('site');
async function loadSites() {
  let sites = [];
  try { sites = list(await get('sites')); } catch { /* the selector keeps All sites */ }
  const cur = currentSite();
  if (cur && !sites.some((s) => s.name === cur)) sites.push({ name: cur, boards: 0 });
  clear(sitePick).append(h('option', { value: '' }, 'All sites'),
    ...sites.map((s) => h('option', { value: s.name }, `${s.name}${s.current ? ' (this server)' : ''} · ${s.boards || 0} boards`)));
  sitePick.value = cur;
}
sitePick.addEventListener('change', () => setSite(sitePick.value));
window.addEventListener('sitechange', () => {
  sitePick.value = currentSite();
  live.setSite(currentSite());
  route();
});

live.addEventListener('change', (ev) => { if (ev.detail === 'status') showLive(); });
window.addEventListener('hashchange', () => {
  clear(document.getElementById('toasts')); // notes about the page left behind
  route();
});

session.me().then((me) => {
  const name = me && (me.user || me.actor);
  if (name) document.getElementById('user').textContent = name;
}).catch(() => { /* 401 already redirected */ });
loadSites();
live.start(currentSite());
route();

// First-boot profiles (docs/profiles.md): what Raspberry Pi Imager customises, plus
// templated files and run-once commands, attached to a product and overridden per
// venue and batch. The server never sends the password or the Wi-Fi key back: a
// profile shows "password_set" and a PSK of "set", and saving without a new one keeps
// the stored secret.

import { get, put, del, list } from '../api.js';
import { h, clear, table, dialog, field, run, when, confirmAction } from '../ui.js';

const lines = (s) => (s || '').split('\n').map((x) => x.trim()).filter(Boolean);

// describe says in a few words what a profile sets.
function describe(p) {
  const out = [];
  if (p.user) out.push(`user ${p.user}${p.password_set ? ' (password set)' : ''}`);
  if ((p.ssh_authorized_keys || []).length) out.push(`${p.ssh_authorized_keys.length} SSH keys`);
  if (p.ssh_password_auth !== undefined && p.ssh_password_auth !== null) out.push(`SSH password logins ${p.ssh_password_auth ? 'on' : 'off'}`);
  if (p.wifi) out.push(`Wi-Fi ${p.wifi.ssid}${p.wifi.hidden ? ' (hidden)' : ''}`);
  for (const k of ['locale', 'timezone', 'keyboard']) if (p[k]) out.push(`${k} ${p[k]}`);
  if ((p.files || []).length) out.push(`${p.files.length} files`);
  if ((p.run_once || []).length) out.push(`${p.run_once.length} run-once commands`);
  return out.join(', ') || 'nothing yet';
}

// body turns the form into the PUT body; secrets only when typed.
function body(v, old) {
  const b = {};
  for (const k of ['user', 'locale', 'timezone', 'keyboard']) if (v[k]) b[k] = v[k];
  if (v.password) b.password = v.password;
  const keys = lines(v.ssh_authorized_keys);
  if (keys.length) b.ssh_authorized_keys = keys;
  if (v.ssh_password_auth) b.ssh_password_auth = v.ssh_password_auth === 'on';
  if (v.wifi_ssid) {
    b.wifi = { ssid: v.wifi_ssid, hidden: !!v.wifi_hidden };
    if (v.wifi_country) b.wifi.country = v.wifi_country.toUpperCase();
    if (v.wifi_passphrase) b.wifi.passphrase = v.wifi_passphrase;
    else if (old && old.wifi && old.wifi.ssid === v.wifi_ssid) b.wifi.psk = 'set';
  }
  if (v.files) {
    let files;
    try { files = JSON.parse(v.files); } catch (e) { throw new Error(`files: not JSON (${e.message})`); }
    if (files.length) b.files = files;
  }
  const cmds = lines(v.run_once);
  if (cmds.length) b.run_once = cmds;
  return b;
}

function edit(view, old) {
  const p = old || {};
  const w = p.wifi || {};
  const pwAuth = p.ssh_password_auth === true ? 'on' : p.ssh_password_auth === false ? 'off' : '';
  dialog(old ? `Profile ${p.name}` : 'New profile', [
    old ? null : field('name', 'Name (a-z, 0-9, - and _)', { required: true, pattern: '[a-z0-9][a-z0-9_-]{0,39}', placeholder: 'kiosk' }),
    h('fieldset', h('legend', 'User'),
      field('user', 'User name', { value: p.user, placeholder: 'kiosk' }),
      field('password', p.password_set ? 'Password (set; type to change)' : 'Password', { type: 'password' })),
    h('fieldset', h('legend', 'SSH'),
      field('ssh_authorized_keys', 'Authorized keys (one per line)', { type: 'textarea', rows: 3, value: (p.ssh_authorized_keys || []).join('\n') }),
      field('ssh_password_auth', 'Password logins', { value: pwAuth, options: [['', 'unset (a lower profile decides; off when keys are set)'], ['off', 'off'], ['on', 'on']] })),
    h('fieldset', h('legend', 'Wi-Fi'),
      field('wifi_ssid', 'SSID', { value: w.ssid }),
      field('wifi_passphrase', w.psk === 'set' ? 'Passphrase (set; type to change)' : 'Passphrase (8-63 characters)', { type: 'password' }),
      field('wifi_country', 'Country (2 letters)', { value: w.country, placeholder: 'GB' }),
      field('wifi_hidden', 'Hidden network', { type: 'checkbox', value: w.hidden })),
    h('fieldset', h('legend', 'Locale'),
      field('locale', 'Locale', { value: p.locale, placeholder: 'en_GB.UTF-8' }),
      field('timezone', 'Time zone', { value: p.timezone, placeholder: 'Europe/London' }),
      field('keyboard', 'Keyboard layout', { value: p.keyboard, placeholder: 'gb' })),
    field('files', 'Files (JSON: [{"path","mode","owner","content"}]; content may use {{.Hostname}}, {{.Serial}}, {{.MAC}}, {{.Venue}}, {{.Product}}, {{.Batch}}, {{.DeploymentID}}, {{.ImageName}}, {{.ImageSHA256}})',
      { type: 'textarea', rows: 4, value: (p.files || []).length ? JSON.stringify(p.files, null, 1) : '' }),
    field('run_once', 'Run once at first boot (one command per line)', { type: 'textarea', rows: 2, value: (p.run_once || []).join('\n') }),
  ].filter(Boolean), 'Save profile', async (v, form) => {
    const name = old ? p.name : v.name;
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
    try {
      await put(`profiles/${encodeURIComponent(name)}`, body(v, old));
    } catch (err) {
      // Mark the field the server names (wifi.passphrase → wifi_passphrase).
      const f = (err.field || '').replace(/\[.*$/, '').replace('.', '_');
      const el = f && form.querySelector(`[name="${f}"]`);
      if (el) el.setAttribute('aria-invalid', 'true');
      throw err;
    }
    render(view);
  });
}

function attach(view, p) {
  dialog(`Attach ${p.name}`, [
    field('scope', 'To', { options: [['product', 'a product'], ['venue', 'a venue (overrides the product\'s)'], ['batch', 'a batch (overrides both)']] }),
    field('target', 'Product code, venue code or batch ID', { required: true, placeholder: 'KXP2' }),
  ], 'Attach', async (v) => {
    await put(`profile-links/${v.scope}/${encodeURIComponent(v.target)}`, { profile: p.name });
    render(view);
  });
}

export async function render(view) {
  const [profiles, links] = await Promise.all([get('profiles'), get('profile-links')]);
  const at = (name) => list(links).filter((l) => l.profile === name);
  clear(view).append(h('section.panel',
    h('h2', 'First-boot profiles', h('span.spacer'), h('button.primary', { id: 'profile-add', onclick: () => edit(view) }, 'New profile')),
    h('p.hint', 'A profile attached to a product applies to all its boards; one attached to a venue or a batch overrides it field by field. A change reaches only deployments that start after it.'),
    table([
      { key: 'name', label: 'Name', render: (p) => h('strong.mono', p.name) },
      { key: 'attached', label: 'Attached to', render: (p) => h('div', at(p.name).map((l) => h('span.pill', { class: 'pill link' },
        `${l.scope} ${l.target} `, h('button.small', { title: 'detach', onclick: () => run(() => del(`profile-links/${l.scope}/${encodeURIComponent(l.target)}`), `${l.scope} ${l.target}: detached`).then(() => render(view)) }, '×')))) },
      { key: 'sets', label: 'Sets', render: (p) => describe(p) },
      { key: 'updated_at', label: 'Updated', render: (p) => when(p.updated_at) },
      { key: 'actions', label: '', render: (p) => h('div.actions',
        h('button.small', { onclick: () => edit(view, p) }, 'Edit'),
        h('button.small', { onclick: () => attach(view, p) }, 'Attach'),
        h('button.danger.small', { onclick: () => confirmAction(`Delete profile ${p.name}? Only a profile attached to nothing can go.`, 'Delete', async () => {
          await run(() => del(`profiles/${encodeURIComponent(p.name)}`), `profile ${p.name} deleted`);
          render(view);
        }) }, 'Delete')) },
    ], list(profiles), { empty: 'No profile yet: create the first one.' })));
}

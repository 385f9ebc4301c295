// New boards: the bootloader card that turns a new Pi 5's network boot on, in three
// steps (docs/operations.md §5). The operator uploads Raspberry Pi's firmware once;
// the server builds the card (PUT eeprom/firmware) and offers it for download.

import { get, request, url } from '../api.js';
import { h, clear, field, toast, bytes, when } from '../ui.js';

async function card() {
  try {
    return await get('eeprom/card');
  } catch (err) {
    if (err.status === 404) return null;
    throw err;
  }
}

export async function render(view) {
  const c = await card();
  const err = h('p.error', { id: 'eeprom-error', role: 'alert', hidden: true });
  const submit = h('button.primary', { type: 'submit', id: 'eeprom-upload' }, c ? 'Replace firmware' : 'Upload firmware');
  const form = h('form.stack', { id: 'eeprom-form' },
    field('pieeprom', 'Bootloader image (pieeprom-YYYY-MM-DD.bin)', { type: 'file', accept: '.bin', required: true }),
    field('recovery', 'recovery.bin', { type: 'file', accept: '.bin', required: true }),
    field('config', 'Bootloader settings over the fleet defaults (KEY=VALUE a line, optional)',
      { type: 'textarea', rows: 3, placeholder: 'TFTP_PREFIX=2' }),
    err, submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    submit.disabled = true;
    try {
      await request('PUT', 'eeprom/firmware', { body: new FormData(form) });
      toast('Bootloader card built');
      await render(view);
    } catch (e) {
      err.textContent = e.message || String(e);
      err.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });

  const steps = h('ol.steps', { id: 'eeprom-steps' },
    h('li', h('strong', 'Write the cards. '), 'Download the card image below and write it to one SD card per board: ',
      h('code', 'rpi-image write card.img /dev/sdX /dev/sdY …'), ' writes many card readers at once and reads each back.'),
    h('li', h('strong', 'Rack the boards. '), 'Put a card in each new Pi 5 and connect it to the deploy network. ',
      'Make sure a batch for its venue and product is active.'),
    h('li', h('strong', 'Power on. '), 'In about ten seconds the bootloader is updated; recovery.bin renames itself to ',
      'RECOVERY.000, so it runs once, and the board restarts. The card no longer boots, so the board network-boots and ',
      'rpi-deploy flashes that same card with the batch\'s image: watch it on the Fleet page.'));

  const offer = c
    ? h('div', { id: 'eeprom-card' },
      h('p', h('a.button.primary', { id: 'eeprom-download', href: url('eeprom/card.img'), download: '' }, 'Download card image'),
        ' ', h('span.muted', `${bytes(c.size)}, built ${when(c.built)}`)),
      h('p', 'Firmware ', h('strong.mono', c.firmware), ` — ${c.version}`),
      h('p.muted.mono', `sha256 ${c.sha256}`),
      h('h3', 'Embedded bootloader config'), h('pre.json', { id: 'eeprom-config' }, c.config))
    : h('p', { id: 'eeprom-missing' }, 'No card yet: upload Raspberry Pi\'s Pi 5 bootloader firmware — a ',
      h('span.mono', 'pieeprom-*.bin'), ' and ', h('span.mono', 'recovery.bin'),
      ' from the firmware-2712/default folder of github.com/raspberrypi/rpi-eeprom.');

  clear(view).append(
    h('section.panel', h('h2', 'New boards: turn network boot on'),
      h('p', 'A Pi 5 leaves the factory booting SD, NVMe and USB, never the network. One card image, written ',
        'to a card for each board, changes that and is then flashed over the network: no keyboard, no second visit.'),
      steps),
    h('section.panel', h('h2', 'Bootloader card'), offer),
    h('section.panel', h('h2', c ? 'Replace the firmware' : 'Upload the firmware'), form));
}

// Master images: upload (resumable, with progress), activate per product, manifest.

import { get, post, del, list, request, API } from '../api.js';
import { h, clear, table, dialog, field, run, when, bytes, pill, bar, confirmAction, toast } from '../ui.js';

const uploadsBox = h('div', { id: 'uploads' });

export async function render(view, { args }) {
  if (args[0]) return detail(view, args[0]);
  const [images, products] = await Promise.all([get('images'), get('products')]);
  const prods = list(products);
  const activeFor = (img) => img.active_for || prods.filter((p) => p.active_image === img.name).map((p) => p.code);
  // The uploads list outlives re-renders of the page: an upload's outcome stays shown.
  const uploads = uploadsBox;
  const picker = h('input', { type: 'file', id: 'image-files', multiple: true, accept: '.zst,.json' });
  const uploadBtn = h('button.primary', { id: 'image-upload', onclick: () => startUpload([...picker.files], uploads, () => render(view, { args })) }, 'Upload');
  const activate = (img) => dialog(`Activate ${img.name}`, [
    field('product', 'For product', { options: prods.map((p) => [p.code, `${p.code} — ${p.name} (now: ${p.active_image || 'none'})`]), required: true }),
  ], 'Activate', async (v) => {
    await post(`images/${encodeURIComponent(img.name)}/activate`, { product: v.product });
    toast(`${img.name} is now the active image of ${v.product}`);
    render(view, { args });
  });
  clear(view).append(
    h('section.panel', h('h2', 'Upload an image'),
      h('p.muted', 'Choose NAME.img.zst and NAME.manifest.json as written by ', h('span.mono', 'rpi-image pack'),
        '. The upload resumes where it stopped if the connection drops.'),
      h('div.toolbar', h('label', 'Files', picker), uploadBtn), uploads),
    h('section.panel', h('h2', 'Images'),
      table([
        { key: 'name', label: 'Name', render: (i) => h('a.mono', { href: `#/images/${encodeURIComponent(i.name)}` }, i.name) },
        { key: 'state', label: 'State', render: (i) => i.state === 'uploading' ? [pill('uploading'), h('span.muted', ` ${bytes(i.uploaded)} of ${bytes(i.compressed_size)}`)] : pill(i.state) },
        { key: 'size', label: 'Size', num: true, render: (i) => bytes(i.size) },
        { key: 'compressed_size', label: 'Compressed', num: true, render: (i) => bytes(i.compressed_size) },
        { key: 'first_boot', label: 'First boot', render: (i) => i.first_boot || 'none' },
        { key: 'os_release', label: 'OS' },
        { key: 'active', label: 'Active for', render: (i) => activeFor(i).map((c) => pill(c, 'ok')) },
        { key: 'sites', label: 'Sites', render: (i) => siteCells(i) },
        { key: 'created_at', label: 'Added', render: (i) => when(i.created_at) },
        { key: 'actions', label: '', render: (i) => h('div.actions',
          i.state === 'ready' ? h('button.small', { onclick: () => activate(i) }, 'Activate') : null,
          h('button.small.danger', { onclick: () => confirmAction(`Delete image ${i.name}? Batches and products that use it refuse.`, 'Delete', async () => {
            await run(() => del(`images/${encodeURIComponent(i.name)}`), `${i.name} deleted`);
            render(view, { args });
          }) }, 'Delete')) },
      ], list(images), { empty: 'No image yet: upload one packed by rpi-image.' })));
}

// siteCells shows which sites (servers on the shared database) hold an image: a
// ready site as a pill; a pulling one with its verified bytes of the compressed
// size, and why its last pull stopped, if it did.
function siteCells(img) {
  return (img.sites || []).map((s) => s.state === 'ready'
    ? pill(s.site, 'ok')
    : h('span.site', { title: s.error || '' }, pill(`${s.site} ${s.state}`, s.error ? 'failed' : 'uploading'),
      h('span.muted', ` ${bytes(s.bytes)} of ${bytes(img.compressed_size)}${s.error ? ` — ${s.error}` : ''}`)));
}

async function detail(view, name) {
  const [img, m] = await Promise.all([get(`images/${encodeURIComponent(name)}`), get(`images/${encodeURIComponent(name)}/manifest`)]);
  clear(view).append(h('section.panel',
    h('h2', h('a', { href: '#/images' }, 'Images'), ' / ', h('span.mono', name), pill(img.state),
      (img.active_for || []).map((c) => pill(`active for ${c}`, 'ok'))),
    h('dl.kv',
      h('dt', 'Size'), h('dd', `${bytes(m.size)} raw · ${bytes(m.compressed_size)} compressed · ${bytes(m.data_bytes)} data`),
      h('dt', 'SHA256'), h('dd.mono', m.sha256),
      h('dt', 'Chunks'), h('dd', `${(m.chunks || []).length} × ${bytes(m.chunk_size)}`),
      h('dt', 'First boot'), h('dd', m.first_boot || 'none'),
      h('dt', 'OS'), h('dd', m.os_release || '—'),
      h('dt', 'Sites'), h('dd', { id: 'image-sites' }, (img.sites || []).length ? siteCells(img) : '—'),
      h('dt', 'Created'), h('dd', m.created || '—'),
      h('dt', 'Source'), h('dd', m.source || '—')),
    h('h3', 'Partitions'),
    table([
      { key: 'index', label: '#', num: true }, { key: 'type', label: 'Type' }, { key: 'fs', label: 'FS' },
      { key: 'label', label: 'Label' }, { key: 'start', label: 'Start', num: true, render: (p) => bytes(p.start) },
      { key: 'size', label: 'Size', num: true, render: (p) => bytes(p.size) },
      { key: 'used', label: 'Used', num: true, render: (p) => bytes(p.used) },
      { key: 'bootfs', label: 'Boot', render: (p) => p.bootfs ? '✓' : '' },
    ], m.partitions || []),
    h('h3', 'Manifest'),
    h('pre.json', { id: 'manifest' }, JSON.stringify({ ...m, chunks: `[${(m.chunks || []).length} chunks]` }, null, 2))));
}

// startUpload registers the manifest (PUT /api/v1/images/NAME/manifest: starts or
// resumes the upload), then sends NAME.img.zst from where the server stands in pieces
// (PUT …/data with Content-Range) with XHR, which reports upload progress. After a
// failed piece it asks the server for its offset and goes on from there.
async function startUpload(files, box, done) {
  const img = files.find((f) => f.name.endsWith('.img.zst'));
  const man = files.find((f) => f.name.endsWith('.manifest.json'));
  if (!img || !man) { toast('choose both NAME.img.zst and NAME.manifest.json', true); return; }
  const label = h('span', `${img.name}: starting`);
  const progress = bar(0);
  const row = h('div.upload', { dataset: { file: img.name } }, label, progress);
  box.append(row);
  const show = (sent, rate) => {
    const f = img.size ? sent / img.size : 0;
    progress.firstChild.style.width = `${Math.floor(f * 100)}%`;
    progress.setAttribute('aria-valuenow', Math.floor(f * 100));
    label.textContent = `${img.name}: ${bytes(sent)} / ${bytes(img.size)} (${Math.floor(f * 100)}%)${rate ? ` · ${(rate / 1e6).toFixed(1)} MB/s` : ''}`;
  };
  try {
    const text = await man.text();
    let m;
    try { m = JSON.parse(text); } catch { throw new Error(`${man.name} is not JSON`); }
    if (m.compressed_size !== img.size) throw new Error(`${img.name} has ${img.size} bytes, the manifest says ${m.compressed_size}`);
    const base = `${API}/images/${encodeURIComponent(m.name)}`;
    let st = await request('PUT', `${base}/manifest`, { body: text, contentType: 'application/json' });
    let offset = st.offset || 0;
    const t0 = performance.now(); const start = offset;
    // The server already holds the first bytes (an earlier upload broke off).
    const resumed = start > 0 && st.state !== 'ready' ? ` (resumed at ${bytes(start)})` : '';
    const PIECE = 16 << 20;
    let failures = 0;
    while (st.state !== 'ready' && offset < img.size) {
      const end = Math.min(img.size, offset + PIECE);
      try {
        st = await sendPiece(`${base}/data`, img.slice(offset, end), offset, img.size, (n) => {
          show(offset + n, (offset + n - start) / ((performance.now() - t0) / 1000));
        });
        offset = st.offset;
        failures = 0;
      } catch (err) {
        if (++failures > 5) throw err;
        await new Promise((r) => setTimeout(r, 500 * failures));
        st = await request('GET', `${base}/upload`);
        offset = st.offset;
      }
    }
    show(img.size, 0);
    label.textContent = `${img.name}: uploaded and verified${resumed}`;
    progress.classList.add('ok');
    done();
  } catch (err) {
    label.textContent = `${img.name}: ${err.message}`;
    label.className = 'error';
    progress.classList.add('bad');
  }
}

// sendPiece PUTs blob at offset with XHR so the browser reports upload progress;
// resolves with the server's upload state ({offset, state}).
function sendPiece(path, blob, offset, total, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', path);
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.setRequestHeader('Content-Range', `bytes ${offset}-${offset + blob.size - 1}/${total}`);
    xhr.upload.onprogress = (ev) => onProgress(ev.loaded);
    xhr.onload = () => {
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(new Error(data.error || `HTTP ${xhr.status}`));
    };
    xhr.onerror = () => reject(new Error('network error'));
    xhr.send(blob);
  });
}

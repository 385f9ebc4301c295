// Master images: upload (resumable, with progress), activate per product, manifest.

import { get, put, del, list, API } from '../api.js';
import { h, clear, table, dialog, field, run, when, bytes, pill, bar, confirmAction, toast } from '../ui.js';

export async function render(view, { args }) {
  if (args[0]) return detail(view, args[0]);
  const [images, products] = await Promise.all([get('images'), get('products')]);
  const prods = list(products);
  const activeFor = (name) => prods.filter((p) => p.active_image === name).map((p) => p.code);
  const uploads = h('div', { id: 'uploads' });
  const picker = h('input', { type: 'file', id: 'image-files', multiple: true, accept: '.zst,.json' });
  const uploadBtn = h('button.primary', { id: 'image-upload', onclick: () => startUpload([...picker.files], uploads, () => render(view, { args })) }, 'Upload');
  const activate = (img) => dialog(`Activate ${img.name}`, [
    field('product', 'For product', { options: prods.map((p) => [p.code, `${p.code} — ${p.name} (now: ${p.active_image || 'none'})`]), required: true }),
  ], 'Activate', async (v) => {
    await put(`products/${v.product}/image`, { image: img.name });
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
        { key: 'state', label: 'State', render: (i) => pill(i.state) },
        { key: 'size', label: 'Size', num: true, render: (i) => bytes(i.size) },
        { key: 'compressed_size', label: 'Compressed', num: true, render: (i) => bytes(i.compressed_size) },
        { key: 'first_boot', label: 'First boot', render: (i) => i.first_boot || 'none' },
        { key: 'os_release', label: 'OS' },
        { key: 'active', label: 'Active for', render: (i) => activeFor(i.name).map((c) => pill(c, 'ok')) },
        { key: 'created_at', label: 'Added', render: (i) => when(i.created_at) },
        { key: 'actions', label: '', render: (i) => h('div.actions',
          i.state === 'ready' ? h('button.small', { onclick: () => activate(i) }, 'Activate') : null,
          h('button.small.danger', { onclick: () => confirmAction(`Delete image ${i.name}? Batches and products that use it refuse.`, 'Delete', async () => {
            await run(() => del(`images/${encodeURIComponent(i.name)}`), `${i.name} deleted`);
            render(view, { args });
          }) }, 'Delete')) },
      ], list(images), { empty: 'No image yet: upload one packed by rpi-image.' })));
}

async function detail(view, name) {
  const img = await get(`images/${encodeURIComponent(name)}`);
  const m = img.manifest || (await get(`/images/${encodeURIComponent(name)}.manifest.json`));
  clear(view).append(h('section.panel',
    h('h2', h('a', { href: '#/images' }, 'Images'), ' / ', h('span.mono', name), pill(img.state)),
    h('dl.kv',
      h('dt', 'Size'), h('dd', `${bytes(m.size)} raw · ${bytes(m.compressed_size)} compressed · ${bytes(m.data_bytes)} data`),
      h('dt', 'SHA256'), h('dd.mono', m.sha256),
      h('dt', 'Chunks'), h('dd', `${(m.chunks || []).length} × ${bytes(m.chunk_size)}`),
      h('dt', 'First boot'), h('dd', m.first_boot || 'none'),
      h('dt', 'OS'), h('dd', m.os_release || '—'),
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

// startUpload sends the manifest, then the .img.zst in pieces with XHR (for upload
// progress) through the server's resumable upload API.
async function startUpload(files, box, done) {
  const img = files.find((f) => f.name.endsWith('.img.zst'));
  const man = files.find((f) => f.name.endsWith('.manifest.json'));
  if (!img || !man) { toast('choose both NAME.img.zst and NAME.manifest.json', true); return; }
  const label = h('span', `${img.name}: starting`);
  const progress = bar(0);
  const row = h('div.upload', { class: 'upload', dataset: { file: img.name } }, label, progress);
  box.append(row);
  const show = (sent, rate) => {
    const f = img.size ? sent / img.size : 0;
    progress.firstChild.style.width = `${Math.floor(f * 100)}%`;
    label.textContent = `${img.name}: ${bytes(sent)} / ${bytes(img.size)} (${Math.floor(f * 100)}%)${rate ? ` · ${(rate / 1e6).toFixed(1)} MB/s` : ''}`;
  };
  try {
    let manifest;
    try { manifest = JSON.parse(await man.text()); } catch { throw new Error(`${man.name} is not JSON`); }
    const up = await run(() => fetchJSON('POST', `${API}/uploads`, manifest));
    let offset = up.offset || 0;
    const t0 = performance.now(); const start = offset;
    const PIECE = 8 << 20;
    while (offset < img.size) {
      const end = Math.min(img.size, offset + PIECE);
      try {
        offset = await sendPiece(up.id, img.slice(offset, end), offset, img.size, (n) => {
          const rate = (offset + n - start) / ((performance.now() - t0) / 1000);
          show(offset + n, rate);
        });
      } catch (err) {
        // Ask where the server is and go on from there (resumable).
        await new Promise((r) => setTimeout(r, 1000));
        const st = await fetchJSON('GET', `${API}/uploads/${up.id}`);
        if (st.offset === undefined) throw err;
        offset = st.offset;
      }
    }
    label.textContent = `${img.name}: verifying on the server…`;
    await fetchJSON('POST', `${API}/uploads/${up.id}/complete`, {});
    label.textContent = `${img.name}: uploaded and verified`;
    progress.classList.add('ok');
    done();
  } catch (err) {
    label.textContent = `${img.name}: ${err.message}`;
    label.className = 'error';
    progress.classList.add('bad');
  }
}

async function fetchJSON(method, path, body) {
  const res = await fetch(path, {
    method, credentials: 'same-origin',
    headers: body ? { 'Content-Type': 'application/json', Accept: 'application/json' } : { Accept: 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
  return data;
}

// sendPiece PUTs blob at offset with XHR so the browser reports upload progress;
// resolves with the server's new offset.
function sendPiece(id, blob, offset, total, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PATCH', `${API}/uploads/${id}`);
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.setRequestHeader('Content-Range', `bytes ${offset}-${offset + blob.size - 1}/${total}`);
    xhr.upload.onprogress = (ev) => onProgress(ev.loaded);
    xhr.onload = () => {
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch { /* empty */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data.offset ?? offset + blob.size);
      else reject(new Error(data.error || `HTTP ${xhr.status}`));
    };
    xhr.onerror = () => reject(new Error('network error'));
    xhr.send(blob);
  });
}

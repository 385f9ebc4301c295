// DOM and formatting helpers shared by every page. No framework: h() builds elements.

// h('tag.class#id', {attr: value, onclick: fn}, child, …) → Element. Children may be
// strings, numbers, Nodes, arrays of those, or null/false (skipped).
export function h(spec, attrs, ...children) {
  const m = /^([a-z0-9-]+)?((?:[.#][\w-]+)*)$/i.exec(spec);
  const el = document.createElement((m && m[1]) || 'div');
  if (m && m[2]) {
    for (const part of m[2].match(/[.#][\w-]+/g)) {
      if (part[0] === '.') el.classList.add(part.slice(1));
      else el.id = part.slice(1);
    }
  }
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value' || k === 'checked' || k === 'selected') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

export function clear(el) { while (el.firstChild) el.firstChild.remove(); return el; }

// Formatting -----------------------------------------------------------------------

export function bytes(n) {
  if (n === null || n === undefined || isNaN(n)) return '—';
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0; let v = Number(n);
  while (Math.abs(v) >= 1000 && i < u.length - 1) { v /= 1000; i++; }
  return `${v.toFixed(v >= 100 || i === 0 ? 0 : 1)} ${u[i]}`;
}

export function mbps(bps) {
  if (!bps || bps <= 0) return '—';
  return (bps / 1e6).toFixed(bps >= 1e8 ? 0 : 1);
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds) || seconds < 0) return '—';
  seconds = Math.round(seconds);
  if (seconds < 60) return `${seconds}s`;
  const m = Math.floor(seconds / 60); const s = seconds % 60;
  if (m < 60) return `${m}:${String(s).padStart(2, '0')}`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}`;
}

export function when(t) {
  if (!t) return '—';
  const d = new Date(t);
  if (isNaN(d)) return String(t);
  const now = new Date();
  const sameDay = d.toDateString() === now.toDateString();
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  return sameDay ? time : `${d.toISOString().slice(0, 10)} ${time}`;
}

export function pct(x) { return `${Math.floor(Math.max(0, Math.min(1, x)) * 100)}%`; }

export function pill(text, cls) { return h('span.pill', { class: `pill ${cls || text || ''}` }, text || '—'); }

export function bar(fraction, cls) {
  const fill = h('span');
  fill.style.width = pct(fraction || 0);
  return h('div.bar', { class: `bar ${cls || ''}`, role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': Math.floor((fraction || 0) * 100) }, fill);
}

// Tables ---------------------------------------------------------------------------

// table([{key, label, num, render(row)}], rows, {onRow, empty}) → Element
export function table(cols, rows, opts = {}) {
  if (!rows || rows.length === 0) return h('p.empty', opts.empty || 'Nothing here yet.');
  const head = h('tr', cols.map((c) => h('th', { class: c.num ? 'num' : null }, c.label)));
  const body = rows.map((r) => {
    const tr = h('tr', { class: opts.onRow ? 'clickable' : null },
      cols.map((c) => h('td', { class: c.num ? 'num' : null, dataset: { col: c.key || '' } },
        c.render ? c.render(r) : (r[c.key] ?? ''))));
    if (opts.onRow) tr.addEventListener('click', (ev) => { if (!ev.target.closest('button,a,input,select')) opts.onRow(r); });
    return tr;
  });
  return h('div.table-wrap', h('table', { class: opts.class || null }, h('thead', head), h('tbody', body)));
}

// Notifications and dialogs --------------------------------------------------------

export function toast(message, bad = false) {
  const box = document.getElementById('toasts');
  const t = h('div.toast', { class: bad ? 'toast bad' : 'toast', role: bad ? 'alert' : 'status' }, message);
  box.append(t);
  setTimeout(() => t.remove(), bad ? 8000 : 3000);
}

// run(fn, okMessage) calls fn, toasts its error or okMessage, and returns its result.
export async function run(fn, ok) {
  try {
    const r = await fn();
    if (ok) toast(ok);
    return r;
  } catch (err) {
    toast(err.message || String(err), true);
    throw err;
  }
}

// field(name, label, {type, value, options:[[value,label]], required, placeholder, min})
export function field(name, label, o = {}) {
  let input;
  if (o.options) {
    input = h('select', { name, id: o.id || `f-${name}`, required: o.required || null },
      o.options.map(([v, l]) => h('option', { value: v, selected: String(v) === String(o.value ?? '') || null }, l)));
  } else if (o.type === 'textarea') {
    input = h('textarea', { name, id: o.id || `f-${name}`, rows: o.rows || 6, placeholder: o.placeholder || null }, o.value || '');
  } else if (o.type === 'checkbox') {
    return h('label.check', h('input', { type: 'checkbox', name, id: o.id || `f-${name}`, checked: !!o.value }), label);
  } else {
    input = h('input', {
      name, id: o.id || `f-${name}`, type: o.type || 'text', value: o.value ?? '', required: o.required || null,
      placeholder: o.placeholder || null, min: o.min ?? null, max: o.max ?? null, pattern: o.pattern || null,
      accept: o.accept || null, multiple: o.multiple || null, autocomplete: 'off',
    });
  }
  return h('label', label, input);
}

// formValues(form) → {name: value}; numbers for type=number, booleans for checkboxes,
// empty fields left out.
export function formValues(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.type === 'checkbox') out[el.name] = el.checked;
    else if (el.type === 'file') continue;
    else if (el.value === '') continue;
    else if (el.type === 'number') out[el.name] = Number(el.value);
    else out[el.name] = el.value.trim();
  }
  return out;
}

// dialog(title, fields, submitLabel, onSubmit(values, form)) opens a modal form; it
// closes when onSubmit resolves and stays open (showing the error) when it throws.
export function dialog(title, fields, submitLabel, onSubmit) {
  const err = h('p.error', { role: 'alert', hidden: true });
  const submit = h('button.primary', { type: 'submit' }, submitLabel);
  const form = h('form', { method: 'dialog' }, h('h2', title), fields, err,
    h('div.buttons', h('button', { type: 'button', onclick: () => dlg.close() }, 'Cancel'), submit));
  const dlg = h('dialog', form);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    submit.disabled = true;
    try {
      await onSubmit(formValues(form), form);
      dlg.close();
    } catch (e) {
      err.textContent = e.message || String(e);
      err.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
  dlg.addEventListener('close', () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  return dlg;
}

export function confirmAction(message, label, fn) {
  return dialog(label, h('p', message), label, fn);
}

// Downloads a URL with the session cookie (a plain link keeps the server's filename).
export function download(url) {
  const a = h('a', { href: url, download: '' });
  document.body.append(a);
  a.click();
  a.remove();
}

// A hand-drawn throughput chart on a canvas: aggregate MB/s over the last minutes.

const COLORS = { line: '#38bdf8', fill: 'rgba(56,189,248,0.18)', grid: '#2b3a57', text: '#9fb0cc' };

// niceMax rounds v up to 1, 2 or 5 × a power of ten.
function niceMax(v) {
  if (v <= 0) return 10;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// drawThroughput(canvas, history, maxWindowSeconds): history is [{t: ms, bps}]. The
// time axis spans the history there is (at least a minute, at most maxWindowSeconds),
// so a freshly opened page uses its whole width.
export function drawThroughput(canvas, history, maxWindowS = 600) {
  const span = history.length ? (Date.now() - history[0].t) / 1000 : 0;
  const windowS = Math.min(maxWindowS, Math.max(60, Math.ceil(span / 60) * 60));
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth; const hgt = canvas.clientHeight;
  if (w === 0 || hgt === 0) return;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(hgt * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(hgt * dpr);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, hgt);

  const left = 52; const right = 8; const top = 10; const bottom = 22;
  const pw = w - left - right; const ph = hgt - top - bottom;
  const now = Date.now(); const t0 = now - windowS * 1000;
  const pts = history.filter((p) => p.t >= t0);
  const peak = pts.reduce((m, p) => Math.max(m, p.bps / 1e6), 0);
  const ymax = niceMax(peak * 1.1);

  ctx.font = '12px system-ui, sans-serif';
  ctx.fillStyle = COLORS.text;
  ctx.strokeStyle = COLORS.grid;
  ctx.lineWidth = 1;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (let i = 0; i <= 4; i++) {
    const y = top + ph - (ph * i) / 4;
    ctx.beginPath(); ctx.moveTo(left, Math.round(y) + 0.5); ctx.lineTo(left + pw, Math.round(y) + 0.5); ctx.stroke();
    const v = (ymax * i) / 4;
    ctx.fillText(`${v >= 10 ? v.toFixed(0) : v.toFixed(1)}`, left - 6, y);
  }
  ctx.save();
  ctx.translate(12, top + ph / 2); ctx.rotate(-Math.PI / 2);
  ctx.textAlign = 'center'; ctx.fillText('MB/s', 0, 0);
  ctx.restore();
  ctx.textAlign = 'center'; ctx.textBaseline = 'top';
  // Ticks every 2 min, 1 min, or 10 s for the one-minute window.
  const step = windowS > 300 ? 120 : windowS > 60 ? 60 : 10;
  for (let sec = 0; sec <= windowS; sec += step) {
    const x = left + pw - (pw * sec) / windowS;
    ctx.textAlign = sec === 0 ? 'right' : 'center';
    ctx.fillText(sec === 0 ? 'now' : sec % 60 === 0 ? `-${sec / 60}m` : `-${sec}s`, x, top + ph + 5);
  }
  if (pts.length < 2) return;

  const X = (t) => left + (pw * (t - t0)) / (windowS * 1000);
  const Y = (bps) => top + ph - (ph * (bps / 1e6)) / ymax;
  ctx.beginPath();
  ctx.moveTo(X(pts[0].t), Y(pts[0].bps));
  for (const p of pts) ctx.lineTo(X(p.t), Y(p.bps));
  ctx.strokeStyle = COLORS.line; ctx.lineWidth = 2; ctx.stroke();
  ctx.lineTo(X(pts[pts.length - 1].t), top + ph);
  ctx.lineTo(X(pts[0].t), top + ph);
  ctx.closePath(); ctx.fillStyle = COLORS.fill; ctx.fill();
}

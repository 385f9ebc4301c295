// A hand-drawn throughput chart on a canvas: aggregate MB/s over the last minutes.

const COLORS = { line: '#38bdf8', fill: 'rgba(56,189,248,0.18)', grid: '#2b3a57', text: '#9fb0cc' };

// niceMax rounds v up to 1, 2 or 5 × a power of ten.
function niceMax(v) {
  if (v <= 0) return 10;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// drawThroughput(canvas, history, windowSeconds): history is [{t: ms, bps}].
export function drawThroughput(canvas, history, windowS = 600) {
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
  const stepMin = windowS >= 600 ? 2 : 1;
  for (let m = 0; m <= windowS / 60; m += stepMin) {
    const x = left + pw - (pw * m * 60) / windowS;
    ctx.fillText(m === 0 ? 'now' : `-${m}m`, x, top + ph + 5);
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

// cnnlab explore: the page. Plain JavaScript and canvas, no build step, no CDN.
// Talks to the JSON API of cnnlab/explore/api.py (GET /api/model, POST /api/forward, ...).
"use strict";

const state = {
  model: null,        // GET /api/model
  blob: null,         // the image last sent (a PNG of the model's input, or an upload)
  invert: false,
  forward: null,      // the last POST /api/forward answer
  seq: 0,             // request counter: older answers never overwrite newer ones
  shown: 0,
  inFlight: false,
  pending: false,
  picked: null,       // {layer, channel, row, col}
};
// stroke-to-redrawn latencies (ms), for people and for the browser test
window.explorerTimings = [];

const $ = (id) => document.getElementById(id);

function el(tag, props, children) {
  const e = document.createElement(tag);
  if (props) for (const [k, v] of Object.entries(props)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.includes("-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children || []) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
  return e;
}

function fmt(v) {
  if (v === null || v === undefined) return "NaN";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1000 || a < 0.001) return v.toExponential(2);
  return Number(v.toPrecision(3)).toString();
}

function setStatus(text, isError) {
  const s = $("status");
  s.textContent = text;
  s.className = isError ? "bad" : "";
}

async function api(path, options) {
  const r = await fetch(path, options);
  let body;
  try { body = await r.json(); } catch (e) { body = { error: `HTTP ${r.status}` }; }
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  return body;
}

function query(params) {
  return Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&");
}

// ------------------------------------------------------------------ colour scales
// one scale per layer: signed values on a blue-white-red scale centred at 0,
// non-negative ones from black through purple and orange to yellow
function colourScale(lo, hi) {
  if (lo < 0) {
    const m = Math.max(-lo, hi) || 1;
    return (v) => {
      const t = Math.max(-1, Math.min(1, v / m));
      if (t >= 0) return [255, Math.round(255 * (1 - t)), Math.round(255 * (1 - t))];
      return [Math.round(255 * (1 + t)), Math.round(255 * (1 + t)), 255];
    };
  }
  const span = hi - lo || 1;
  return (v) => {
    const t = Math.max(0, Math.min(1, (v - lo) / span));
    return [Math.round(255 * Math.min(1, 1.6 * t)), Math.round(255 * Math.max(0, 1.6 * t - 0.6)),
      Math.round(255 * (t < 0.4 ? t * 1.5 : Math.max(0, 0.6 - (t - 0.4) * 1.5)))];
  };
}

function paintMap(canvas, values, offset, h, w, scale) {
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    const [r, g, b] = scale(values[offset + i]);
    img.data[4 * i] = r; img.data[4 * i + 1] = g; img.data[4 * i + 2] = b; img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

// ------------------------------------------------------------------ drawing
const draw = $("draw");
const dctx = draw.getContext("2d", { willReadFrequently: true });
let drawing = false, last = null;

function clearDrawing() {
  dctx.fillStyle = "#000";
  dctx.fillRect(0, 0, draw.width, draw.height);
}

function strokeTo(p) {
  dctx.strokeStyle = "#fff"; dctx.lineWidth = 20; dctx.lineCap = "round"; dctx.lineJoin = "round";
  dctx.beginPath();
  dctx.moveTo(last.x, last.y);
  dctx.lineTo(p.x + 0.01, p.y);   // a dot when the pointer did not move
  dctx.stroke();
  last = p;
}

function pointerPos(e) {
  const r = draw.getBoundingClientRect();
  return { x: (e.clientX - r.left) * draw.width / r.width, y: (e.clientY - r.top) * draw.height / r.height };
}

draw.addEventListener("pointerdown", (e) => {
  drawing = true; last = pointerPos(e); strokeTo(last);
  try { draw.setPointerCapture(e.pointerId); } catch (err) { /* synthetic pointers */ }
  e.preventDefault();
});
draw.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  strokeTo(pointerPos(e));
  if (!state.inFlight) update(null);       // live while drawing, one request at a time
});
function endStroke(e) {
  if (!drawing) return;
  drawing = false;
  update(performance.now());               // the timed update: stroke end -> redrawn layers
}
draw.addEventListener("pointerup", endStroke);
draw.addEventListener("pointercancel", endStroke);

// MNIST preprocessing: the ink's bounding box fitted into a 20x20 box (for a 28x28 input)
// by area averaging, then placed so that its centre of mass is at the image centre.
function preprocess(h, w) {
  const src = dctx.getImageData(0, 0, draw.width, draw.height).data;
  const W = draw.width, H = draw.height;
  const grey = new Float32Array(W * H);
  let y0 = H, y1 = -1, x0 = W, x1 = -1;
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const v = src[4 * (y * W + x)] / 255;
    grey[y * W + x] = v;
    if (v > 0.02) { if (y < y0) y0 = y; if (y > y1) y1 = y; if (x < x0) x0 = x; if (x > x1) x1 = x; }
  }
  if (y1 < 0) return null;
  const bh = y1 - y0 + 1, bw = x1 - x0 + 1;
  const box = Math.round(20 * Math.min(h, w) / 28);
  const f = Math.max(bh, bw) / box;               // source pixels per target pixel
  const th = Math.max(1, Math.round(bh / f)), tw = Math.max(1, Math.round(bw / f));
  // separable area weights: target cell t covers source [t*f, (t+1)*f)
  const weights = (n, t0) => {
    const out = [];
    for (let t = 0; t < n; t++) {
      const a = t * f, b = (t + 1) * f, taps = [];
      for (let s = Math.floor(a); s < Math.ceil(b); s++) {
        const cover = Math.min(b, s + 1) - Math.max(a, s);
        if (cover > 0) taps.push([t0 + s, cover / f]);
      }
      out.push(taps);
    }
    return out;
  };
  const wy = weights(th, y0), wx = weights(tw, x0);
  const small = new Float32Array(th * tw);
  let mass = 0, my = 0, mx = 0;
  for (let ty = 0; ty < th; ty++) for (let tx = 0; tx < tw; tx++) {
    let acc = 0;
    for (const [sy, ay] of wy[ty]) for (const [sx, ax] of wx[tx]) {
      if (sy < H && sx < W) acc += ay * ax * grey[sy * W + sx];
    }
    acc = Math.min(1, acc);
    small[ty * tw + tx] = acc;
    mass += acc; my += acc * (ty + 0.5); mx += acc * (tx + 0.5);
  }
  const oy = Math.max(0, Math.min(h - th, Math.round(h / 2 - my / mass)));
  const ox = Math.max(0, Math.min(w - tw, Math.round(w / 2 - mx / mass)));
  const out = new Float32Array(h * w);
  for (let ty = 0; ty < th; ty++) for (let tx = 0; tx < tw; tx++) out[(ty + oy) * w + tx + ox] = small[ty * tw + tx];
  return out;
}

// a binary PGM (P5) of the grey pixels: a one-line header and the bytes, built at once
// (a PNG through canvas.toBlob costs several milliseconds more); Pillow reads it
function toPgmBlob(pixels, h, w) {
  const head = new TextEncoder().encode(`P5\n${w} ${h}\n255\n`);
  const bytes = new Uint8Array(head.length + h * w);
  bytes.set(head, 0);
  for (let i = 0; i < h * w; i++) bytes[head.length + i] = Math.round(255 * pixels[i]);
  return new Blob([bytes], { type: "image/x-portable-graymap" });
}

// ------------------------------------------------------------------ forward pass
// {"shape", "dtype": "float32", "base64"} -> Float32Array (little-endian bytes)
function decodeFloat32(d) {
  if (d.values) return d.values;
  const bin = atob(d.base64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Float32Array(bytes.buffer);
}

async function update(t0) {
  if (!state.model) return;                // the page is still loading
  if (state.inFlight) {   // one request at a time; the newest drawing goes next
    state.pending = typeof t0 === "number" ? t0 : (state.pending || true);
    return;
  }
  const [, h, w] = state.model.input_shape;
  const tStart = performance.now();
  const pixels = preprocess(h, w);
  if (!pixels) return;
  state.inFlight = true;
  const tPre = performance.now();
  state.blob = toPgmBlob(pixels, h, w);
  state.invert = false;
  state.uploaded = false;
  state.prep = { wait: typeof t0 === "number" ? tStart - t0 : 0, preprocess: tPre - tStart,
    encode: performance.now() - tPre };
  await runForward(t0);
}

async function runForward(t0) {
  const seq = ++state.seq;
  state.inFlight = true;
  try {
    const tSend = performance.now();
    const res = await api(`/api/forward?${query({ invert: state.invert ? 1 : "", encoding: "base64" })}`,
      { method: "POST", body: state.blob, headers: { "Content-Type": "application/octet-stream" } });
    const tGot = performance.now();
    if (seq > state.shown) {
      state.shown = seq;
      res.input.values = decodeFloat32(res.input);
      res.layers.forEach((l) => { l.output.values = decodeFloat32(l.output); });
      state.forward = res;
      render(res);
      window.explorerBreakdown = { ...(state.prep || {}), request: tGot - tSend,
        render: performance.now() - tGot };
      if (state.picked) showUnit(state.picked).catch((e) => setStatus(e.message, true));
      if (typeof t0 === "number") {
        const ms = performance.now() - t0;
        window.explorerTimings.push(ms);
        const n = window.explorerTimings.length;
        const sorted = [...window.explorerTimings].sort((a, b) => a - b);
        $("latency").textContent = `stroke end to redrawn layers: ${ms.toFixed(0)} ms ` +
          `(median of ${n}: ${sorted[Math.floor((n - 1) / 2)].toFixed(0)} ms)`;
      }
      setStatus("");
    }
  } catch (e) {
    setStatus(e.message, true);
  } finally {
    state.inFlight = false;
    if (state.pending) {
      const p = state.pending;
      state.pending = false;
      update(typeof p === "number" ? p : null);
    }
  }
}

function render(res) {
  $("prediction").textContent = res.label;
  $("prediction").dataset.cls = String(res.predicted);
  renderProbs(res);
  renderInput($("input-view"), res.input, null);
  res.layers.forEach((layer, i) => renderLayer(i, layer));
}

function renderProbs(res) {
  const box = $("probs");
  box.textContent = "";
  const order = res.probabilities.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0]);
  const top = order.slice(0, Math.min(10, order.length));
  for (const [p, i] of top) {
    const fill = el("span");
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    box.appendChild(el("div", { class: i === res.predicted ? "prob top" : "prob" },
      [el("span", { text: state.model.classes[i] }), el("div", { class: "bar" }, [fill]),
        el("span", { text: `${(100 * p).toFixed(2)} %` })]));
  }
}

// the model's input (grey or RGB), scaled to the canvas, with an optional box (receptive field)
function renderInput(canvas, input, field, heat) {
  const [c, h, w] = input.shape;
  const v = input.values;
  const tmp = document.createElement("canvas");
  tmp.width = w; tmp.height = h;
  const tctx = tmp.getContext("2d");
  const img = tctx.createImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    for (let k = 0; k < 3; k++) {
      const val = c === 3 ? v[k * h * w + i] : v[i];
      let out = 255 * val;
      if (heat) out = k === 0 ? 0.5 * out + 255 * heat[i] : 0.5 * out * (1 - heat[i]) + 40 * heat[i];
      img.data[4 * i + k] = Math.max(0, Math.min(255, Math.round(out)));
    }
    img.data[4 * i + 3] = 255;
  }
  tctx.putImageData(img, 0, 0);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
  if (field) {
    const sy = canvas.height / h, sx = canvas.width / w;
    const [r0, c0, r1, c1] = field;
    ctx.fillStyle = "rgba(255, 190, 0, 0.25)";
    ctx.fillRect(c0 * sx, r0 * sy, (c1 - c0 + 1) * sx, (r1 - r0 + 1) * sy);
    ctx.strokeStyle = "#ffb000"; ctx.lineWidth = 2;
    ctx.strokeRect(c0 * sx + 1, r0 * sy + 1, (c1 - c0 + 1) * sx - 2, (r1 - r0 + 1) * sy - 2);
  }
}

function layerPanel(i, info) {
  let panel = $(`layer-${i}`);
  if (panel) return panel;
  const shape = info.output_shape.join("\u00d7");
  panel = el("div", { class: "layer-panel", id: `layer-${i}` }, [
    el("h3", {}, [`${info.name} `, el("span", { class: "cls", text: `${info.class} ` }),
      el("span", { class: "shape", text: shape }), " ", el("span", { class: "range" })]),
    el("div", { class: "body" })]);
  panel.dataset.layer = info.name;
  $("layers").appendChild(panel);
  return panel;
}

function renderLayer(i, layer) {
  const info = state.model.layers[i];
  const panel = layerPanel(i, info);
  panel.querySelector(".range").textContent = `range [${fmt(layer.min)}, ${fmt(layer.max)}]` +
    (layer.channels_shown !== null && layer.channels_shown < layer.output_shape[0]
      ? `, first ${layer.channels_shown} channels` : "");
  const body = panel.querySelector(".body");
  const shape = layer.output.shape;
  if (shape.length === 3) {
    const [c, h, w] = shape;
    let tiles = body.querySelector(".tiles");
    if (!tiles || tiles.childElementCount !== c) {
      body.textContent = "";
      tiles = el("div", { class: "tiles" });
      const px = Math.max(1, Math.floor(84 / Math.max(h, w)));
      for (let k = 0; k < c; k++) {
        const cv = el("canvas", { title: `${info.name} channel ${k}` });
        cv.style.width = `${w * px}px`; cv.style.height = `${h * px}px`;
        cv.dataset.channel = String(k);
        cv.addEventListener("click", (e) => pickUnit(e, i, k, h, w));
        tiles.appendChild(cv);
      }
      body.appendChild(tiles);
    }
    const scale = colourScale(layer.min, layer.max);
    tiles.querySelectorAll("canvas").forEach((cv, k) => paintMap(cv, layer.output.values, k * h * w, h, w, scale));
  } else {
    let cv = body.querySelector("canvas.bars");
    if (!cv) {
      body.textContent = "";
      cv = el("canvas", { class: "bars" });
      if (info.kind === "dense") {            // click a bar: that unit's weighted sum
        cv.classList.add("clickable");
        cv.title = `${info.name}: click a bar for its arithmetic`;
        cv.addEventListener("click", (e) => pickDense(e, i));
      }
      body.appendChild(cv);
    }
    drawBars(cv, layer.output.values, i === state.model.layers.length - 1 ? state.model.classes : null);
  }
  panel.classList.add("rendered");
}

function drawBars(cv, values, labels) {
  const n = values.length;
  const bw = Math.max(1, Math.min(24, Math.floor(560 / n)));
  cv.dataset.barWidth = String(bw);
  cv.dataset.count = String(n);
  cv.width = n * bw + 2; cv.height = labels ? 86 : 70;
  const ctx = cv.getContext("2d");
  ctx.clearRect(0, 0, cv.width, cv.height);
  let lo = 0, hi = 0;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  const span = hi - lo || 1, H = 66;
  const zero = 2 + H * hi / span;
  ctx.fillStyle = "#889"; ctx.fillRect(0, zero, cv.width, 1);
  values.forEach((v, j) => {
    ctx.fillStyle = v >= 0 ? "#3c5bd6" : "#d64c3c";
    const y = 2 + H * (hi - Math.max(v, 0)) / span;
    ctx.fillRect(1 + j * bw, Math.min(y, zero), Math.max(1, bw - 1), Math.abs(zero - y) || 1);
  });
  if (labels) {
    ctx.fillStyle = "#333"; ctx.font = "10px sans-serif"; ctx.textAlign = "center";
    labels.forEach((s, j) => ctx.fillText(String(s).slice(0, 4), 1 + (j + 0.5) * bw, 82));
  }
}

// ------------------------------------------------------------------ one unit
function pickUnit(e, i, k, h, w) {
  const cv = e.currentTarget;
  const r = cv.getBoundingClientRect();
  // inside the border: clientLeft/Top is the border width, clientWidth/Height the content
  const fx = (e.clientX - r.left - cv.clientLeft) / cv.clientWidth;
  const fy = (e.clientY - r.top - cv.clientTop) / cv.clientHeight;
  const col = Math.max(0, Math.min(w - 1, Math.floor(fx * w)));
  const row = Math.max(0, Math.min(h - 1, Math.floor(fy * h)));
  document.querySelectorAll(".tiles canvas.picked").forEach((c) => c.classList.remove("picked"));
  cv.classList.add("picked");
  state.picked = { layer: state.model.layers[i].name, channel: k, row, col };
  showUnit(state.picked).catch((err) => setStatus(err.message, true));
}

function grid(caption, arr, rows, cols, inside, mark) {
  // arr: flat (rows*cols) values; inside: rows x cols booleans (false = padding)
  const t = el("table", { class: "grid" }, [el("caption", { text: caption })]);
  for (let r = 0; r < rows; r++) {
    const tr = el("tr");
    for (let c = 0; c < cols; c++) {
      const td = el("td", { text: fmt(arr[r * cols + c]) });
      if (inside && !inside[r][c]) td.className = "pad";
      if (mark && mark[0] === r && mark[1] === c) td.className = "win";
      tr.appendChild(td);
    }
    t.appendChild(tr);
  }
  return t;
}

function pickDense(e, i) {
  const cv = e.currentTarget;
  const r = cv.getBoundingClientRect();
  const x = (e.clientX - r.left - cv.clientLeft) * cv.width / cv.clientWidth;
  const n = parseInt(cv.dataset.count, 10), bw = parseInt(cv.dataset.barWidth, 10);
  const j = Math.max(0, Math.min(n - 1, Math.floor((x - 1) / bw)));
  document.querySelectorAll(".tiles canvas.picked").forEach((c) => c.classList.remove("picked"));
  state.picked = { layer: state.model.layers[i].name, channel: j, row: 0, col: 0 };
  showUnit(state.picked).catch((err) => setStatus(err.message, true));
}

function denseTable(res) {
  const t = el("table", { class: "grid" }, [el("caption", { text:
    `the ${res.top.length} largest of ${res.inputs.shape[0]} products` })]);
  t.appendChild(el("tr", {}, ["input #", "input", "weight", "product"].map((h) => el("td", { text: h }))));
  for (const k of res.top) {
    t.appendChild(el("tr", {}, [String(k), fmt(res.inputs.values[k]), fmt(res.weights.values[k]),
      fmt(res.products.values[k])].map((v) => el("td", { text: v }))));
  }
  return t;
}

async function showUnit(p) {
  if (!state.blob) return;
  const res = await api(`/api/unit?${query({ ...p, invert: state.invert ? 1 : "" })}`,
    { method: "POST", body: state.blob, headers: { "Content-Type": "application/octet-stream" } });
  const body = $("unit-body");
  body.textContent = "";
  body.className = "";
  const where = res.kind === "dense" ? `${res.layer} (${res.class}) unit ${res.channel}`
    : `${res.layer} (${res.class}) channel ${res.channel}, row ${res.row}, col ${res.col}`;
  body.appendChild(el("div", { class: "eq", text: where }));
  if (res.kind === "dense") {
    const D = res.inputs.shape[0];
    body.appendChild(el("div", { class: "hint", text:
      `the ${D} outputs of ${res.input_layer || "the input"} times column ${res.channel} of the weights` }));
    body.appendChild(denseTable(res));
    body.appendChild(el("div", { class: "eq", text: `sum of all ${D} products = ${fmt(res.sum)}` }));
    body.appendChild(el("div", { class: "eq", text: `+ bias ${fmt(res.bias)} = ${fmt(res.value)}` }));
    body.appendChild(el("div", { class: "eq", text: `the model's output: ${fmt(res.output)}` +
      (res.activation ? ` (after its fused ${res.activation})` : "") }));
  } else if (res.kind === "conv") {
    const [C, kh, kw] = res.window.shape;
    const g = res.geometry;
    body.appendChild(el("div", { class: "hint", text:
      `${kh}x${kw}x${C} window of ${res.input_layer || "the input"} at rows ${res.rows[0]}..${res.rows[kh - 1]}, ` +
      `cols ${res.cols[0]}..${res.cols[kw - 1]} (stride ${g.stride.join("x")}, padding ${g.padding.join("x")}` +
      `, dilation ${g.dilation.join("x")}; grey cells are padding zeros)` }));
    const subs = [];
    for (let c = 0; c < C; c++) {
      subs.push(res.products.values.slice(c * kh * kw, (c + 1) * kh * kw).reduce((a, b) => a + b, 0));
    }
    // one input channel at a time (default: the one contributing most), chosen by a select
    let best = 0;
    subs.forEach((v, c) => { if (Math.abs(v) > Math.abs(subs[best])) best = c; });
    const pick = el("select", { id: "unit-channel", "aria-label": "input channel" });
    subs.forEach((v, c) => pick.appendChild(el("option", { value: String(c), text: `input channel ${c}: products sum ${fmt(v)}` })));
    pick.value = String(best);
    const tables = el("div", { class: "unit-tables" });
    const showChannel = (c) => {
      const off = c * kh * kw;
      const sl = (a) => a.values.slice(off, off + kh * kw);
      tables.textContent = "";
      tables.appendChild(grid(`window (channel ${c})`, sl(res.window), kh, kw, res.inside));
      tables.appendChild(grid("\u00d7 kernel", sl(res.kernel), kh, kw, null));
      tables.appendChild(grid(`= products (sum ${fmt(subs[c])})`, sl(res.products), kh, kw, res.inside));
    };
    pick.addEventListener("change", () => showChannel(parseInt(pick.value, 10)));
    if (C > 1) body.appendChild(pick);
    body.appendChild(tables);
    showChannel(best);
    body.appendChild(el("div", { class: "eq", text: `sum of all ${C * kh * kw} products` +
      (C > 1 ? ` (${C} channels)` : "") + ` = ${fmt(res.sum)}` }));
    body.appendChild(el("div", { class: "eq", text: `+ bias ${fmt(res.bias)} = ${fmt(res.value)}` }));
    body.appendChild(el("div", { class: "eq", text: `the model's output: ${fmt(res.output)}` +
      (res.activation ? ` (after its fused ${res.activation})` : "") }));
  } else if (res.kind === "pool") {
    const [kh, kw] = res.window.shape;
    body.appendChild(grid(`${kh}x${kw} window of ${res.input_layer || "the input"}, channel ${res.channel}`,
      res.window.values, kh, kw, res.inside, res.argmax));
    body.appendChild(el("div", { class: "eq", text: `${res.op} of the window = ${fmt(res.value)}` }));
    body.appendChild(el("div", { class: "eq", text: `the model's output: ${fmt(res.output)}` }));
  } else {
    body.appendChild(el("div", { class: "eq", text: res.input === null
      ? `${res.class} output = ${fmt(res.value)} (a block of several layers: its arithmetic is not shown)`
      : `${res.class}(${fmt(res.input)}) = ${fmt(res.value)}` }));
  }
  if (res.field) {
    const [r0, c0, r1, c1] = res.field;
    body.appendChild(el("div", { class: "hint", text:
      `receptive field on the input: rows ${r0}..${r1}, cols ${c0}..${c1} (lit on "What the model sees")` }));
  }
  if (state.forward) renderInput($("input-view"), state.forward.input, res.field);
}

// ------------------------------------------------------------------ Grad-CAM / saliency
async function showAttribution() {
  if (!state.blob) { setStatus("draw or upload an image first", true); return; }
  const method = $("attr-method").value;
  const params = { method, target: $("attr-class").value, invert: state.invert ? 1 : "" };
  if (method === "gradcam") params.layer = $("attr-layer").value;
  const res = await api(`/api/attribution?${query(params)}`,
    { method: "POST", body: state.blob, headers: { "Content-Type": "application/octet-stream" } });
  const m = res.map.values;
  const top = m.reduce((a, b) => Math.max(a, b), 0) || 1;
  renderInput($("attr-view"), state.forward.input, null, m.map((v) => v / top));
  $("attr-info").textContent = `${method === "gradcam" ? `Grad-CAM at ${res.layer}` : "saliency |d score / dx|"}` +
    ` for class ${state.model.classes[res.target]} (score ${fmt(res.scores[res.target])})`;
}

// ------------------------------------------------------------------ filters
async function showFilters() {
  const layer = $("filters-layer").value;
  const res = await api(`/api/filters?${query({ layer })}`);
  const [K, C, kh, kw] = res.weights.shape;
  const v = res.weights.values;
  let lo = 0, hi = 0;
  for (const x of v) { if (x < lo) lo = x; if (x > hi) hi = x; }
  const scale = colourScale(Math.min(lo, -1e-12), hi);   // signed: one scale for the panel
  const body = $("filters-body");
  body.textContent = "";
  const showC = Math.min(C, 8);
  body.appendChild(el("div", { class: "hint", text:
    `${layer}: ${K} filters of ${C}x${kh}x${kw} (rows: filters; columns: input channels` +
    `${C > showC ? `, first ${showC}` : ""}); blue negative, red positive, range [${fmt(lo)}, ${fmt(hi)}]` }));
  const g = el("div", { class: "filters-grid" });
  const px = Math.max(3, Math.floor(30 / Math.max(kh, kw)));
  for (let k = 0; k < K; k++) {
    const row = el("div");
    for (let c = 0; c < showC; c++) {
      const cv = el("canvas", { title: `filter ${k}, channel ${c}` });
      cv.style.width = `${kw * px}px`; cv.style.height = `${kh * px}px`;
      paintMap(cv, v, (k * C + c) * kh * kw, kh, kw, scale);
      row.appendChild(cv);
    }
    g.appendChild(row);
  }
  body.appendChild(g);
}

// ------------------------------------------------------------------ conv arithmetic
let anim = null;
async function convArithmetic() {
  const vals = ["n", "k", "p", "s", "d"].map((key) => parseInt($(`ca-${key}`).value, 10));
  const [n, k, p, s, d] = vals;
  const out = $("ca-result");
  out.textContent = "";
  if (anim) { clearInterval(anim); anim = null; }
  const cv = $("ca-anim");
  cv.getContext("2d").clearRect(0, 0, cv.width, cv.height);
  if (vals.some((v) => Number.isNaN(v))) { out.appendChild(el("div", { class: "bad", text: "every field needs a whole number" })); return; }
  let res;
  try {
    res = await api(`/api/conv-size?${query({ n, k, p, s, d })}`);
  } catch (e) {
    out.appendChild(el("div", { class: "bad", text: e.message })); return;
  }
  out.appendChild(el("div", { class: "eq", text: `output = ${res.formula}` }));
  if (res.error) {
    out.appendChild(el("div", { class: "bad", id: "ca-error", text: `invalid: ${res.error}` }));
    return;
  }
  out.appendChild(el("div", { class: "eq", id: "ca-output", text: `= ${res.output}` }));
  if (!res.exact) {
    out.appendChild(el("div", { class: "hint", text:
      `the stride does not tile the padded input exactly: the last ${(n + 2 * p - res.span) % s} row(s)/col(s) are never read` }));
  }
  animate(n, k, p, s, d, res.output);
}

function animate(n, k, p, s, d, o) {
  const cv = $("ca-anim"), ctx = cv.getContext("2d");
  const N = n + 2 * p;
  const cell = Math.max(3, Math.min(18, Math.floor(Math.min(200 / N, 150 / Math.max(o, 1)))));
  const ox = N * cell + 20;
  let step = 0;
  const frame = () => {
    const i = Math.floor(step / o) % o, j = step % o;
    ctx.clearRect(0, 0, cv.width, cv.height);
    for (let r = 0; r < N; r++) for (let c = 0; c < N; c++) {
      const pad = r < p || c < p || r >= p + n || c >= p + n;
      ctx.fillStyle = pad ? "#e4e4ec" : "#b8c4f0";
      ctx.fillRect(c * cell, r * cell, cell - 1, cell - 1);
    }
    ctx.fillStyle = "rgba(255, 160, 0, 0.75)";
    for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) {
      ctx.fillRect((j * s + b * d) * cell, (i * s + a * d) * cell, cell - 1, cell - 1);
    }
    for (let r = 0; r < o; r++) for (let c = 0; c < o; c++) {
      ctx.fillStyle = r === i && c === j ? "#ff9d00" : (r * o + c < step % (o * o) ? "#7f95e6" : "#dfe4f6");
      ctx.fillRect(ox + c * cell, r * cell, cell - 1, cell - 1);
    }
    ctx.fillStyle = "#333"; ctx.font = "11px sans-serif";
    ctx.fillText(`input ${n}x${n} + padding ${p}`, 0, N * cell + 14);
    ctx.fillText(`output ${o}x${o}`, ox, o * cell + 14);
    step = (step + 1) % (o * o);
  };
  frame();
  if (o * o > 1) anim = setInterval(frame, 500);
}

// ------------------------------------------------------------------ start
async function start() {
  clearDrawing();
  try {
    state.model = await api("/api/model");
  } catch (e) {
    setStatus(`cannot load the model: ${e.message}`, true); return;
  }
  const m = state.model;
  $("model-name").textContent = `${m.name}: input ${m.input_shape.join("\u00d7")}, ` +
    `${m.total_params.toLocaleString()} parameters, ${m.layers.length} layers`;
  m.layers.forEach((info, i) => layerPanel(i, info));
  const cls = $("attr-class");
  cls.appendChild(el("option", { value: "", text: "predicted class" }));
  m.classes.forEach((c, i) => cls.appendChild(el("option", { value: String(i), text: `class ${c}` })));
  const spatial = m.layers.filter((l) => l.output_shape.length === 3);
  spatial.forEach((l) => $("attr-layer").appendChild(el("option", { value: l.name, text: l.name })));
  const convs = m.layers.filter((l) => l.kind === "conv");
  if (convs.length) $("attr-layer").value = convs[convs.length - 1].name;
  convs.forEach((l) => $("filters-layer").appendChild(el("option", { value: l.name, text: l.name })));
  if (!convs.length) $("filters-run").disabled = true;
  $("clear").addEventListener("click", () => { clearDrawing(); });
  $("upload").addEventListener("change", async (e) => {
    const f = e.target.files[0];
    if (!f) return;
    if (f.size > state.model.max_upload) {   // the server would answer 413
      setStatus(`${f.name} is ${f.size.toLocaleString()} bytes; this server accepts at most ` +
        `${state.model.max_upload.toLocaleString()} (cnnlab explore --max-upload)`, true);
      return;
    }
    state.blob = f;
    state.invert = $("invert").checked;
    state.uploaded = true;
    await runForward(performance.now());
  });
  $("invert").addEventListener("change", async () => {
    if (state.blob && state.uploaded) {        // invert applies to uploads, not drawings
      state.invert = $("invert").checked;
      await runForward(null);
    }
  });
  $("attr-run").addEventListener("click", () => showAttribution().catch((e) => setStatus(e.message, true)));
  $("filters-run").addEventListener("click", () => showFilters().catch((e) => setStatus(e.message, true)));
  ["n", "k", "p", "s", "d"].forEach((key) => $(`ca-${key}`).addEventListener("input", convArithmetic));
  convArithmetic();
  document.body.dataset.ready = "1";
}

start();

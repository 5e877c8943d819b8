/* rosenblatt playground: the page. Plain JS, no build step, no network but this server.
 *
 * The server owns the network (one session per tab); this file draws what it sends and
 * turns clicks into small JSON requests. The whole setup lives in the URL's hash.
 */
"use strict";

const LEARNING_RATES = [0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
const REG_RATES = [0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
const CLASSIFY = ["circle", "xor", "gauss", "spiral"];
const REGRESS = ["reg-plane", "reg-gauss"];
const FEATURES = ["x", "y", "xSquared", "ySquared", "xTimesY", "sinX", "sinY"];
const FEATURE_LABELS = {x: "X\u2081", y: "X\u2082", xSquared: "X\u2081\u00b2",
  ySquared: "X\u2082\u00b2", xTimesY: "X\u2081X\u2082", sinX: "sin(X\u2081)",
  sinY: "sin(X\u2082)"};
const MAX_LAYERS = 10, MAX_NEURONS = 32;
const NODE = 36, VGAP = 48, TOP = 34;
const LAYER_COLOURS = ["#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd", "#8c564b",
  "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#000000"];

const state = {
  sid: null, config: null, data: null, frame: null, playing: false, ws: null,
  hist: {train: [], test: [], grad: []}, view: {showTest: false, discretize: false},
  weights: null, sizes: null,
};
const $ = (id) => document.getElementById(id);
const ICON_PLAY = '<svg width="24" height="24" viewBox="0 0 24 24"><path d="M8 5v14l11-7z" fill="currentColor"/></svg>';
const ICON_PAUSE = '<svg width="24" height="24" viewBox="0 0 24 24"><path d="M6 19h4V5H6v14zm8-14v14h4V5h-4z" fill="currentColor"/></svg>';

/* ---------- colours: orange (-1) - grey (0) - blue (+1) ---------- */
const ORANGE = [245, 147, 34], GREY = [232, 234, 235], BLUE = [8, 119, 189];
function colour(v) {
  v = Math.max(-1, Math.min(1, v));
  const [a, b, t] = v < 0 ? [GREY, ORANGE, -v] : [GREY, BLUE, v];
  return [0, 1, 2].map((i) => Math.round(a[i] + (b[i] - a[i]) * t));
}
const LUT = Array.from({length: 256}, (_, b) => colour(b / 127 - 1));
const css = (v) => `rgb(${colour(v).join(",")})`;

function decode(b64) {
  const s = atob(b64), out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
function paint(canvas, bytes, n, discretize) {
  const ctx = canvas.getContext("2d");
  if (canvas.width !== n) { canvas.width = n; canvas.height = n; }
  const img = ctx.createImageData(n, n);
  for (let i = 0; i < n * n; i++) {
    let b = bytes[i];
    if (discretize) b = b >= 127 ? 254 : 0;
    const c = LUT[b];
    img.data[4 * i] = c[0]; img.data[4 * i + 1] = c[1]; img.data[4 * i + 2] = c[2];
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

/* ---------- URL state ---------- */
const URL_KEYS = {
  dataset: "s", noise: "n", train_ratio: "n", seed: "n", init_seed: "n", features: "l",
  layers: "nl", activation: "s", learning_rate: "n", regularization: "s", reg_rate: "n",
  batch_size: "n", optimizer: "s", init: "s", loss: "s", batch_norm: "b",
};
function readHash() {
  const out = {}, view = {};
  const params = new URLSearchParams(location.hash.slice(1));
  for (const [k, v] of params) {
    const kind = URL_KEYS[k];
    if (k === "showTestData") view.showTest = v === "true";
    else if (k === "discretize") view.discretize = v === "true";
    else if (kind === "n") out[k] = Number(v);
    else if (kind === "b") out[k] = v === "true";
    else if (kind === "l") out[k] = v ? v.split(",") : [];
    else if (kind === "nl") out[k] = v ? v.split(",").map(Number) : [];
    else if (kind === "s") out[k] = v;
  }
  return {config: out, view};
}
function writeHash() {
  if (!state.config) return;
  const p = new URLSearchParams();
  for (const k of Object.keys(URL_KEYS)) {
    if (k === "dataset" && state.config.dataset === "upload") continue;
    const v = state.config[k];
    p.set(k, Array.isArray(v) ? v.join(",") : String(v));
  }
  p.set("showTestData", String(state.view.showTest));
  p.set("discretize", String(state.view.discretize));
  history.replaceState(null, "", "#" + p.toString());
}

/* ---------- server calls ---------- */
async function api(path, body, raw) {
  const opts = {method: "POST"};
  if (raw !== undefined) { opts.body = raw; opts.headers = {"Content-Type": "text/csv"}; }
  else opts.body = JSON.stringify(body || {});
  const r = await fetch(`/api/session/${state.sid}${path}`, opts);
  const j = await r.json();
  if (!r.ok) { setStatus(j.error || `error ${r.status}`); throw new Error(j.error); }
  return j;
}
function setStatus(msg, ok) {
  const s = $("status");
  s.textContent = msg || "";
  s.className = ok ? "ok" : "";
}

async function start() {
  buildStaticControls();
  setPlaying(false);
  const {config, view} = readHash();
  Object.assign(state.view, view);
  let r = await fetch("/api/session", {method: "POST", body: JSON.stringify({config})});
  let j = await r.json();
  if (!r.ok) {
    setStatus(`URL settings rejected (${j.error}); using the defaults`);
    r = await fetch("/api/session", {method: "POST", body: "{}"});
    j = await r.json();
  }
  state.sid = j.id;
  applyFull(j);
  openStream();
  window.addEventListener("beforeunload", () => {
    navigator.sendBeacon && fetch(`/api/session/${state.sid}`, {method: "DELETE",
      keepalive: true});
  });
}

function openStream() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/api/session/${state.sid}/stream`);
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.frame) {
      applyFrame(m.frame);
      if (m.frame.playing === false) setPlaying(false);
    }
  };
  ws.onclose = () => { state.ws = null; if (state.playing) setPlaying(false); };
  state.ws = ws;
}

/* ---------- applying server state ---------- */
function applyFull(j) {
  state.config = j.config;
  state.data = j.data;
  state.hist = {train: [], test: [], grad: []};
  syncControls();
  drawDatasetPicker();
  applyFrame(j.frame);
  writeHash();
}

function applyFrame(f) {
  const h = state.hist;
  if (f.since > h.train.length) {
    // a frame was missed (e.g. cut off by a pause): fetch the history from where we are
    const since = h.train.length;
    fetch(`/api/session/${state.sid}/frame?since=${since}`).then((r) => r.json())
      .then((j) => { if (j.frame && j.frame.since <= state.hist.train.length) applyFrame(j.frame); });
  }
  for (const [key, src] of [["train", f.train], ["test", f.test], ["grad", f.grad_norms]]) {
    h[key].length = Math.min(h[key].length, f.since);
    for (const v of src) h[key].push(v);
  }
  state.frame = f;
  const sizesChanged = JSON.stringify(f.sizes) !== JSON.stringify(state.sizes);
  state.sizes = f.sizes;
  state.weights = f.weights;
  if (sizesChanged) buildNetwork();
  updateNetwork(f);
  $("epoch-number").textContent = String(f.epoch).padStart(6, "0")
    .replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  $("loss-test").textContent = fmt(f.test_loss);
  $("loss-train").textContent = fmt(f.train_loss);
  $("accuracy").textContent = f.accuracy && f.accuracy.test !== null
    ? `accuracy: test ${(100 * f.accuracy.test).toFixed(1)} %, training ${(100 * f.accuracy.train).toFixed(1)} %`
    : "";
  if (f.output) paint($("heatmap-bg"), decode(f.output), 100, state.view.discretize);
  state.lastOutput = f.output || state.lastOutput;
  drawPoints();
  drawLossChart();
  drawGradChart();
  if (f.status === "diverged") {
    setStatus("Training diverged (non-finite loss): weights restored to the last finite " +
      "epoch. Lower the learning rate and reset.");
  }
}
const fmt = (v) => (v === null || v === undefined ? "NaN" : v.toFixed(3));

/* ---------- controls ---------- */
function option(sel, value, text) {
  const o = document.createElement("option");
  o.value = String(value); o.textContent = text;
  sel.appendChild(o);
}
function buildStaticControls() {
  for (const v of LEARNING_RATES) option($("learningRate"), v, String(v));
  for (const v of REG_RATES) option($("regularRate"), v, String(v));
  const colorbar = $("colormap-bar").getContext("2d");
  for (let x = 0; x < 200; x++) {
    colorbar.fillStyle = css(x / 99.5 - 1);
    colorbar.fillRect(x, 0, 1, 10);
  }
  const on = (id, ev, fn) => $(id).addEventListener(ev, fn);
  on("learningRate", "change", (e) => change({learning_rate: Number(e.target.value)}));
  on("activations", "change", (e) => change({activation: e.target.value}));
  on("regularizations", "change", (e) => change({regularization: e.target.value}));
  on("regularRate", "change", (e) => change({reg_rate: Number(e.target.value)}));
  on("optimizer", "change", (e) => change({optimizer: e.target.value}));
  on("init", "change", (e) => change({init: e.target.value}));
  on("loss", "change", (e) => change({loss: e.target.value}));
  on("batchNorm", "change", (e) => change({batch_norm: e.target.checked}));
  on("problem", "change", (e) => change({
    dataset: e.target.value === "regression" ? "reg-plane" : "circle"}));
  for (const id of ["percTrainData", "noise", "batchSize"]) {
    on(id, "input", (e) => { $(`${id}-value`).textContent = e.target.value; });
  }
  on("percTrainData", "change", (e) => change({train_ratio: Number(e.target.value)}));
  on("noise", "change", (e) => change({noise: Number(e.target.value)}));
  on("batchSize", "change", (e) => change({batch_size: Number(e.target.value)}));
  on("data-regen-button", "click", () => change({seed: Math.floor(Math.random() * 1e6)}));
  on("add-layers", "click", () => {
    const l = state.config.layers.slice();
    if (l.length < MAX_LAYERS) { l.push(2); change({layers: l}); }
  });
  on("remove-layers", "click", () => {
    const l = state.config.layers.slice();
    if (l.length > 0) { l.pop(); change({layers: l}); }
  });
  on("play-pause-button", "click", togglePlay);
  on("next-step-button", "click", async () => {
    const j = await api("/step", {epochs: 1});
    setPlaying(false);
    applyFrame(j.frame);
  });
  on("reset-button", "click", async () => {
    const j = await api("/reset", {new_init: true});
    setPlaying(false);
    state.config = j.config;
    state.hist = {train: [], test: [], grad: []};
    setStatus("");
    applyFrame(j.frame);
    writeHash();
  });
  on("show-test-data", "change", (e) => { state.view.showTest = e.target.checked; drawPoints(); writeHash(); });
  on("discretize", "change", (e) => {
    state.view.discretize = e.target.checked;
    if (state.lastOutput) paint($("heatmap-bg"), decode(state.lastOutput), 100, state.view.discretize);
    writeHash();
  });
  on("csv-upload", "change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    const text = await file.text();
    try {
      const j = await api("/upload", null, text);
      setPlaying(false);
      applyFull(j);
      setStatus(`Uploaded ${j.upload.n} points (${j.upload.regression ? "regression" : "classification"}).`, true);
    } catch (err) { /* status already shows the server's message */ }
    e.target.value = "";
  });
  for (const [id, what] of [["export-pkl", "export.pkl"], ["export-py", "export.py"]]) {
    $(id).addEventListener("click", (e) => {
      e.preventDefault();
      const a = document.createElement("a");
      a.href = `/api/session/${state.sid}/${what}`;
      a.download = what === "export.pkl" ? "playground_model.pkl" : "playground_model.py";
      document.body.appendChild(a); a.click(); a.remove();
    });
  }
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") hideEditor(); });
  $("weight-input").addEventListener("keydown", submitWeight);
}

function syncControls() {
  const c = state.config;
  $("learningRate").value = String(c.learning_rate);
  if ($("learningRate").value !== String(c.learning_rate)) {
    option($("learningRate"), c.learning_rate, String(c.learning_rate));
    $("learningRate").value = String(c.learning_rate);
  }
  $("activations").value = c.activation;
  $("regularizations").value = c.regularization;
  $("regularRate").value = String(c.reg_rate);
  $("optimizer").value = c.optimizer;
  $("init").value = c.init;
  $("loss").value = c.loss;
  $("batchNorm").checked = c.batch_norm;
  const regression = state.data.problem === "regression";
  $("problem").value = regression ? "regression" : "classification";
  $("loss").disabled = regression;
  for (const [id, v] of [["percTrainData", c.train_ratio], ["noise", c.noise],
    ["batchSize", c.batch_size]]) {
    $(id).value = v; $(`${id}-value`).textContent = v;
  }
  $("seed-value").textContent = c.dataset === "upload" ? "(uploaded)" : String(c.seed);
  $("num-layers").textContent = c.layers.length;
  $("layers-label").textContent = c.layers.length === 1 ? "hidden layer" : "hidden layers";
  $("show-test-data").checked = state.view.showTest;
  $("discretize").checked = state.view.discretize;
}

async function change(settings) {
  hideEditor();
  try {
    const j = await api("/config", settings);
    setStatus("");
    applyFull(j);
    setPlaying(j.playing);
  } catch (err) {
    syncControls();
  }
}

async function togglePlay() {
  if (state.playing) {
    const j = await api("/pause", {});
    setPlaying(false);
    applyFrame(j.frame);
  } else {
    if (!state.ws || state.ws.readyState > 1) openStream();
    const body = {};
    const ue = parseInt($("until-epoch").value, 10), ul = parseFloat($("until-loss").value);
    if (ue > 0) body.until_epoch = ue;
    if (ul > 0) body.until_test_loss = ul;
    await api("/play", body);
    setPlaying(true);
  }
}
function setPlaying(p) {
  state.playing = !!p;
  const b = $("play-pause-button");
  b.classList.toggle("playing", state.playing);
  b.innerHTML = state.playing ? ICON_PAUSE : ICON_PLAY;
}

/* ---------- data set picker ---------- */
function iconPoints(name) {
  // small deterministic previews drawn with the same formulas (noise 0)
  let seed = 7;
  const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  const u = (a, b) => a + (b - a) * rnd();
  const pts = [];
  for (let i = 0; i < 120; i++) {
    if (name === "circle") {
      const r = i < 60 ? u(0, 2.5) : u(3.5, 5), a = u(0, 2 * Math.PI);
      pts.push([r * Math.sin(a), r * Math.cos(a), i < 60 ? 1 : -1]);
    } else if (name === "xor") {
      const x = u(-5, 5), y = u(-5, 5);
      pts.push([x, y, x * y >= 0 ? 1 : -1]);
    } else if (name === "gauss") {
      const c = i < 60 ? 2 : -2;
      pts.push([c + u(-1.2, 1.2), c + u(-1.2, 1.2), i < 60 ? 1 : -1]);
    } else if (name === "spiral") {
      const k = i % 60, r = (k / 60) * 5, t = 1.75 * (k / 60) * 2 * Math.PI + (i < 60 ? 0 : Math.PI);
      pts.push([r * Math.sin(t), r * Math.cos(t), i < 60 ? 1 : -1]);
    } else if (name === "reg-plane") {
      const x = u(-6, 6), y = u(-6, 6);
      pts.push([x, y, (x + y) / 10]);
    } else {
      const x = u(-6, 6), y = u(-6, 6);
      const cs = [[-4, 2.5, 1], [0, 2.5, -1], [4, 2.5, 1], [-4, -2.5, -1], [0, -2.5, 1], [4, -2.5, -1]];
      let lab = 0;
      for (const [cx, cy, s] of cs) {
        const v = s * Math.min(Math.max(1 - Math.hypot(x - cx, y - cy) / 2, 0), 1);
        if (Math.abs(v) > Math.abs(lab)) lab = v;
      }
      pts.push([x, y, lab]);
    }
  }
  return pts;
}
function drawDatasetPicker() {
  const box = $("datasets");
  box.innerHTML = "";
  const names = state.data.problem === "regression" ? REGRESS : CLASSIFY;
  for (const name of names) {
    const cv = document.createElement("canvas");
    cv.width = 60; cv.height = 60;
    cv.dataset.dataset = name;
    cv.title = name;
    cv.className = "dataset" + (state.config.dataset === name ? " selected" : "");
    const ctx = cv.getContext("2d");
    ctx.fillStyle = "#f4f4f4"; ctx.fillRect(0, 0, 60, 60);
    for (const [x, y, l] of iconPoints(name)) {
      ctx.fillStyle = css(l);
      ctx.beginPath(); ctx.arc((x + 6) * 5, (6 - y) * 5, 1.6, 0, 2 * Math.PI); ctx.fill();
    }
    cv.addEventListener("click", () => change({dataset: name}));
    box.appendChild(cv);
  }
}

/* ---------- the network ---------- */
function layout() {
  const sizes = state.sizes;
  const width = Math.max(420, $("network-column").clientWidth - 10);
  const cols = sizes.length;
  const step = Math.max(80, (width - 80 - NODE) / Math.max(cols - 1, 1));
  const pos = sizes.map((n, l) => Array.from({length: n}, (_, i) => [
    70 + l * step, TOP + i * VGAP + (l === cols - 1 ? VGAP : 0)]));
  // the inputs list every feature, selected or not
  return {pos, step, width: 70 + (cols - 1) * step + NODE + 10,
    height: TOP + Math.max(FEATURES.length, ...sizes) * VGAP + 20};
}
function buildNetwork() {
  const nodes = $("nodes"), svg = $("links");
  nodes.innerHTML = ""; svg.innerHTML = "";
  const {pos, width, height} = layout();
  state.layout = pos;
  $("network").style.height = `${height}px`;
  svg.setAttribute("width", width); svg.setAttribute("height", height);
  const c = state.config, sizes = state.sizes, L = sizes.length;
  // inputs: all features; the selected ones are wired in, in canonical order
  let k = 0;
  state.inputPos = {};
  FEATURES.forEach((f, i) => {
    const on = c.features.includes(f);
    const el = node(nodes, 70, TOP + i * VGAP, "input" + (on ? "" : " off"));
    el.dataset.feature = f;
    const lab = document.createElement("div");
    lab.className = "label"; lab.textContent = FEATURE_LABELS[f];
    el.appendChild(lab);
    el.title = on ? `${FEATURE_LABELS[f]} (click to remove)` : `${FEATURE_LABELS[f]} (click to add)`;
    el.addEventListener("click", () => {
      const next = on ? c.features.filter((x) => x !== f) : c.features.concat([f]);
      if (next.length === 0) { setStatus("Keep at least one input feature."); return; }
      change({features: next});
    });
    if (on) { pos[0][k] = [70, TOP + i * VGAP]; state.inputPos[k] = el; k++; }
    else drawFeatureThumb(el.querySelector("canvas"), f);
  });
  // hidden and output neurons
  for (let l = 1; l < L; l++) {
    for (let j = 0; j < sizes[l]; j++) {
      const [x, y] = pos[l][j];
      const el = node(nodes, x, y, l === L - 1 ? "output" : "hidden");
      el.dataset.layer = l; el.dataset.index = j;
      const b = document.createElement("div");
      b.className = "bias";
      b.dataset.layer = l - 1; b.dataset.target = j;
      b.addEventListener("mouseenter", (e) => hover(e, `Bias is ${fmt4(state.weights[l - 1].b[j])}`));
      b.addEventListener("mouseleave", unhover);
      b.addEventListener("click", (e) => editWeight(e, l - 1, -1, j));
      el.appendChild(b);
    }
    if (l < L - 1) {
      const ctl = document.createElement("div");
      ctl.className = "layer-controls";
      ctl.style.left = `${pos[l][0][0] - 8}px`; ctl.style.top = "0px";
      const plus = document.createElement("button"), minus = document.createElement("button");
      plus.className = minus.className = "round";
      plus.textContent = "+"; minus.innerHTML = "&minus;";
      plus.title = "Add a neuron"; minus.title = "Remove a neuron";
      plus.dataset.layer = minus.dataset.layer = l - 1;
      plus.classList.add("add-neuron"); minus.classList.add("remove-neuron");
      plus.addEventListener("click", () => neurons(l - 1, +1));
      minus.addEventListener("click", () => neurons(l - 1, -1));
      const n = document.createElement("span");
      n.textContent = `${sizes[l]}`;
      ctl.append(plus, minus, n);
      nodes.appendChild(ctl);
    }
  }
  // links
  for (let l = 0; l < L - 1; l++) {
    for (let i = 0; i < sizes[l]; i++) {
      for (let j = 0; j < sizes[l + 1]; j++) {
        const [x1, y1] = pos[l][i], [x2, y2] = pos[l + 1][j];
        const d = `M${x1 + NODE},${y1 + NODE / 2} C${(x1 + NODE + x2) / 2},${y1 + NODE / 2} ` +
          `${(x1 + NODE + x2) / 2},${y2 + NODE / 2} ${x2},${y2 + NODE / 2}`;
        const p = svgPath(svg, d, "link");
        p.id = `link-${l}-${i}-${j}`;
        const hit = svgPath(svg, d, "hit");
        Object.assign(hit.dataset, {layer: l, source: i, target: j});
        hit.addEventListener("mouseenter", (e) =>
          hover(e, `Weight is ${fmt4(state.weights[l].W[i][j])}`));
        hit.addEventListener("mouseleave", unhover);
        hit.addEventListener("click", (e) => editWeight(e, l, i, j));
      }
    }
  }
}
const fmt4 = (v) => Number(v).toFixed(4);
function node(parent, x, y, cls) {
  const el = document.createElement("div");
  el.className = "node " + cls;
  el.style.left = `${x}px`; el.style.top = `${y}px`;
  const cv = document.createElement("canvas");
  cv.className = "thumb"; cv.width = 10; cv.height = 10;
  el.appendChild(cv);
  parent.appendChild(el);
  return el;
}
function svgPath(svg, d, cls) {
  const p = document.createElementNS("http://www.w3.org/2000/svg", "path");
  p.setAttribute("d", d); p.setAttribute("class", cls);
  svg.appendChild(p);
  return p;
}
function drawFeatureThumb(canvas, f) {
  const n = 10, bytes = new Uint8Array(n * n);
  const fns = {x: (x) => x, y: (x, y) => y, xSquared: (x) => x * x, ySquared: (x, y) => y * y,
    xTimesY: (x, y) => x * y, sinX: (x) => Math.sin(x), sinY: (x, y) => Math.sin(y)};
  const scale = {x: 6, y: 6, xSquared: 36, ySquared: 36, xTimesY: 36, sinX: 1, sinY: 1}[f];
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) {
    const x = -6 + 12 * (c + 0.5) / n, y = 6 - 12 * (r + 0.5) / n;
    bytes[r * n + c] = Math.round((Math.max(-1, Math.min(1, fns[f](x, y) / scale)) + 1) * 127);
  }
  paint(canvas, bytes, n, false);
}
function updateNetwork(f) {
  const sizes = state.sizes, L = sizes.length;
  if (f.thumbs) {
    f.thumbs[0].forEach((t, k) => {
      const el = state.inputPos[k];
      if (el) paint(el.querySelector("canvas"), decode(t), 10, false);
    });
    const els = $("nodes").querySelectorAll(".node.hidden, .node.output");
    for (const el of els) {
      const l = Number(el.dataset.layer), j = Number(el.dataset.index);
      paint(el.querySelector("canvas"), decode(f.thumbs[l][j]), 10,
        l === L - 1 && state.view.discretize);
    }
  }
  for (let l = 0; l < L - 1; l++) {
    const {W, b, dead} = f.weights[l];
    for (let i = 0; i < sizes[l]; i++) {
      for (let j = 0; j < sizes[l + 1]; j++) {
        const p = document.getElementById(`link-${l}-${i}-${j}`);
        if (!p) continue;
        const w = W[i][j];
        p.setAttribute("stroke", css(w));
        p.setAttribute("stroke-width", String(Math.min(10, 1 + 9 * Math.abs(w) / 5)));
        p.classList.toggle("dead", !!dead[i][j]);
      }
    }
    for (const el of $("nodes").querySelectorAll(`.bias[data-layer="${l}"]`)) {
      el.style.background = css(b[Number(el.dataset.target)]);
    }
  }
}
async function neurons(layer, delta) {
  const l = state.config.layers.slice();
  l[layer] = Math.max(1, Math.min(MAX_NEURONS, l[layer] + delta));
  if (l[layer] !== state.config.layers[layer]) change({layers: l});
}

/* ---------- hover and weight editing ---------- */
function place(el, e) {
  const box = $("network-column").getBoundingClientRect();
  el.style.left = `${e.clientX - box.left + 12}px`;
  el.style.top = `${e.clientY - box.top + 12}px`;
}
function hover(e, text) {
  const hc = $("hovercard");
  $("hovercard-text").textContent = text + " (click to edit)";
  place(hc, e);
  hc.hidden = false;
}
function unhover() { $("hovercard").hidden = true; }
function editWeight(e, layer, source, target) {
  unhover();
  const ed = $("weight-editor");
  state.editing = {layer, source, target};
  const w = source < 0 ? state.weights[layer].b[target] : state.weights[layer].W[source][target];
  $("weight-editor-label").textContent = source < 0 ? "Bias" : "Weight";
  $("weight-input").value = Number(w).toFixed(4);
  place(ed, e);
  ed.hidden = false;
  $("weight-input").focus();
  $("weight-input").select();
}
function hideEditor() { $("weight-editor").hidden = true; state.editing = null; }
async function submitWeight(e) {
  if (e.key === "Escape") { hideEditor(); return; }
  if (e.key !== "Enter" || !state.editing) return;
  const value = Number($("weight-input").value);
  if (!Number.isFinite(value)) { setStatus("Enter a number."); return; }
  const {layer, source, target} = state.editing;
  try {
    const j = await api("/weight", {layer, source, target, value});
    hideEditor();
    setStatus("");
    applyFrame(j.frame);
  } catch (err) { /* the status line shows why */ }
}

/* ---------- output: points, loss chart, gradient norms ---------- */
function drawPoints() {
  if (!state.data) return;
  const cv = $("heatmap-points"), ctx = cv.getContext("2d");
  ctx.clearRect(0, 0, 300, 300);
  const sets = [[state.data.train, "#fff"]];
  if (state.view.showTest) sets.push([state.data.test, "#000"]);
  for (const [pts, stroke] of sets) {
    for (const [x, y, l] of pts) {
      if (Math.abs(x) > 6 || Math.abs(y) > 6) continue;
      ctx.beginPath();
      ctx.arc((x + 6) * 25, (6 - y) * 25, 3, 0, 2 * Math.PI);
      ctx.fillStyle = css(l); ctx.fill();
      ctx.strokeStyle = stroke; ctx.lineWidth = 1; ctx.stroke();
    }
  }
  // axes ticks
  ctx.fillStyle = "#333"; ctx.font = "10px sans-serif";
  for (const t of [-6, -4, -2, 0, 2, 4, 6]) {
    ctx.fillText(String(t), Math.min(290, (t + 6) * 25 + 1), 298);
  }
}
function lineChart(cv, series, opts) {
  const ctx = cv.getContext("2d"), W = cv.width, H = cv.height;
  ctx.clearRect(0, 0, W, H);
  const n = Math.max(...series.map((s) => s.values.length));
  if (n < 1) return;
  let lo = Infinity, hi = -Infinity;
  for (const s of series) for (const v of s.values) {
    if (v === null || !Number.isFinite(v)) continue;
    const y = opts.log ? Math.log10(Math.max(v, 1e-12)) : v;
    lo = Math.min(lo, y); hi = Math.max(hi, y);
  }
  if (!Number.isFinite(lo)) return;
  if (!opts.log) lo = 0;
  if (hi - lo < 1e-9) hi = lo + 1;
  for (const s of series) {
    ctx.strokeStyle = s.colour; ctx.lineWidth = s.width || 1.5;
    ctx.beginPath();
    let started = false;
    s.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) { started = false; return; }
      const y = opts.log ? Math.log10(Math.max(v, 1e-12)) : v;
      const px = n === 1 ? 0 : (i / (n - 1)) * (W - 2) + 1;
      const py = H - 2 - ((y - lo) / (hi - lo)) * (H - 14);
      if (started) ctx.lineTo(px, py); else { ctx.moveTo(px, py); started = true; }
    });
    ctx.stroke();
  }
  ctx.fillStyle = "#777"; ctx.font = "10px sans-serif";
  ctx.fillText(opts.log ? `1e${hi.toFixed(1)}` : hi.toFixed(3), 2, 10);
  if (opts.log) ctx.fillText(`1e${lo.toFixed(1)}`, 2, H - 4);
}
function drawLossChart() {
  lineChart($("linechart"), [
    {values: state.hist.train, colour: "#aaa"},
    {values: state.hist.test, colour: "#000"},
  ], {log: false});
}
function drawGradChart() {
  const g = state.hist.grad;
  if (!g.length) return;
  const L = g[g.length - 1].length;
  const series = [];
  for (let l = 0; l < L; l++) {
    series.push({values: g.map((row) => (row ? row[l] : null)), colour: LAYER_COLOURS[l % LAYER_COLOURS.length]});
  }
  lineChart($("gradchart"), series, {log: true});
  const legend = $("grad-legend");
  const want = series.map((s, l) => `<span style="color:${s.colour}">&#9632; ${l === L - 1 ? "output" : "layer " + (l + 1)}</span>`).join(" ");
  if (legend.innerHTML !== want) legend.innerHTML = want;
}

window.addEventListener("resize", () => { if (state.sizes) { buildNetwork(); updateNetwork(state.frame); } });
start().catch((e) => setStatus(`Cannot start: ${e.message}`));

// The drawing client: strokes in, the model's continuations streamed back over /ws (docs/protocol.md).
const canvas = document.getElementById("canvas");
const ctx = canvas.getContext("2d");
const ui = Object.fromEntries(["model", "model-search", "scratch", "guesses", "n", "temperature", "temperature-value", "pen-temperature",
  "pen-temperature-value", "alternatives", "again",
  "undo", "clear", "export-svg", "export-png", "with-ending", "status", "connection"]
  .map((id) => [id, document.getElementById(id)]));
const INK = "#222";
const COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22"];
const MIN_STEP = 2; // px: closer points add nothing but noise
const GUESS_EVERY = 350; // ms between guesses while the pen moves: a person's pace, a fraction of the rate limit
const SEARCH_FROM = 8;   // models from which the class list gets a search box

let strokes = [];        // the person's drawing: [[[x, y], ...], ...] in CSS pixels
let current = null;      // the stroke being drawn
let endings = [];        // per alternative: [[x, y, p], ...] as they arrive
let finished = [];       // per alternative: its done message, once it came
let request = 0;         // id of the latest completion
let guessed = "";        // "looks like: monkey; " when the server chose the model
let guessId = 0;         // id of the latest guess request ("g<n>")
let lastGuess = 0;       // when it was sent (performance.now())
let origin = [0, 0];     // where a drawing from scratch is placed: the server draws it from (0, 0)
let ws = null;
let retry = 500;         // reconnect backoff, ms
let idle = false;        // the server closed us for silence (4000): reconnect when the person draws
const IDLE_CLOSE = 4000;

function setConnection(text, ok) {
  ui.connection.textContent = text;
  ui.connection.dataset.ok = ok ? "yes" : "no";
}

function connect() {
  setConnection("connecting…", false);
  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  idle = false;
  ws.onopen = () => { retry = 500; setConnection("connected", true); };
  ws.onmessage = (event) => receive(JSON.parse(event.data));
  ws.onclose = (event) => {
    endings = []; finished = []; showAlternatives(); redraw();
    if (event.code === IDLE_CLOSE) {
      idle = true;
      setConnection("disconnected while idle; drawing reconnects", false);
      return;
    }
    setConnection(`disconnected; retrying in ${(retry / 1000).toFixed(1)} s`, false);
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 10000);
  };
}

function receive(msg) {
  if (msg.type === "hello") {
    const chosen = ui.model.value;
    const options = msg.models.map((m) => new Option(`${m.name} (${m.classes.join(", ")})`, m.name));
    // Several models: let the server guess which one the drawing is (the default).
    if (msg.models.length > 1) options.unshift(new Option("auto: guess from the drawing", "auto"));
    ui.model.replaceChildren(...options);
    if ([...ui.model.options].some((o) => o.value === chosen)) ui.model.value = chosen;
    ui["model-search"].hidden = msg.models.length < SEARCH_FROM;
    document.body.classList.toggle("guessing", msg.models.length > 1);
    ui.n.max = msg.limits.max_n;
    ui.status.textContent = "draw something; lift the pen and the model carries on";
  } else if (msg.type === "guess" && msg.id === `g${guessId}`) {
    showGuesses(msg);
  } else if (msg.type === "error" && msg.code === "busy" && msg.id === String(request)) {
    const asked = request;
    ui.status.textContent = `the server is busy; asking again in ${msg.retry_after} s`;
    setTimeout(() => { if (request === asked) ask(); }, msg.retry_after * 1000);
  } else if (msg.type === "error") {
    if (!String(msg.id).startsWith("g")) ui.status.textContent = `server error (${msg.code}): ${msg.message}`;
  } else if (msg.id !== String(request)) {
    return; // the tail of an older request
  } else if (msg.type === "guess") {
    guessed = `looks like: ${msg.model}; `;
    showGuesses(msg);
    ui.status.textContent = `${guessed}the model is drawing…`;
  } else if (msg.type === "points") {
    for (const { k, points } of msg.alternatives ?? [msg]) {
      endings[k].push(...points.map(([x, y, p]) => [x + origin[0], y + origin[1], p]));
    }
    redraw();
  } else if (msg.type === "done") {
    finished[msg.k] = msg;
    showAlternatives();
    if (finished.filter(Boolean).length === endings.length) {
      ui.status.textContent = `${guessed}done: ${finished.map((d) => `${d.points} points (${d.reason})`).join(", ")}`;
    }
  }
}

function ask() {
  if (idle && strokes.length) { connect(); ws.addEventListener("open", ask, { once: true }); return; }
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  if (!strokes.length) { drawFromScratch(); return; }
  send(ui.model.value, strokes, [0, 0], "the model is drawing…");
}

// An empty canvas: the chosen model (any one, for auto: there is no drawing to guess from) draws a
// whole sketch, ~255 px across, its first point near the top middle (the server draws from (0, 0)).
function drawFromScratch() {
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  stop();
  const models = [...ui.model.options].map((o) => o.value).filter((v) => v !== "auto");
  const model = ui.model.value === "auto" ? models[Math.floor(Math.random() * models.length)] : ui.model.value;
  send(model, [], [canvas.clientWidth / 2 - 100, canvas.clientHeight / 4], `${model} is drawing from scratch…`);
}

// One completion request with the page's settings; its points are drawn shifted by `at`.
function send(model, drawn, at, status) {
  request += 1;
  origin = at;
  const n = alternativesAsked();
  endings = Array.from({ length: n }, () => []);
  finished = [];
  guessed = "";
  ws.send(JSON.stringify({ type: "complete", id: String(request), model, strokes: drawn, n,
    temperature: Number(ui.temperature.value), pen_temperature: Number(ui["pen-temperature"].value) }));
  ui.status.textContent = status;
  showAlternatives();
}

// While the pen moves: what does the drawing look like? At most one guess per GUESS_EVERY ms.
function guessSoon(force) {
  const now = performance.now();
  if (!strokes.length || !ws || ws.readyState !== WebSocket.OPEN || ui.model.options.length < 2) return;
  if (!force && now - lastGuess < GUESS_EVERY) return;
  if (strokes.flat().length < 2) return;
  lastGuess = now;
  guessId += 1;
  ws.send(JSON.stringify({ type: "guess", id: `g${guessId}`, strokes }));
}

// "I see: bird 62% · duck 20% · …" as chips; a chip completes the drawing as that class.
function showGuesses(msg) {
  if (!strokes.length) return; // an answer about a drawing that has been cleared since
  const label = document.createElement("span");
  label.textContent = msg.sure ? "I see:" : "not sure; maybe:";
  label.className = msg.sure ? "" : "unsure";
  const chips = msg.top.map((t, i) => {
    const chip = document.createElement("button");
    chip.textContent = `${t.model} ${Math.round(t.p * 100)}%`;
    chip.className = i === 0 && msg.sure ? "top" : "";
    chip.dataset.model = t.model;
    chip.title = `finish the drawing as ${t.model}`;
    chip.onclick = () => { ui.model.value = t.model; ask(); };
    return chip;
  });
  ui.guesses.replaceChildren(label, ...chips);
  ui.guesses.hidden = false;
}

function filterModels() {
  const wanted = ui["model-search"].value.trim().toLowerCase().replaceAll(" ", "_");
  const shown = [...ui.model.options].filter((o) => {
    o.hidden = wanted !== "" && !o.value.toLowerCase().includes(wanted);
    return !o.hidden;
  });
  if (shown.length && ui.model.selectedOptions[0]?.hidden) ui.model.value = shown[0].value;
}

function stop() {
  if (endings.length && finished.filter(Boolean).length < endings.length && ws?.readyState === WebSocket.OPEN) {
    ws.send(JSON.stringify({ type: "cancel", id: String(request) }));
  }
  endings = []; finished = [];
  showAlternatives();
}

function alternativesAsked() {
  return Math.max(1, Math.min(Number(ui.n.value) || 1, Number(ui.n.max) || 9));
}

// One button per alternative, in its colour: click to keep that ending. With no endings yet the
// buttons wait, disabled: the header keeps its width, so the canvas does not move under the pen
// when the first ending arrives.
function showAlternatives() {
  const count = endings.length || alternativesAsked();
  ui.alternatives.replaceChildren(...Array.from({ length: count }, (_, k) => {
    const button = document.createElement("button");
    button.textContent = `keep ${k + 1}`;
    button.style.borderColor = COLORS[k % COLORS.length];
    button.disabled = !finished[k];
    button.setAttribute("aria-label", `keep ending ${k + 1}`);
    button.onclick = () => keep(k);
    return button;
  }));
  ui.again.disabled = !strokes.length;
  ui.scratch.disabled = strokes.length > 0;
}

function endingStrokes(k) {
  // The person lifted the pen before asking, so the model's first point is reached with the
  // pen up: it starts a stroke of its own, joined to nothing.
  const out = [];
  let run = [];
  for (const [x, y, p] of endings[k]) {
    run.push([x, y]);
    if (p) { out.push(run); run = []; }
  }
  if (run.length > 1) out.push(run);
  return out.filter((s) => s.length > 1);
}

function keep(k) {
  strokes.push(...endingStrokes(k));
  endings = []; finished = [];
  showAlternatives();
  redraw();
}

function resize() {
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(canvas.clientWidth * ratio);
  canvas.height = Math.round(canvas.clientHeight * ratio);
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0); // draw in CSS pixels on a sharp backing store
  redraw();
}

function line(points, color) {
  ctx.strokeStyle = color;
  ctx.beginPath();
  points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
  ctx.stroke();
}

function redraw() {
  ctx.save();
  ctx.setTransform(1, 0, 0, 1, 0, 0); // the whole backing store, whatever the layout did since
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.restore();
  ctx.lineWidth = 2.5; ctx.lineCap = ctx.lineJoin = "round";
  strokes.forEach((s) => line(s, INK));
  endings.forEach((_, k) => endingStrokes(k).forEach((s) => line(s, COLORS[k % COLORS.length])));
}

function toSvg(withEnding) {
  const paths = strokes.map((s) => [s, INK]);
  if (withEnding) endings.forEach((_, k) => endingStrokes(k).forEach((s) => paths.push([s, COLORS[k % COLORS.length]])));
  const d = (s) => s.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)} ${y.toFixed(1)}`).join(" ");
  const body = paths.map(([s, c]) => `<path d="${d(s)}" stroke="${c}" fill="none" stroke-width="2.5" stroke-linecap="round" stroke-linejoin="round"/>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${canvas.clientWidth}" height="${canvas.clientHeight}">`
    + `<rect width="100%" height="100%" fill="white"/>${body.join("")}</svg>`;
}

function download(name, href) {
  const a = document.createElement("a");
  a.href = href; a.download = name;
  document.body.append(a); a.click(); a.remove();
}

function exportSvg() {
  const url = URL.createObjectURL(new Blob([toSvg(ui["with-ending"].checked)], { type: "image/svg+xml" }));
  download("sketch.svg", url);
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function exportPng() {
  const image = new Image();
  image.onload = () => {
    const out = document.createElement("canvas");
    out.width = canvas.clientWidth; out.height = canvas.clientHeight;
    out.getContext("2d").drawImage(image, 0, 0);
    download("sketch.png", out.toDataURL("image/png"));
  };
  image.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(toSvg(ui["with-ending"].checked));
}

function undo() { stop(); strokes.pop(); redraw(); showAlternatives(); }
function clear() { stop(); strokes = []; guessId += 1; ui.guesses.hidden = true; redraw(); showAlternatives(); }

canvas.addEventListener("pointerdown", (e) => {
  stop(); // drawing again: the old ending is no longer wanted
  canvas.setPointerCapture(e.pointerId);
  current = [[e.offsetX, e.offsetY]];
  strokes.push(current);
});
canvas.addEventListener("pointermove", (e) => {
  if (!current) return;
  const [x, y] = current.at(-1);
  if (Math.hypot(e.offsetX - x, e.offsetY - y) < MIN_STEP) return;
  current.push([e.offsetX, e.offsetY]);
  redraw();
  guessSoon(false);
});
canvas.addEventListener("pointerup", () => {
  if (!current) return;
  current = null;
  redraw();
  guessSoon(true);
  if (strokes.flat().length >= 3) ask();
});
ui.again.onclick = ask;
ui.scratch.onclick = drawFromScratch;
ui["model-search"].oninput = filterModels;
ui.n.oninput = () => { if (!endings.length) showAlternatives(); };
ui.undo.onclick = undo;
ui.clear.onclick = clear;
ui["export-svg"].onclick = exportSvg;
ui["export-png"].onclick = exportPng;
ui.temperature.oninput = () => { ui["temperature-value"].textContent = ui.temperature.value; };
ui["pen-temperature"].oninput = () => { ui["pen-temperature-value"].textContent = ui["pen-temperature"].value; };
document.addEventListener("keydown", (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key === "z") { e.preventDefault(); undo(); }
  else if (e.key === "Escape") clear();
});
// The canvas's box changes with the window and with the header wrapping onto more lines.
new ResizeObserver(resize).observe(canvas);
resize();
showAlternatives();
connect();

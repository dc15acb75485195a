// The drawing client: strokes in, the model's continuations streamed back over /ws (docs/protocol.md).
const canvas = document.getElementById("canvas");
const ctx = canvas.getContext("2d");
const ui = Object.fromEntries(["model", "n", "temperature", "keep", "again", "clear", "status"]
  .map((id) => [id, document.getElementById(id)]));
const COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22"];
const MIN_STEP = 2; // px: closer points add nothing but noise

let strokes = [];        // the person's drawing: [[[x, y], ...], ...] in CSS pixels
let current = null;      // the stroke being drawn
let endings = [];        // per alternative: [[x, y, p], ...] as they arrive
let request = 0;         // id of the latest completion
let ws;

function connect() {
  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.onmessage = (event) => receive(JSON.parse(event.data));
  ws.onclose = () => { ui.status.textContent = "disconnected; retrying…"; setTimeout(connect, 1000); };
}

function receive(msg) {
  if (msg.type === "hello") {
    ui.model.replaceChildren(...msg.models.map((m) => new Option(`${m.name} (${m.classes.join(", ")})`, m.name)));
    ui.n.max = msg.limits.max_n;
    ui.status.textContent = "draw something";
  } else if (msg.id !== String(request)) {
    return; // an older request's tail
  } else if (msg.type === "points") {
    endings[msg.k].push(...msg.points);
    redraw();
  } else if (msg.type === "done") {
    ui.status.textContent = `alternative ${msg.k + 1}: ${msg.points} points (${msg.reason})`;
    ui.keep.disabled = ui.again.disabled = false;
  } else if (msg.type === "error") {
    ui.status.textContent = `error: ${msg.message}`;
  }
}

function ask() {
  if (!strokes.length || ws.readyState !== WebSocket.OPEN) return;
  request += 1;
  const n = Math.max(1, Math.min(Number(ui.n.value) || 1, Number(ui.n.max) || 9));
  endings = Array.from({ length: n }, () => []);
  ws.send(JSON.stringify({ type: "complete", id: String(request), model: ui.model.value, strokes,
    n, temperature: Number(ui.temperature.value) }));
  ui.status.textContent = "the model is drawing…";
}

function stop() {
  if (endings.length) ws.send(JSON.stringify({ type: "cancel", id: String(request) }));
  endings = [];
  ui.keep.disabled = ui.again.disabled = true;
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
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.lineWidth = 2.5; ctx.lineCap = ctx.lineJoin = "round";
  strokes.forEach((s) => line(s, "#222"));
  endings.forEach((points, k) => {
    let start = strokes.at(-1).at(-1), run = [start];
    for (const [x, y, p] of points) {
      run.push([x, y]);
      if (p) { line(run, COLORS[k % COLORS.length]); run = []; }
    }
    line(run, COLORS[k % COLORS.length]);
  });
}

function keep(k) {
  let run = [];
  for (const [x, y, p] of endings[k]) {
    run.push([x, y]);
    if (p) { if (run.length > 1) strokes.push(run); run = []; }
  }
  if (run.length > 1) strokes.push(run);
  endings = [];
  ui.keep.disabled = ui.again.disabled = true;
  redraw();
}

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
});
canvas.addEventListener("pointerup", () => {
  if (!current) return;
  current = null;
  redraw();
  if (strokes.flat().length >= 3) ask();
});
ui.keep.onclick = () => keep(0);
ui.again.onclick = ask;
ui.clear.onclick = () => { stop(); strokes = []; redraw(); };
window.addEventListener("resize", resize);
resize();
connect();

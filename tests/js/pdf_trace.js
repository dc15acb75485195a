// The output distribution @magenta/sketch computes after each point of a drawing: feeds the
// strokes (JSON [[dx, dy, p1, p2, p3], ...] in its own units) one by one from the zero state and
// prints, per step, {pi, muX, muY, sigmaX, sigmaY, corr, pen} at temperature 1, as JSON.
// Usage: node pdf_trace.js MODEL.gen.json STROKES.json
const fs = require("fs");
const tf = require("@tensorflow/tfjs");
const { SketchRNN } = require("@magenta/sketch");

globalThis.fetch = async (path) => ({ json: async () => JSON.parse(fs.readFileSync(path, "utf8")) });

async function main() {
  const [path, strokesPath] = process.argv.slice(2);
  await tf.setBackend("cpu");
  const model = new SketchRNN(path);
  await model.initialize();
  const n = model.NMIXTURE;
  let state = model.zeroState();
  const trace = [];
  for (const stroke of [model.zeroInput(), ...JSON.parse(fs.readFileSync(strokesPath, "utf8"))]) {
    state = model.update(stroke, state);
    const pdf = model.getPDF(state, 1.0);
    // (its sigmaY view runs past the end of the mixture: keep the n values that are sigmaY)
    trace.push(Object.fromEntries(Object.entries(pdf).map(([k, v]) => [k, Array.from(v).slice(0, k === "pen" ? 3 : n)])));
  }
  process.stdout.write("\n" + JSON.stringify(trace) + "\n");
}

main();

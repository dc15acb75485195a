// Unconditional drawings from a .gen.json model with Magenta's own @magenta/sketch (tfjs on the
// CPU), as its demos sample: prints {"points": [...], "lifts": [...]} per drawing as JSON.
// Usage: node sample_stats.js MODEL.gen.json COUNT TEMPERATURE MAX_POINTS
const fs = require("fs");
const tf = require("@tensorflow/tfjs");
const { SketchRNN } = require("@magenta/sketch");

// The model loads with fetch(url); serve it from the file system instead of the network.
globalThis.fetch = async (path) => ({ json: async () => JSON.parse(fs.readFileSync(path, "utf8")) });

async function main() {
  const [path, count, temperature, maxPoints] = process.argv.slice(2);
  await tf.setBackend("cpu");
  const model = new SketchRNN(path);
  await model.initialize();
  const points = [], lifts = [];
  for (let i = 0; i < Number(count); i++) {
    let state = model.update(model.zeroInput(), model.zeroState());
    let n = 0, up = 0;
    while (n < Number(maxPoints)) {
      const stroke = model.sample(model.getPDF(state, Number(temperature)));
      if (stroke[4] === 1) break; // end of sketch
      n += 1;
      up += stroke[3];
      state = model.update(stroke, state);
    }
    points.push(n);
    lifts.push(up);
  }
  process.stdout.write("\n" + JSON.stringify({ points, lifts }) + "\n");
}

main();

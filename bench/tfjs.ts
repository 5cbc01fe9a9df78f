/**
 * TensorFlow.js models in Robustness Lab: how long the conversion to ONNX takes, and the clean
 * forward throughput of the converted demo model on onnxruntime beside the same model in
 * TensorFlow.js itself (pure-JS 'cpu' backend, the 'wasm' backend when
 * @tensorflow/tfjs-backend-wasm is installed, and tfjs-node where it installs and loads), same images, same batch, in one run.
 *   npm run bench:tfjs -- [--threads 2] [--batch 100] [--repeats 5] [--limit 1000]
 */
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import * as tf from '@tensorflow/tfjs';
import { loadDataset, preprocess } from '../src/core/data';
import { encodeModel } from '../src/core/onnx/proto';
import { createSession, runBatched } from '../src/core/runtime/session';
import { convertTfjs, loadTfjsModel } from '../src/core/tfjs';
import { readTfjsFiles } from '../src/core/tfjs/files';
import { DEMO, flag, median, ROOT } from './common';

const MODELS = {
  layers: path.join(ROOT, 'demo', 'tfjs', 'fashion-layers', 'model.json'),
  graph: path.join(ROOT, 'demo', 'tfjs', 'fashion-graph', 'model.json'),
};

function timeIt(repeats: number, fn: () => void): number {
  const ms: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    fn();
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

async function tfjsModel(kind: 'layers' | 'graph'): Promise<(x: tf.Tensor) => tf.Tensor> {
  const { json, weights } = readTfjsFiles(MODELS[kind]);
  void weights;
  const files = await import('node:fs');
  const dir = path.dirname(MODELS[kind]);
  const group = json.weightsManifest![0];
  const data = Buffer.concat(group.paths.map((p) => files.readFileSync(path.join(dir, p))));
  const artifacts: tf.io.ModelArtifacts = {
    modelTopology: json.modelTopology as tf.io.ModelArtifacts['modelTopology'],
    format: json.format,
    signature: json.signature as object,
    weightSpecs: group.weights as tf.io.WeightsManifestEntry[],
    weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.length) as ArrayBuffer,
  };
  if (kind === 'layers') {
    const m = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
    return (x) => m.predict(x) as tf.Tensor;
  }
  const g = await tf.loadGraphModel(tf.io.fromMemory(artifacts));
  return (x) => g.predict(x) as tf.Tensor;
}

async function tfjsRate(
  predict: (x: tf.Tensor) => tf.Tensor,
  x: Float32Array,
  count: number,
  batch: number,
  repeats: number,
): Promise<{ rate: number; probs: Float32Array }> {
  const run = () => {
    const out = new Float32Array(count * 10);
    for (let s = 0; s < count; s += batch) {
      const n = Math.min(batch, count - s);
      tf.tidy(() => out.set(predict(tf.tensor4d(x.subarray(s * 784, (s + n) * 784), [n, 28, 28, 1])).dataSync() as Float32Array, s * 10));
    }
    return out;
  };
  const probs = run(); // warm-up
  const rates: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    run();
    rates.push(count / ((performance.now() - t0) / 1000));
  }
  return { rate: median(rates), probs };
}

function softmaxRows(z: Float32Array, classes: number): Float32Array {
  const p = new Float32Array(z.length);
  for (let i = 0; i < z.length; i += classes) {
    const row = z.subarray(i, i + classes);
    const m = Math.max(...row);
    let s = 0;
    for (let c = 0; c < classes; c++) s += p[i + c] = Math.exp(row[c] - m);
    for (let c = 0; c < classes; c++) p[i + c] /= s;
  }
  return p;
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
const fmt = (r: number) => Math.round(r).toLocaleString('en-US');

async function main() {
  const threads = flag('threads', 2),
    batch = flag('batch', 100),
    repeats = flag('repeats', 5),
    limit = flag('limit', 1000);
  tf.env().set('PROD', true);
  const raw = await loadDataset({ path: DEMO.images, labelsPath: DEMO.labels, limit });
  const x = preprocess(raw, { layout: 'NHWC', channels: 1, height: 28, width: 28 });
  console.log(
    `TensorFlow.js demo models, ${raw.count} demo test images, batch ${batch}, ${threads} threads (onnxruntime ${ort.env.versions.common}, tfjs ${tf.version.tfjs})`,
  );

  for (const kind of ['layers', 'graph'] as const) {
    const files = readTfjsFiles(MODELS[kind]);
    const readMs = timeIt(repeats, () => readTfjsFiles(MODELS[kind]));
    const convertMs = timeIt(repeats, () => encodeModel(convertTfjs(files.json, files.weights, files.jsonPath)));
    const cachedMs = timeIt(repeats, () => loadTfjsModel(MODELS[kind]));
    const loaded = loadTfjsModel(MODELS[kind]);
    console.log(
      `\n${kind} model (${path.relative(ROOT, MODELS[kind])}): ${loaded.model.graph!.node!.length} ONNX nodes, ${(loaded.bytes.length / 1024).toFixed(0)} KiB`,
    );
    console.log(
      `  conversion: read + decode weights ${readMs.toFixed(1)} ms, convert + encode ${convertMs.toFixed(1)} ms; loadModel again (cached) ${cachedMs.toFixed(1)} ms (median of ${repeats})`,
    );

    const session = await createSession(loaded.bytes, { ep: 'cpu', threads });
    const input = { name: session.inputNames[0], data: x, count: raw.count, sampleDims: [28, 28, 1] };
    const output = session.outputNames[0];
    const logits = (await runBatched(session, input, output, batch)).data; // warm-up
    const rates: number[] = [];
    for (let r = 0; r < repeats; r++) {
      const t0 = performance.now();
      await runBatched(session, input, output, batch);
      rates.push(raw.count / ((performance.now() - t0) / 1000));
    }
    await session.release();
    const ours = median(rates);
    console.log(`  robustness-lab (onnxruntime, converted): ${fmt(ours)} images/s`);

    const probs = softmaxRows(logits, 10);
    for (const backend of ['cpu', 'wasm', 'tensorflow'] as const) {
      let wasmThreads = '?';
      if (backend === 'tensorflow') {
        // tfjs-node (libtensorflow), where it is installed and loads on this Node version.
        try {
          // eslint-disable-next-line @typescript-eslint/no-require-imports
          require('@tensorflow/tfjs-node');
          if (!(await tf.setBackend('tensorflow'))) throw new Error('setBackend failed');
        } catch (e) {
          console.log(`  TensorFlow.js node (tfjs-node): skipped (${(e as Error).message.split('\n')[0]})`);
          continue;
        }
      } else if (backend === 'wasm') {
        try {
          // eslint-disable-next-line @typescript-eslint/no-require-imports
          const wasm = require('@tensorflow/tfjs-backend-wasm') as { getThreadsCount?: () => number };
          if (!(await tf.setBackend('wasm'))) throw new Error('setBackend failed');
          await tf.ready();
          wasmThreads = String(wasm.getThreadsCount?.() ?? '?');
        } catch (e) {
          console.log(`  TensorFlow.js wasm: skipped (${(e as Error).message.split('\n')[0]}; npm i -D @tensorflow/tfjs-backend-wasm@4.22)`);
          continue;
        }
      } else {
        await tf.setBackend('cpu');
      }
      await tf.ready();
      const predict = await tfjsModel(kind);
      const { rate, probs: theirs } = await tfjsRate(predict, x, raw.count, batch, backend === 'cpu' ? Math.min(repeats, 3) : repeats);
      const threadsNote =
        backend === 'wasm'
          ? ` (${wasmThreads} thread${wasmThreads === '1' ? '' : 's'})`
          : backend === 'tensorflow'
            ? ' (tfjs-node, libtensorflow)'
            : ' (pure JavaScript, 1 thread)';
      console.log(
        `  TensorFlow.js ${backend}${threadsNote}: ${fmt(rate)} images/s; onnxruntime is ${(ours / rate).toFixed(1)}x; max |Δ probability| ${maxDiff(probs, theirs).toExponential(1)}`,
      );
    }
    await tf.setBackend('cpu');
  }
}

void main();

/**
 * The demo dAE fit: a 784-256-784 denoising autoencoder (sigmoid hidden layer) on the first 4,000
 * training images of demo/data, 20 epochs, batch 64, Adam 1e-3, Gaussian corruption σ 0.25 in units
 * of the data's RMS deviation — trained on onnxruntime by this project (the trainer behind fitDae,
 * one fused ONNX step per batch) beside the same training in plain numpy (hand-written gradients
 * and Adam) and in PyTorch (scripts/reference_dae.py), same images, same thread budget, in one run.
 * The sides run one after the other, `--rounds` times (this shared machine's speed drifts); each
 * side's figure is its median round.
 *   node --import tsx bench/train.ts [--threads 2] [--limit 4000] [--hidden 256] [--epochs 20] [--rounds 1] [--sides ours,numpy,torch] [--tfjs-epochs 1]
 * Every side times its whole fit: normalisation, initialisation, shuffling, noise, training and
 * the clean reconstruction error over all images after training (ours also before). `--tfjs-epochs N` also times N epochs of the TensorFlow.js
 * training the dAE used before (pure-JS backend here), extrapolated to the full fit.
 */
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import path from 'node:path';
import type * as TF from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { loadDataset, preprocess } from '../src/core/data';
import { normalise } from '../src/core/defenses/dae/fit';
import { Rng } from '../src/core/random';
import { fitDense, glorotUniform, permutation, type DenseLayer } from '../src/core/train';
import { flag, median, ROOT } from './common';

const TRAIN_IMAGES = path.join(ROOT, 'demo', 'data', 'train-images-idx3-ubyte.gz');

interface Side {
  seconds: number;
  cleanMse: number;
  loss: number[];
}

async function main() {
  const threads = flag('threads', 2),
    limit = flag('limit', 4000),
    hidden = flag('hidden', 256),
    epochs = flag('epochs', 20),
    rounds = flag('rounds', 1);
  const batch = 64,
    sigma = 0.25,
    lr = 1e-3;
  const raw = await loadDataset({ path: TRAIN_IMAGES, limit });
  const h = preprocess(raw, { layout: 'NCHW', channels: 1, height: 28, width: 28 });
  const n = raw.count,
    d = 784;

  const ours = async (): Promise<Side> => {
    const t0 = performance.now();
    const { u } = normalise(h, n, d);
    const init = new Rng(0).fork('init');
    const layers: DenseLayer[] = [
      { inputs: d, outputs: hidden, activation: 'sigmoid', w: glorotUniform([d, hidden], init.fork('encoder')), b: new Float32Array(hidden) },
      { inputs: hidden, outputs: d, activation: 'linear', w: glorotUniform([hidden, d], init.fork('decoder')), b: new Float32Array(d) },
    ];
    const fit = await fitDense({
      layers,
      loss: { kind: 'mse' },
      optimizer: { kind: 'adam', epsilon: 1e-7 },
      data: { x: u, n },
      epochs,
      batchSize: batch,
      learningRate: lr,
      rng: 0,
      corrupt: (x, _rows, noise) => {
        for (let i = 0; i < x.length; i++) x[i] += sigma * noise.normal();
      },
      session: { ep: 'cpu', threads },
      evaluate: true,
    });
    return { seconds: (performance.now() - t0) / 1000, cleanMse: fit.finalLoss!, loss: fit.history.loss };
  };

  const python = (impl: 'numpy' | 'torch'): Side | { skipped: string } => {
    const env = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
    const r = spawnSync(
      '/usr/bin/python3',
      [
        path.join(ROOT, 'scripts', 'reference_dae.py'),
        '--task',
        'bench',
        '--impl',
        impl,
        '--limit',
        String(limit),
        '--hidden',
        String(hidden),
        '--epochs',
        String(epochs),
        '--batch',
        String(batch),
        '--threads',
        String(threads),
        '--seed',
        '0',
      ],
      { cwd: ROOT, encoding: 'utf8', env, maxBuffer: 1 << 24 },
    );
    if (r.status !== 0) return { skipped: `${impl} reference failed: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}` };
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    versions[impl] = out.version;
    return { seconds: out.seconds, cleanMse: out.cleanMse, loss: out.lossHistory };
  };
  const versions: Record<string, string> = {};

  const results: Record<string, (Side | { skipped: string })[]> = { ours: [], numpy: [], torch: [] };
  const sides = new Set((process.argv.includes('--sides') ? process.argv[process.argv.indexOf('--sides') + 1] : 'ours,numpy,torch').split(','));
  for (const side of ['numpy', 'torch']) if (!sides.has(side)) results[side].push({ skipped: 'not asked for (--sides)' });
  await ours(); // warm-up: session creation paths, JIT
  for (let round = 0; round < rounds; round++) {
    results.ours.push(await ours());
    if (sides.has('numpy')) results.numpy.push(python('numpy'));
    if (sides.has('torch')) results.torch.push(python('torch'));
  }
  let tfjs: { seconds: number; epochs: number } | undefined;
  const tfjsEpochs = flag('tfjs-epochs', 0);
  if (tfjsEpochs > 0) tfjs = { seconds: await tfjsEpochsSeconds(h, n, d, hidden, batch, sigma, lr, tfjsEpochs), epochs: tfjsEpochs };

  const seconds = (side: string) => {
    const ok = results[side].filter((r): r is Side => 'seconds' in r);
    return ok.length ? median(ok.map((r) => r.seconds)) : undefined;
  };
  const last = (side: string) => results[side].filter((r): r is Side => 'seconds' in r).pop();
  const steps = epochs * Math.ceil(n / batch);
  console.log(
    `dAE fit ${d}-${hidden}-${d}, ${n} images, ${epochs} epochs, batch ${batch} (${steps} Adam steps), ${threads} threads budget, ${cpus().length} cores (${cpus()[0].model.trim()}), ${rounds} round${rounds > 1 ? 's' : ''}`,
  );
  const line = (label: string, side: string) => {
    const s = seconds(side);
    const l = last(side);
    if (s === undefined || !l) {
      console.log(`  ${label}: skipped (${(results[side][0] as { skipped: string }).skipped})`);
      return;
    }
    console.log(
      `  ${label}: ${s.toFixed(1)} s (${(steps / s).toFixed(0)} steps/s), loss ${l.loss[0].toFixed(3)} → ${l.loss[l.loss.length - 1].toFixed(3)}, clean MSE ${l.cleanMse.toFixed(3)} (units of s²)`,
    );
  };
  line(`robustness-lab (onnxruntime ${ort.env.versions.common}, fused ONNX training step)`, 'ours');
  line(`numpy ${versions.numpy ?? ''} (hand-written gradients and Adam)`, 'numpy');
  line(`PyTorch ${versions.torch ?? ''} (torch.optim.Adam)`, 'torch');
  if (tfjs)
    console.log(
      `  TensorFlow.js (the previous trainer, pure-JS backend): ${tfjs.seconds.toFixed(1)} s for ${tfjs.epochs} epoch${tfjs.epochs > 1 ? 's' : ''}, ≈ ${((tfjs.seconds * epochs) / tfjs.epochs).toFixed(0)} s for ${epochs}`,
    );
  const o = seconds('ours');
  for (const side of ['numpy', 'torch']) {
    const s = seconds(side);
    if (o && s) console.log(`  speed-up over ${side}: ${(s / o).toFixed(2)}x`);
  }
  if (o && tfjs) console.log(`  speed-up over TensorFlow.js: ${((tfjs.seconds * epochs) / tfjs.epochs / o).toFixed(1)}x (extrapolated)`);
}

/** The dAE's previous training loop (TensorFlow.js, Adam, Gaussian corruption), timed for `epochs` epochs. */
async function tfjsEpochsSeconds(
  h: Float32Array,
  n: number,
  d: number,
  hidden: number,
  batch: number,
  sigma: number,
  lr: number,
  epochs: number,
): Promise<number> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const tf = require('@tensorflow/tfjs') as typeof TF;
  tf.env().set('PROD', true);
  await tf.setBackend('cpu');
  const { u } = normalise(h, n, d);
  const t0 = performance.now();
  const init = new Rng(0).fork('init');
  const w1 = tf.variable(tf.tensor2d(glorotUniform([d, hidden], init.fork('encoder')), [d, hidden]));
  const b1 = tf.variable(tf.zeros([hidden]));
  const w2 = tf.variable(tf.tensor2d(glorotUniform([hidden, d], init.fork('decoder')), [hidden, d]));
  const b2 = tf.variable(tf.zeros([d]));
  const optimizer = tf.train.adam(lr);
  const noise = new Rng(0).fork('noise');
  const clean = new Float32Array(batch * d),
    noisy = new Float32Array(batch * d);
  for (let epoch = 0; epoch < epochs; epoch++) {
    const order = permutation(n, new Rng(0).fork(`shuffle/${epoch}`));
    for (let start = 0; start < n; start += batch) {
      const m = Math.min(batch, n - start);
      for (let r = 0; r < m; r++) clean.set(u.subarray(order[start + r] * d, (order[start + r] + 1) * d), r * d);
      for (let i = 0; i < m * d; i++) noisy[i] = clean[i] + sigma * noise.normal();
      const cost = tf.tidy(() => {
        const xc = tf.tensor2d(clean.subarray(0, m * d), [m, d]);
        const xn = tf.tensor2d(noisy.subarray(0, m * d), [m, d]);
        return optimizer.minimize(
          () => tf.mean(tf.square(tf.sub(tf.add(tf.matMul(tf.sigmoid(tf.add(tf.matMul(xn, w1), b1)), w2), b2), xc))) as TF.Scalar,
          true,
          [w1, b1, w2, b2],
        ) as TF.Scalar;
      });
      await cost.data();
      cost.dispose();
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  tf.dispose([w1, b1, w2, b2]);
  optimizer.dispose();
  return seconds;
}

void main();

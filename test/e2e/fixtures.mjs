// A RunResult with every optional section the results panel renders (a defense with dAE threshold
// and fooling tables, attacks under several threat models, example images), for checking the panel
// before the engine writes such results itself. Pixels are real demo test images.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';

const CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

function demoImages(workspace, count) {
  const images = gunzipSync(readFileSync(path.join(workspace, 'data', 't10k-images-idx3-ubyte.gz')));
  const labels = gunzipSync(readFileSync(path.join(workspace, 'data', 't10k-labels-idx1-ubyte.gz')));
  return Array.from({ length: count }, (_, i) => ({
    label: labels[8 + i],
    pixels: Array.from(images.subarray(16 + i * 784, 16 + (i + 1) * 784), (v) => v / 255),
  }));
}

const row = (threshold, acceptedAccuracy, rejectionRate) => ({
  threshold,
  acceptedAccuracy,
  rejectionRate,
  accuracyOverAll: acceptedAccuracy * (1 - rejectionRate),
  accepted: Math.round(200 * (1 - rejectionRate)),
  total: 200,
});
const summary = (threshold, foolingRate, averageSteps) => ({
  threshold,
  foolingRate,
  averageSteps,
  runs: Array.from({ length: 10 }, (_, target) => ({ target, seed: 0, success: target < foolingRate * 10, steps: averageSteps ?? 1000, finalConfidence: 0.5 })),
});

export function defendedRunResult(workspace) {
  const attack = (name, threat, eps, accuracy) => ({
    target: threat === 'whitebox' ? 'baseline' : 'defended',
    attack: name,
    threat,
    norm: 'linf',
    eps,
    accuracy,
    successRate: 1 - accuracy / 0.9,
    meanPerturbation: eps,
    maxPerturbation: eps,
    gradientEvaluations: name === 'square' ? 0 : 200,
    queries: name === 'square' ? 100000 : 0,
    seconds: 1.5,
    params: {},
  });
  const confusion = Array.from({ length: 10 }, (_, i) => Array.from({ length: 10 }, (_, j) => (i === j ? 18 : (i + j) % 7 === 0 ? 1 : 0)));
  const rng = (i) => Math.sin(i * 12.9898) * 43758.5453 - Math.floor(Math.sin(i * 12.9898) * 43758.5453);
  const examples = demoImages(workspace, 4).map((img, k) => ({
    index: k,
    label: img.label,
    cleanPrediction: img.label,
    attack: 'pgd',
    eps: 0.1,
    threat: k % 2 ? 'bpda' : 'whitebox',
    target: k % 2 ? 'defended' : 'baseline',
    adversarialPrediction: k === 3 ? img.label : (img.label + 2) % 10,
    shape: [1, 28, 28],
    clean: img.pixels,
    adversarial: img.pixels.map((v, i) => Math.min(1, Math.max(0, v + (rng(i + 784 * k) > 0.5 ? 0.1 : -0.1)))),
  }));
  return {
    schemaVersion: 1,
    tool: { name: 'robustness-lab', version: '0.1.0' },
    createdAt: '2026-11-20T10:00:00.000Z',
    model: {
      path: path.join(workspace, 'fashion-cnn.onnx'),
      sha256: '6d5bc095423bbd829626f01bf609d766b4ea2019a81a4924c421c48171ebb1b1',
      input: 'input',
      output: 'logits',
      inputShape: ['batch', 1, 28, 28],
      opset: 13,
    },
    dataset: {
      format: 'idx',
      path: path.join(workspace, 'data', 't10k-images-idx3-ubyte.gz'),
      labelsPath: path.join(workspace, 'data', 't10k-labels-idx1-ubyte.gz'),
      count: 200,
      sha256: '0'.repeat(64),
      sampleShape: [1, 28, 28],
      preprocessing: { scale: 1 / 255, layout: 'NCHW' },
      classNames: CLASSES,
    },
    seed: 0,
    runtime: { executionProvider: 'cpu', requested: 'auto', fallbackReason: 'CUDA provider not installed; running on the CPU.', threads: 2, batchSize: 100 },
    timings: { loadSeconds: 0.1, cleanSeconds: 0.05, totalSeconds: 42.5, cleanImagesPerSecond: 4000 },
    clean: { accuracy: 0.9, correct: 180, count: 200, confusion },
    attacks: [
      attack('pgd', 'whitebox', 0.05, 0.12),
      attack('pgd', 'whitebox', 0.1, 0.01),
      attack('pgd', 'bpda', 0.05, 0.41),
      attack('pgd', 'bpda', 0.1, 0.22),
      attack('square', 'gradient-free', 0.05, 0.63),
      attack('square', 'gradient-free', 0.1, 0.48),
    ],
    defense: {
      kind: 'dae',
      layer: '/features/features.5/MaxPool_output_0',
      placement: 'after-tail',
      scores: 'probabilities',
      params: { hidden: 256, sigma: 0.25, epochs: 20, alpha: 41.2, beta: 1, thresholds: [0, 0.9, 0.99] },
      reference: { path: path.join(workspace, 'data', 'train-images-idx3-ubyte.gz'), count: 4000, sha256: '1'.repeat(64) },
      fitSeconds: 12.3,
      cached: false,
      clean: { accuracy: 0.875, baselineAccuracy: 0.9, rejectionRate: 0.02, acceptedAccuracy: 0.89, confusion },
      thresholds: {
        baseline: [row(0, 0.9, 0), row(0.9, 0.95, 0.1), row(0.99, 0.98, 0.3)],
        defended: [row(0, 0.875, 0), row(0.9, 0.96, 0.12), row(0.99, 0.99, 0.35)],
      },
      threats: {
        transfer: 'undefended model',
        bpda: 'identity (removes an after-tail defense: equals transfer)',
        direct: 'adaptive: log Σ c·softmax',
        'gradient-free': 'none (forward passes only)',
      },
      worstCase: [
        { eps: 0.05, norm: 'linf', accuracy: 0.41, attack: 'pgd', threat: 'bpda', baselineAccuracy: 0.12, broken: false },
        { eps: 0.1, norm: 'linf', accuracy: 0.22, attack: 'pgd', threat: 'bpda', baselineAccuracy: 0.01, broken: false },
      ],
      verdict: 'holds',
    },
    fooling: {
      baseline: [summary(0.9, 1, 112), summary(0.99, 0.9, 240)],
      defended: [summary(0.9, 0.3, 610), summary(0.99, 0, null)],
      params: { targets: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], seeds: 1, maxSteps: 1000 },
    },
    examples,
  };
}

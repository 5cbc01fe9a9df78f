/**
 * Retrieval-augmented classification as a defense (Zhao, Li & Cho, SysML 2018).
 *
 * The private database is the reference set: activations h_i at T and one-hot labels y_i.
 *  - Retrieval (paper §2): the query h is randomly projected, h' = W h, W a seeded Gaussian matrix
 *    (`projectionDims` rows, entries N(0, 1/p); 0 = no projection, search on h itself). The N
 *    (`neighbours`; paper: 5 and 10) nearest database rows are searched for in that projected
 *    space, under `distance` ('l2' default, or 'cosine').
 *  - Attention: α_n = softmax_n(β_n) with β_n = s · hᵀ U h_n on the FULL vectors h, h_n (as in the
 *    paper; U = identity — a learned U is left out). The paper has no scale s; raw dot
 *    products of un-normalised activations are in the hundreds to thousands, which makes the
 *    softmax a hard arg-max of the dot product (favouring large-norm rows, not the nearest ones).
 *    `attentionScale`: 'inv-sqrt-d' (default, s = 1/√D as in scaled dot-product attention) or a
 *    number (1 = the paper's unscaled scores).
 *  - h̄ = Σ α_n h_n, ȳ = Σ α_n y_n.
 *  - Heads: 'tail' (before-tail): h̄, reshaped to T's shape, goes through the rest of the network;
 *    nothing is trained. 'paper' (after-tail, scores = logits): fully connected layers on [h̄; ȳ]
 *    (standardised with the training set's mean and std), trained with @tensorflow/tfjs on the
 *    reference set, each sample retrieving from the database without itself (leave-one-out).
 *
 * The ONNX defense graph searches EXACTLY (MatMul + TopK in the projected space) so that it exports
 * and differentiates (the indices are piecewise constant; the gradient flows through h in the
 * attention scores, and through the paper head). LSH (./lsh.ts) is the fast path of the JS search
 * `retrievalSearch`, for large databases; it re-ranks its candidates exactly in the same space, so
 * with enough tables/probes it returns the same neighbours as the graph.
 */
import { UserError } from '../errors';
import { GraphBuilder, makeModel } from '../onnx/builder';
import { tensorValueInfo } from '../onnx/cut';
import type * as TF from '@tensorflow/tfjs';
import type { TensorProto } from '../onnx/proto';
import { floatTensor } from '../onnx/tensor-proto';
import { Rng } from '../random';
import type { ReferenceActivations } from './activations';
import { addKnnSearch, knnSearch, pairDistance, type Distance } from './knn';
import { LshIndex, type LshOptions } from './lsh';
import { loadTf } from './tf';
import { DEFENSE_IO, type DefenseStage } from './types';

export interface PaperHeadTraining {
  /** Hidden layer widths (ReLU). Default [64]. */
  hidden?: number[];
  /** Default 20. */
  epochs?: number;
  /** Default 128. */
  batchSize?: number;
  /** Adam learning rate. Default 2e-3. */
  learningRate?: number;
  /** How the leave-one-out retrieval of the training features searches. Default 'exact'. */
  search?: 'exact' | 'lsh';
}

export interface RetrievalOptions {
  head: 'tail' | 'paper';
  /** N, retrieved neighbours. Default 10. */
  neighbours?: number;
  /** Dimension p of h' = W h; 0: search on h. Default 64 (capped at D). */
  projectionDims?: number;
  /** Search distance in the projected space. Default 'l2'. */
  distance?: Distance;
  /** Attention score scale s. Default 'inv-sqrt-d'. */
  attentionScale?: 'inv-sqrt-d' | number;
  /** Seed of W, the LSH hyperplanes, the head's initialisation and shuffling. Default 0. */
  seed?: number;
  /** JS LSH search parameters (recorded in params; the ONNX graph searches exactly). */
  lsh?: LshOptions;
  training?: PaperHeadTraining;
  /** Called after every training epoch of the paper head with the epoch's mean training loss. */
  onEpoch?: (epoch: number, loss: number) => void;
}

export const RETRIEVAL_DEFAULTS = { neighbours: 10, projectionDims: 64, distance: 'l2', attentionScale: 'inv-sqrt-d', seed: 0 } as const;
export const PAPER_HEAD_DEFAULTS = { hidden: [64], epochs: 20, batchSize: 128, learningRate: 2e-3, search: 'exact' } as const;

/** Names of internal tensors and initializers of the retrieval graph (stable). */
export const RETRIEVAL_TENSORS = {
  /** float [N, p]: h' (or h). */
  key: 'retrieval_key',
  /** int64 [N, neighbours]. */
  indices: 'retrieval_indices',
  /** float [N, neighbours]: the attention weights α. */
  alpha: 'retrieval_alpha',
  /** float [N, D]: h̄ (flat). */
  hbar: 'retrieval_hbar',
  /** float [N, C]: ȳ. */
  ybar: 'retrieval_ybar',
  database: 'retrieval_database',
  labels: 'retrieval_labels_onehot',
  projection: 'retrieval_projection_t',
} as const;

/** The JS side of the retrieval defense: database, projection and LSH index. */
export interface RetrievalIndex {
  n: number;
  /** D, values per activation. */
  size: number;
  dims: number[];
  numClasses: number;
  neighbours: number;
  distance: Distance;
  /** The attention scale s. */
  scale: number;
  database: Float32Array;
  labels: Int32Array;
  /** p (0: no projection). */
  projectionDims: number;
  /** W, [p, D] (undefined when p = 0). */
  projection?: Float32Array;
  /** The search space rows: database · Wᵀ ([n, p]), or the database itself. */
  keys: Float32Array;
  keyDims: number;
  lsh: LshIndex;
}

function resolveScale(scale: RetrievalOptions['attentionScale'], D: number): number {
  const s = scale ?? RETRIEVAL_DEFAULTS.attentionScale;
  if (s === 'inv-sqrt-d') return 1 / Math.sqrt(D);
  if (typeof s !== 'number' || !Number.isFinite(s) || s < 0) throw new UserError(`Retrieval attention scale must be 'inv-sqrt-d' or a non-negative number, got ${String(s)}.`);
  return s;
}

/** The retrieval database and search structures for a reference set (deterministic in the seed). */
export function buildRetrievalIndex(ref: ReferenceActivations, options: Omit<RetrievalOptions, 'head'> = {}): RetrievalIndex {
  const neighbours = options.neighbours ?? RETRIEVAL_DEFAULTS.neighbours;
  const distance = options.distance ?? RETRIEVAL_DEFAULTS.distance;
  const seed = options.seed ?? RETRIEVAL_DEFAULTS.seed;
  const D = ref.size;
  const p = Math.min(options.projectionDims ?? RETRIEVAL_DEFAULTS.projectionDims, D);
  if (!Number.isInteger(neighbours) || neighbours < 1 || neighbours >= ref.n) {
    throw new UserError(`Retrieval needs 1 ≤ N < ${ref.n} (the database size) neighbours; got ${neighbours}.`);
  }
  if (!Number.isInteger(p) || p < 0) throw new UserError(`Retrieval projection dimension must be a non-negative integer; got ${p}.`);
  if (distance !== 'cosine' && distance !== 'l2') throw new UserError(`Retrieval distance must be 'cosine' or 'l2', got '${String(distance)}'.`);
  let projection: Float32Array | undefined;
  let keys = ref.activations;
  if (p > 0) {
    const w = new Rng(seed).fork('retrieval-projection').normals(new Float32Array(p * D), 0, 1 / Math.sqrt(p));
    projection = w;
    keys = projectRows(ref.activations, ref.n, D, w, p);
  }
  const keyDims = p > 0 ? p : D;
  return {
    n: ref.n,
    size: D,
    dims: ref.dims,
    numClasses: ref.numClasses,
    neighbours,
    distance,
    scale: resolveScale(options.attentionScale, D),
    database: ref.activations,
    labels: ref.labels,
    projectionDims: p,
    projection,
    keys,
    keyDims,
    lsh: new LshIndex(keys, ref.n, keyDims, distance, options.lsh, seed),
  };
}

/** Rows · Wᵀ in float64, stored float32 (W is [p, D]). */
export function projectRows(x: ArrayLike<number>, n: number, D: number, w: Float32Array, p: number): Float32Array {
  const out = new Float32Array(n * p);
  for (let i = 0; i < n; i++) {
    const xo = i * D;
    for (let c = 0; c < p; c++) {
      let s = 0;
      const wo = c * D;
      for (let j = 0; j < D; j++) s += x[xo + j] * w[wo + j];
      out[i * p + c] = s;
    }
  }
  return out;
}

export interface SearchOptions {
  /** 'exact' (brute force) or 'lsh' (candidates from the LSH index, re-ranked exactly). Default 'lsh'. */
  method?: 'exact' | 'lsh';
  /** A database row to leave out for query q (leave-one-out), or −1. */
  exclude?: (q: number) => number;
  /** Overrides the index's probes. */
  probes?: number;
}

/**
 * The N nearest database rows of `count` activations h (flat [count, D]) in the search space.
 * [count, N] indices, nearest first. LSH queries with fewer than N candidates fall back to exact
 * search (reported in `fallbacks`).
 */
export function retrievalSearch(index: RetrievalIndex, h: ArrayLike<number>, count: number, options: SearchOptions = {}): { indices: Int32Array; fallbacks: number; meanCandidates: number } {
  const N = index.neighbours;
  const q = index.projection ? projectRows(h, count, index.size, index.projection, index.projectionDims) : h instanceof Float32Array ? h : Float32Array.from(h);
  const d = index.keyDims;
  if ((options.method ?? 'lsh') === 'exact') {
    return { indices: knnSearch(q, count, index.keys, index.n, d, N, index.distance, options.exclude).indices, fallbacks: 0, meanCandidates: index.n };
  }
  const indices = new Int32Array(count * N);
  let fallbacks = 0;
  let totalCandidates = 0;
  for (let a = 0; a < count; a++) {
    const skip = options.exclude ? options.exclude(a) : -1;
    const cand = index.lsh.candidates(q, a * d, options.probes);
    totalCandidates += cand.length;
    const usable = skip >= 0 && cand.includes(skip) ? cand.length - 1 : cand.length;
    if (usable < N) {
      fallbacks++;
      const one = knnSearch(q.subarray(a * d, (a + 1) * d), 1, index.keys, index.n, d, N, index.distance, skip >= 0 ? () => skip : undefined);
      indices.set(one.indices, a * N);
      continue;
    }
    // Exact re-ranking of the candidates (ties: lower index first, as in the graph).
    const scored: { i: number; dist: number }[] = [];
    for (const i of cand) if (i !== skip) scored.push({ i, dist: pairDistance(q, a * d, index.keys, i * d, d, index.distance) });
    scored.sort((x, y) => x.dist - y.dist || x.i - y.i);
    for (let m = 0; m < N; m++) indices[a * N + m] = scored[m].i;
  }
  return { indices, fallbacks, meanCandidates: totalCandidates / Math.max(count, 1) };
}

export interface Attention {
  /** [count, N] attention weights (each row sums to 1). */
  alpha: Float64Array;
  /** [count, D] h̄. */
  hbar: Float32Array;
  /** [count, C] ȳ. */
  ybar: Float32Array;
}

/** The attention stage in float64: α = softmax(s · h·h_n), h̄ = Σ α h_n, ȳ = Σ α y_n. */
export function retrievalAttend(index: RetrievalIndex, h: ArrayLike<number>, count: number, indices: Int32Array): Attention {
  const N = index.neighbours;
  const D = index.size;
  const C = index.numClasses;
  const alpha = new Float64Array(count * N);
  const hbar = new Float32Array(count * D);
  const ybar = new Float32Array(count * C);
  const beta = new Float64Array(N);
  const acc = new Float64Array(D);
  for (let a = 0; a < count; a++) {
    let max = -Infinity;
    for (let m = 0; m < N; m++) {
      const row = indices[a * N + m] * D;
      let s = 0;
      for (let j = 0; j < D; j++) s += h[a * D + j] * index.database[row + j];
      beta[m] = index.scale * s;
      if (beta[m] > max) max = beta[m];
    }
    let z = 0;
    for (let m = 0; m < N; m++) z += (beta[m] = Math.exp(beta[m] - max));
    acc.fill(0);
    for (let m = 0; m < N; m++) {
      const w = beta[m] / z;
      alpha[a * N + m] = w;
      const i = indices[a * N + m];
      const row = i * D;
      for (let j = 0; j < D; j++) acc[j] += w * index.database[row + j];
      ybar[a * C + index.labels[i]] += w;
    }
    for (let j = 0; j < D; j++) hbar[a * D + j] = acc[j];
  }
  return { alpha, hbar, ybar };
}

/** Fits the retrieval defense: the database, the exact-search graph and (paper head) the trained classifier. */
export async function fitRetrieval(ref: ReferenceActivations, options: RetrievalOptions): Promise<DefenseStage> {
  const head = options.head;
  if (head !== 'tail' && head !== 'paper') throw new UserError(`Retrieval head must be 'tail' or 'paper', got '${String(head)}'.`);
  const index = buildRetrievalIndex(ref, options);
  const seed = options.seed ?? RETRIEVAL_DEFAULTS.seed;
  const params: Record<string, unknown> = {
    head,
    neighbours: index.neighbours,
    projectionDims: index.projectionDims,
    distance: index.distance,
    search: 'exact',
    attentionScale: options.attentionScale ?? RETRIEVAL_DEFAULTS.attentionScale,
    attentionScaleValue: index.scale,
    attentionMatrix: 'identity',
    seed,
    databaseSize: index.n,
    activationDims: ref.dims,
    numClasses: ref.numClasses,
    lsh: { tables: index.lsh.tables, bits: index.lsh.bits, probes: index.lsh.probes },
  };
  const g = new GraphBuilder('retrieval/');
  const { hbar, ybar } = addRetrievalAttention(g, index);
  const activationInfo = tensorValueInfo(DEFENSE_IO.activation, ['N', ...ref.dims]);
  const init = retrievalInitializers(index);
  if (head === 'tail') {
    g.node('Reshape', [hbar, g.int64Const('shape', [-1, ...ref.dims])], {}, [DEFENSE_IO.activationOut]);
    const graph = g.graph('retrieval_tail', [activationInfo], [tensorValueInfo(DEFENSE_IO.activationOut, ['N', ...ref.dims])], init);
    return { kind: 'retrieval', layer: ref.layer, placement: 'before-tail', scores: 'logits', model: makeModel(graph, ref.opset), params };
  }
  const training: Required<PaperHeadTraining> = { ...PAPER_HEAD_DEFAULTS, hidden: [...PAPER_HEAD_DEFAULTS.hidden], ...options.training };
  const positiveInt = (v: number) => Number.isInteger(v) && v >= 1;
  if (!training.hidden.every(positiveInt) || !positiveInt(training.epochs) || !positiveInt(training.batchSize) || !(training.learningRate > 0) || !['exact', 'lsh'].includes(training.search)) {
    throw new UserError(`Invalid training options for the retrieval paper head: ${JSON.stringify(training)}.`, 'hidden: positive widths; epochs, batchSize: positive integers; learningRate > 0; search: exact or lsh.');
  }
  const trained = await trainPaperHead(index, training, seed, options.onEpoch);
  const features = g.op('Concat', [hbar, ybar], { axis: 1 });
  let x = g.op('Mul', [g.op('Sub', [features, g.floatConst('feature_mean', [trained.mean.length], trained.mean)]), g.floatConst('feature_inv_std', [trained.invStd.length], trained.invStd)]);
  trained.layers.forEach((layer, li) => {
    const y = g.op('Add', [g.op('MatMul', [x, g.floatConst(`dense${li}_w`, [layer.inputs, layer.outputs], layer.w)]), g.floatConst(`dense${li}_b`, [layer.outputs], layer.b)]);
    x = li < trained.layers.length - 1 ? g.op('Relu', [y]) : y;
  });
  g.node('Identity', [x], {}, [DEFENSE_IO.scores]);
  const graph = g.graph('retrieval_paper', [activationInfo, tensorValueInfo(DEFENSE_IO.logits, ['N', ref.numClasses])], [tensorValueInfo(DEFENSE_IO.scores, ['N', ref.numClasses])], init);
  params.training = { hidden: training.hidden, epochs: training.epochs, batchSize: training.batchSize, learningRate: training.learningRate, search: training.search, finalLoss: trained.loss, trainAccuracy: trained.accuracy, backend: trained.backend };
  return { kind: 'retrieval', layer: ref.layer, placement: 'after-tail', scores: 'logits', model: makeModel(graph, ref.opset), params };
}

function retrievalInitializers(index: RetrievalIndex): TensorProto[] {
  const onehot = new Float32Array(index.n * index.numClasses);
  for (let i = 0; i < index.n; i++) onehot[i * index.numClasses + index.labels[i]] = 1;
  const init = [floatTensor(RETRIEVAL_TENSORS.database, [index.n, index.size], index.database), floatTensor(RETRIEVAL_TENSORS.labels, [index.n, index.numClasses], onehot)];
  if (index.projection) {
    const p = index.projectionDims;
    const D = index.size;
    const wt = new Float32Array(D * p);
    for (let c = 0; c < p; c++) for (let j = 0; j < D; j++) wt[j * p + c] = index.projection[c * D + j];
    init.push(floatTensor(RETRIEVAL_TENSORS.projection, [D, p], wt));
  }
  return init;
}

/** Retrieval + attention in the graph: flat h → exact search on h' → α → h̄ [N, D] and ȳ [N, C]. */
function addRetrievalAttention(g: GraphBuilder, index: RetrievalIndex): { hbar: string; ybar: string } {
  const D = index.size;
  const C = index.numClasses;
  const N = index.neighbours;
  const flat = g.op('Flatten', [DEFENSE_IO.activation], { axis: 1 });
  if (index.projection) g.node('MatMul', [flat, RETRIEVAL_TENSORS.projection], {}, [RETRIEVAL_TENSORS.key]);
  else g.node('Identity', [flat], {}, [RETRIEVAL_TENSORS.key]);
  const { indices } = addKnnSearch(g, RETRIEVAL_TENSORS.key, index.keys, index.n, index.keyDims, N, index.distance, { indices: RETRIEVAL_TENSORS.indices });
  const hn = g.op('Gather', [RETRIEVAL_TENSORS.database, indices], { axis: 0 }); // [B, N, D]
  const q = g.op('Reshape', [flat, g.int64Const('shape', [-1, 1, D])]); // [B, 1, D]
  const beta = g.op('Mul', [g.op('MatMul', [q, g.op('Transpose', [hn], { perm: [0, 2, 1] })]), g.scalar(index.scale, 'attention_scale')]); // [B, 1, N]
  const alpha = g.op('Softmax', [beta], { axis: -1 });
  g.node('Reshape', [alpha, g.int64Const('shape', [-1, N])], {}, [RETRIEVAL_TENSORS.alpha]);
  g.node('Reshape', [g.op('MatMul', [alpha, hn]), g.int64Const('shape', [-1, D])], {}, [RETRIEVAL_TENSORS.hbar]);
  const yn = g.op('Gather', [RETRIEVAL_TENSORS.labels, indices], { axis: 0 }); // [B, N, C]
  g.node('Reshape', [g.op('MatMul', [alpha, yn]), g.int64Const('shape', [-1, C])], {}, [RETRIEVAL_TENSORS.ybar]);
  return { hbar: RETRIEVAL_TENSORS.hbar, ybar: RETRIEVAL_TENSORS.ybar };
}

interface DenseLayer {
  inputs: number;
  outputs: number;
  w: Float32Array;
  b: Float32Array;
}

interface TrainedHead {
  mean: Float32Array;
  invStd: Float32Array;
  layers: DenseLayer[];
  loss: number;
  accuracy: number;
  /** The tfjs backend that trained it. */
  backend: string;
}

/** Leave-one-out [h̄; ȳ] features of the whole database. */
export function leaveOneOutFeatures(index: RetrievalIndex, method: 'exact' | 'lsh'): Float32Array {
  const { indices } = retrievalSearch(index, index.database, index.n, { method, exclude: (q) => q });
  const { hbar, ybar } = retrievalAttend(index, index.database, index.n, indices);
  const D = index.size;
  const C = index.numClasses;
  const F = D + C;
  const features = new Float32Array(index.n * F);
  for (let i = 0; i < index.n; i++) {
    features.set(hbar.subarray(i * D, (i + 1) * D), i * F);
    features.set(ybar.subarray(i * C, (i + 1) * C), i * F + D);
  }
  return features;
}

async function trainPaperHead(index: RetrievalIndex, training: Required<PaperHeadTraining>, seed: number, onEpoch?: RetrievalOptions['onEpoch']): Promise<TrainedHead> {
  // tfjs-node when installed, else the pure-JS 'cpu' backend (./tf.ts, shared with the dAE).
  const { tf, backend } = await loadTf();
  const n = index.n;
  const C = index.numClasses;
  const raw = leaveOneOutFeatures(index, training.search);
  const F = raw.length / n;
  // Standardisation.
  const mean = new Float64Array(F);
  const sq = new Float64Array(F);
  for (let i = 0; i < n; i++) for (let j = 0; j < F; j++) mean[j] += raw[i * F + j];
  for (let j = 0; j < F; j++) mean[j] /= n;
  for (let i = 0; i < n; i++) for (let j = 0; j < F; j++) sq[j] += (raw[i * F + j] - mean[j]) ** 2;
  const invStd = Float32Array.from(sq, (s) => {
    const sd = Math.sqrt(s / n);
    return sd > 1e-6 ? 1 / sd : 1;
  });
  const x = new Float32Array(n * F);
  for (let i = 0; i < n; i++) for (let j = 0; j < F; j++) x[i * F + j] = (raw[i * F + j] - mean[j]) * invStd[j];
  const y = new Float32Array(n * C);
  for (let i = 0; i < n; i++) y[i * C + index.labels[i]] = 1;

  // Weights: He-uniform from the seed, biases 0.
  const rng = new Rng(seed).fork('retrieval-paper-head');
  const widths = [F, ...training.hidden, C];
  const vars = widths.slice(0, -1).map((fanIn, li) => {
    const fanOut = widths[li + 1];
    const limit = Math.sqrt(6 / fanIn);
    return {
      w: tf.variable(tf.tensor2d(rng.uniform(new Float32Array(fanIn * fanOut), -limit, limit), [fanIn, fanOut])),
      b: tf.variable(tf.zeros([fanOut])),
    };
  });
  const forward = (input: TF.Tensor2D) => {
    let h: TF.Tensor2D = input;
    vars.forEach((v, li) => {
      h = tf.add(tf.matMul(h, v.w), v.b) as TF.Tensor2D;
      if (li < vars.length - 1) h = tf.relu(h);
    });
    return h;
  };
  const optimizer = tf.train.adam(training.learningRate);
  const xs = tf.tensor2d(x, [n, F]);
  const ys = tf.tensor2d(y, [n, C]);
  const order = Int32Array.from({ length: n }, (_, i) => i);
  const shuffle = rng.fork('shuffle');
  let loss = NaN;
  let accuracy = NaN;
  try {
    for (let epoch = 0; epoch < training.epochs; epoch++) {
      for (let i = n - 1; i > 0; i--) {
        const j = shuffle.int(i + 1);
        [order[i], order[j]] = [order[j], order[i]];
      }
      let total = 0;
      for (let s = 0; s < n; s += training.batchSize) {
        const idx = tf.tensor1d(order.subarray(s, Math.min(n, s + training.batchSize)), 'int32');
        const bx = tf.gather(xs, idx);
        const by = tf.gather(ys, idx);
        const l = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(by, forward(bx as TF.Tensor2D)) as TF.Scalar, true);
        total += (await l!.data())[0] * idx.shape[0];
        tf.dispose([idx, bx, by, l!]);
      }
      loss = total / n;
      onEpoch?.(epoch, loss);
    }
    accuracy = tf.tidy(() => tf.mean(tf.cast(tf.equal(tf.argMax(forward(xs), 1), tf.argMax(ys, 1)), 'float32')).dataSync()[0]);
    const layers: DenseLayer[] = [];
    for (const v of vars) layers.push({ inputs: v.w.shape[0], outputs: v.w.shape[1], w: Float32Array.from(await v.w.data()), b: Float32Array.from(await v.b.data()) });
    return { mean: Float32Array.from(mean), invStd, layers, loss, accuracy, backend };
  } finally {
    tf.dispose([xs, ys, ...vars.flatMap((v) => [v.w, v.b])]);
    optimizer.dispose();
  }
}

/** The JS pipeline of the defense, up to h̄/ȳ: search (exact or LSH) then attention. */
export function retrievalForward(index: RetrievalIndex, h: ArrayLike<number>, count: number, options: SearchOptions = {}): Attention & { indices: Int32Array } {
  const { indices } = retrievalSearch(index, h, count, options);
  return { indices, ...retrievalAttend(index, h, count, indices) };
}

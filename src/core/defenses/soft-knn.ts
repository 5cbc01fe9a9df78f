/**
 * The adaptive attacks' surrogates for a nearest-neighbour defense (LESCI, retrieval): smooth
 * stand-ins for its search, over stored rows, in the space and with the distance the defense
 * searches in. Success is always judged on the real defended model; a surrogate only supplies the
 * direction.
 *
 * Soft nearest neighbours (`softKnnStage`): class scores
 *
 *   s_c(x) = log Σ_{i : y_i = c} exp(−dist(q(x), r_i) / τ)
 *
 * where q is the defense's own query (its PCA or random projection of the activation at T) and r_i,
 * y_i the rows and their labels: the defense's stored rows (the attacker knows its reference data)
 * or rows the attacker computed from its own labelled data. A gradient attack on s pulls the query
 * towards rows of a wrong class and away from rows of the true class: the representation-matching
 * attack that a reviewer runs first against a k-NN layer (Sitawarin & Wagner 2019 against Deep
 * k-NN; Tramèr et al. 2020). τ is the median squared distance from a row to its nearest other row,
 * so that exp(−dist/τ) is sharp near the rows and still has a gradient between them.
 *
 * Soft vote (`softVoteStage`, LESCI vote mode): the k-NN vote smoothed into shares
 * v_c = Σ_{i : y_i = c} softmax_i(−dist_i / τ_k), τ_k the median gap between a row's nearest and
 * k-th nearest other row (so that about k rows carry the weight), and the defense's decision
 * rule mirrored around its threshold t (the vote passes when v_c > t, else the model's own output
 * is used):
 *
 *   z_c = A·relu(v_c − t) + β·logits_c            ('threshold': both routes in one score)
 *   z_c = logits_c + log(v_c + ε)                 ('bypass': the second route)
 *
 * 'threshold' is linear in the vote share above t (no saturation while the vote still passes) and
 * hands over to the model's logits once no share exceeds t. 'bypass' pushes the true class's
 * share down, under the threshold, so that the model's own output is used, while attacking that
 * output at the same time.
 */
import { GraphBuilder, makeModel } from '../onnx/builder';
import { tensorValueInfo } from '../onnx/cut';
import { encodeModel, opsetVersion, type ModelProto, type NodeProto, type TensorProto } from '../onnx/proto';
import { createSession, runBatched } from '../runtime/session';
import type { ReferenceActivations } from './activations';
import { tensorFloat32 } from '../onnx/tensor-proto';
import { COSINE_EPS, cosineNorm } from './knn';
import { DEFENSE_IO, type DefenseStage } from './types';

/** Scores below exp(−CLAMP) carry no gradient (they would underflow float32 anyway). */
const CLAMP = 80;
/** Rows sampled to estimate τ. */
const TAU_ROWS = 512;
/** 'threshold' soft vote: weight A of a share above the threshold against the logits. */
const VOTE_WEIGHT = 30;
/** 'threshold' soft vote: the logits' weight β (a vote margin of 0.1 is worth 3 logit units). */
const LOGIT_WEIGHT = 1;
/** 'bypass' soft vote: ε in log(v + ε). */
const SHARE_FLOOR = 1e-6;

export interface SoftKnnSource {
  /** The stage whose search is imitated; its graph computes `query` from DEFENSE_IO.activation. */
  stage: DefenseStage;
  /** The tensor of the stage's graph that is searched for (LESCI's reduced activation, retrieval's key). */
  query: string;
  /** The rows' labels: of the stage's stored rows (knn_reference_t's columns), or of `rows`. */
  labels: ArrayLike<number>;
  numClasses: number;
  distance: 'cosine' | 'l2';
  /**
   * Rows the attacker computed itself (n × d, in the query space, not normalised) instead of the
   * defense's stored rows: the attacker that does not know the private reference data.
   */
  rows?: { values: Float32Array; n: number; d: number };
}

/** The nodes of `graph` needed to compute `target` (in graph order). */
function closure(nodes: readonly NodeProto[], target: string): NodeProto[] {
  const producer = new Map<string, NodeProto>();
  for (const n of nodes) for (const o of n.output ?? []) producer.set(o, n);
  const needed = new Set<NodeProto>();
  const stack = [target];
  while (stack.length) {
    const t = stack.pop()!;
    const n = producer.get(t);
    if (!n || needed.has(n)) continue;
    needed.add(n);
    stack.push(...(n.input ?? []));
  }
  return nodes.filter((n) => needed.has(n));
}

/** The initializer a GraphBuilder named after `hint` (it appends a counter: knn_reference_t_3). */
function initializerEndingWith(inits: readonly TensorProto[], hint: string): TensorProto | undefined {
  const pattern = new RegExp(`(^|/)${hint}(_\\d+)?$`);
  return inits.find((t) => pattern.test(t.name ?? ''));
}

/** The part of the stage's graph that computes `query` from the activation, and the initializers it reads. */
function queryPart(stage: DefenseStage, query: string): { nodes: NodeProto[]; inits: TensorProto[] } {
  const graph = stage.model.graph!;
  const nodes = closure(graph.node ?? [], query);
  if (!nodes.length) throw new Error(`the ${stage.kind} graph does not compute ${query}`);
  const used = new Set(nodes.flatMap((q) => q.input ?? []));
  return { nodes, inits: (graph.initializer ?? []).filter((t) => used.has(t.name ?? '')) };
}

/**
 * A model from the activation at T to the stage's query (its PCA or projection): what an attacker
 * runs on its own data to get rows in the space the defense searches.
 */
export function queryModel(stage: DefenseStage, query: string): ModelProto {
  const { nodes, inits } = queryPart(stage, query);
  const activation = stage.model.graph!.input!.find((v) => v.name === DEFENSE_IO.activation)!;
  return makeModel({ name: `${stage.kind}_query`, node: nodes, input: [activation], output: [{ name: query }], initializer: inits }, opsetVersion(stage.model));
}

/** Rows batch through the query model. */
const QUERY_BATCH = 256;

/**
 * The attacker's own rows: its labelled activations at T mapped by the defense's query (the part
 * of the defense it knows: the projection, not the reference data).
 */
export async function attackerRows(
  stage: DefenseStage,
  query: string,
  own: ReferenceActivations,
  threads: number,
): Promise<{ rows: NonNullable<SoftKnnSource['rows']>; labels: Int32Array }> {
  const session = await createSession(encodeModel(queryModel(stage, query)), { ep: 'cpu', threads, label: `the ${stage.kind} query` });
  try {
    const out = await runBatched(session, { name: DEFENSE_IO.activation, data: own.activations, count: own.n, sampleDims: own.dims }, query, QUERY_BATCH);
    return { rows: { values: out.data, n: own.n, d: out.sampleSize }, labels: own.labels };
  } finally {
    await session.release();
  }
}

/** Search rows as the surrogate graphs use them: transposed [d, n], normalised for cosine, with squared norms for l2. */
interface SearchRows {
  rowsT: Float32Array;
  d: number;
  n: number;
  /** The stored initializers when the rows are the stage's own (reused, not copied). */
  stored?: { rowsT: TensorProto; sq?: TensorProto };
}

function searchRows(src: SoftKnnSource): SearchRows {
  if (src.rows) {
    const { values, n, d } = src.rows;
    const rowsT = new Float32Array(d * n);
    for (let i = 0; i < n; i++) {
      let sq = 0;
      for (let k = 0; k < d; k++) sq += values[i * d + k] ** 2;
      const scale = src.distance === 'cosine' ? 1 / cosineNorm(sq) : 1;
      for (let k = 0; k < d; k++) rowsT[k * n + i] = values[i * d + k] * scale;
    }
    if (src.labels.length !== n) throw new Error(`${src.labels.length} labels for ${n} rows`);
    return { rowsT, d, n };
  }
  const inits = src.stage.model.graph!.initializer ?? [];
  const rowsT = initializerEndingWith(inits, 'knn_reference_t');
  if (!rowsT) throw new Error(`the ${src.stage.kind} graph has no stored search rows (knn_reference_t)`);
  const [d, n] = (rowsT.dims ?? []).map(Number);
  if (src.labels.length !== n) throw new Error(`${src.labels.length} labels for ${n} stored rows`);
  const sq = src.distance === 'l2' ? initializerEndingWith(inits, 'knn_reference_sq') : undefined;
  if (src.distance === 'l2' && !sq) throw new Error(`the ${src.stage.kind} graph has no stored row norms (knn_reference_sq)`);
  return { rowsT: tensorFloat32(rowsT), d, n, stored: { rowsT, sq } };
}

/** Adds the squared distances [N, n] from the query to the rows (2 − 2cos for cosine); returns them and the initializers used. */
function addDistances(g: GraphBuilder, src: SoftKnnSource, rows: SearchRows): { dist: string; inits: TensorProto[] } {
  const axes1 = g.int64Const('axes', [1]);
  const rowsName = rows.stored?.rowsT.name ?? g.floatConst('rows_t', [rows.d, rows.n], rows.rowsT);
  const inits = rows.stored ? [rows.stored.rowsT] : [];
  let q = src.query;
  if (src.distance === 'cosine') {
    const norm = g.op('Sqrt', [g.op('Add', [g.op('ReduceSum', [g.op('Mul', [q, q]), axes1], { keepdims: 1 }), g.scalar(COSINE_EPS * COSINE_EPS, 'eps')])]);
    q = g.op('Div', [q, norm]);
    return { dist: g.op('Sub', [g.scalar(2, 'two'), g.op('Mul', [g.op('MatMul', [q, rowsName]), g.scalar(2, 'two_b')])]), inits };
  }
  let sqName: string;
  if (rows.stored) {
    sqName = rows.stored.sq!.name!;
    inits.push(rows.stored.sq!);
  } else {
    const sq = new Float32Array(rows.n);
    for (let k = 0; k < rows.d; k++) for (let i = 0; i < rows.n; i++) sq[i] += rows.rowsT[k * rows.n + i] ** 2;
    sqName = g.floatConst('rows_sq', [rows.n], sq);
  }
  const qsq = g.op('ReduceSum', [g.op('Mul', [q, q]), axes1], { keepdims: 1 });
  return { dist: g.op('Add', [g.op('Sub', [qsq, g.op('Mul', [g.op('MatMul', [q, rowsName]), g.scalar(2, 'two')])]), sqName]), inits };
}

function oneHotRows(labels: ArrayLike<number>, n: number, classes: number): Float32Array {
  const onehot = new Float32Array(n * classes);
  for (let i = 0; i < n; i++) onehot[i * classes + Number(labels[i])] = 1;
  return onehot;
}

/** The surrogate stage: the query part of the defense's graph, then `body` from the distances to DEFENSE_IO.scores. */
function surrogateStage(
  src: SoftKnnSource,
  rows: SearchRows,
  name: string,
  params: Record<string, unknown>,
  body: (g: GraphBuilder, dist: string) => void,
): DefenseStage {
  const { nodes, inits } = queryPart(src.stage, src.query);
  const g = new GraphBuilder(`${name}/`);
  const distances = addDistances(g, src, rows);
  body(g, distances.dist);
  const activation = src.stage.model.graph!.input!.find((v) => v.name === DEFENSE_IO.activation)!;
  const out = g.graph(
    name,
    [activation, tensorValueInfo(DEFENSE_IO.logits, ['N', src.numClasses])],
    [tensorValueInfo(DEFENSE_IO.scores, ['N', src.numClasses])],
    [...distances.inits, ...inits],
  );
  out.node = [...nodes, ...(out.node ?? [])];
  return {
    kind: src.stage.kind,
    layer: src.stage.layer,
    placement: 'after-tail',
    scores: 'logits',
    model: makeModel(out, opsetVersion(src.stage.model)),
    params: { ...params, rows: rows.n, rowSource: src.rows ? "the attacker's own labelled data" : "the defense's stored rows", distance: src.distance },
  };
}

/** An after-tail stage whose scores are the soft nearest-neighbour scores s_c (logits). */
export function softKnnStage(src: SoftKnnSource): DefenseStage {
  const rows = searchRows(src);
  const tau = neighbourGaps(rows, 1).nearest;
  return surrogateStage(src, rows, 'softknn', { surrogate: 'soft nearest neighbours', temperature: tau }, (g, dist) => {
    const scaled = g.op('Max', [g.op('Mul', [dist, g.scalar(-1 / tau, 'inv_tau')]), g.scalar(-CLAMP, 'clamp')]);
    const mass = g.op('MatMul', [g.op('Exp', [scaled]), g.floatConst('onehot', [rows.n, src.numClasses], oneHotRows(src.labels, rows.n, src.numClasses))]);
    g.node('Log', [g.op('Add', [mass, g.scalar(1e-35, 'floor')])], {}, [DEFENSE_IO.scores]);
  });
}

export type SoftVoteRoute = 'threshold' | 'bypass';

/** An after-tail stage whose scores follow the k-NN vote smoothed into shares (see the file comment). */
export function softVoteStage(src: SoftKnnSource & { k: number; tProjection: number; route: SoftVoteRoute }): DefenseStage {
  const rows = searchRows(src);
  const gaps = neighbourGaps(rows, src.k);
  // About k rows share the weight: the temperature is the typical gap from the nearest to the k-th.
  const tau = Math.max(gaps.kth - gaps.nearest, gaps.nearest);
  const params = { surrogate: `soft vote (${src.route})`, temperature: tau, k: src.k, tProjection: src.tProjection };
  return surrogateStage(src, rows, `softvote_${src.route}`, params, (g, dist) => {
    const weights = g.op('Softmax', [g.op('Mul', [dist, g.scalar(-1 / tau, 'inv_tau')])], { axis: 1 });
    const shares = g.op('MatMul', [weights, g.floatConst('onehot', [rows.n, src.numClasses], oneHotRows(src.labels, rows.n, src.numClasses))]);
    if (src.route === 'threshold') {
      const above = g.op('Relu', [g.op('Sub', [shares, g.scalar(src.tProjection, 't_projection')])]);
      g.node(
        'Add',
        [g.op('Mul', [above, g.scalar(VOTE_WEIGHT, 'vote_weight')]), g.op('Mul', [DEFENSE_IO.logits, g.scalar(LOGIT_WEIGHT, 'logit_weight')])],
        {},
        [DEFENSE_IO.scores],
      );
    } else {
      g.node('Add', [DEFENSE_IO.logits, g.op('Log', [g.op('Add', [shares, g.scalar(SHARE_FLOOR, 'share_floor')])])], {}, [DEFENSE_IO.scores]);
    }
  });
}

/**
 * Medians, over a sample of rows, of the squared distance to the nearest other row and to the k-th
 * nearest (at least 1e-6; duplicates do not set the scale). Cosine rows are stored normalised, so
 * ‖a − b‖² = 2 − 2 cos: the quantity the graphs use.
 */
export function neighbourGaps(rows: Pick<SearchRows, 'rowsT' | 'd' | 'n'>, k: number): { nearest: number; kth: number } {
  const { rowsT, d, n } = rows;
  const sampled = Math.min(n, TAU_ROWS);
  const step = n / sampled;
  const nearest: number[] = [];
  const kth: number[] = [];
  const dists = new Float64Array(n);
  for (let a = 0; a < sampled; a++) {
    const i = Math.floor(a * step);
    let m = 0;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      let s = 0;
      for (let c = 0; c < d; c++) {
        const diff = rowsT[c * n + i] - rowsT[c * n + j];
        s += diff * diff;
      }
      if (s > 0) dists[m++] = s;
    }
    if (m === 0) continue;
    const sorted = dists.subarray(0, m).sort();
    nearest.push(sorted[0]);
    kth.push(sorted[Math.min(k, m) - 1]);
  }
  const median = (v: number[]) => (v.length ? v.sort((x, y) => x - y)[Math.floor(v.length / 2)] : 1);
  return { nearest: Math.max(median(nearest), 1e-6), kth: Math.max(median(kth), 1e-6) };
}

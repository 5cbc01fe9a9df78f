/**
 * The adaptive attack's surrogate for a nearest-neighbour defense (LESCI, retrieval): a soft
 * nearest-neighbour classifier over the defense's own stored rows, in the space and with the
 * distance the defense searches in. Its class scores are
 *
 *   s_c(x) = log Σ_{i : y_i = c} exp(−dist(q(x), r_i) / τ)
 *
 * where q is the defense's own query (its PCA or random projection of the activation at T) and r_i,
 * y_i its stored rows and their labels. A gradient attack on s pulls the query towards stored rows
 * of a wrong class and away from rows of the true class: the representation-matching attack that a
 * reviewer runs first against a k-NN layer (Sitawarin & Wagner 2019 against Deep k-NN; Tramèr et al.
 * 2020). τ is the median squared distance from a stored row to its nearest other row, so that
 * exp(−dist/τ) is sharp near the rows and still has a gradient between them. The attack judges
 * success on the real defended model; the surrogate only supplies the direction.
 */
import { GraphBuilder, makeModel } from '../onnx/builder';
import { tensorValueInfo } from '../onnx/cut';
import { opsetVersion, type NodeProto, type TensorProto } from '../onnx/proto';
import { tensorFloat32 } from '../onnx/tensor-proto';
import { DEFENSE_IO, type DefenseStage } from './types';

/** Scores below exp(−CLAMP) carry no gradient (they would underflow float32 anyway). */
const CLAMP = 80;
/** Rows sampled to estimate τ. */
const TAU_ROWS = 512;

export interface SoftKnnSource {
  /** The stage whose search is imitated; its graph computes `query` from DEFENSE_IO.activation. */
  stage: DefenseStage;
  /** The tensor of the stage's graph that is searched for (LESCI's reduced activation, retrieval's key). */
  query: string;
  /** The stored rows' labels, one per row of the search (the order of knn_reference_t's columns). */
  labels: ArrayLike<number>;
  numClasses: number;
  distance: 'cosine' | 'l2';
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

/** An after-tail stage whose scores are the soft nearest-neighbour scores s_c (logits). */
export function softKnnStage(src: SoftKnnSource): DefenseStage {
  const graph = src.stage.model.graph!;
  const inits = graph.initializer ?? [];
  const rowsT = initializerEndingWith(inits, 'knn_reference_t');
  if (!rowsT) throw new Error(`the ${src.stage.kind} graph has no stored search rows (knn_reference_t)`);
  const [d, n] = (rowsT.dims ?? []).map(Number);
  if (src.labels.length !== n) throw new Error(`${src.labels.length} labels for ${n} stored rows`);
  const queryNodes = closure(graph.node ?? [], src.query);
  const used = new Set(queryNodes.flatMap((q) => q.input ?? []));
  const queryInits = inits.filter((t) => used.has(t.name ?? ''));

  const g = new GraphBuilder('softknn/');
  const axes1 = g.int64Const('axes', [1]);
  // Squared distances [N, n] in the defense's search space.
  let dist: string;
  let q = src.query;
  if (src.distance === 'cosine') {
    const norm = g.op('Sqrt', [g.op('Add', [g.op('ReduceSum', [g.op('Mul', [q, q]), axes1], { keepdims: 1 }), g.scalar(1e-12, 'eps')])]);
    q = g.op('Div', [q, norm]);
    dist = g.op('Sub', [g.scalar(2, 'two'), g.op('Mul', [g.op('MatMul', [q, rowsT.name!]), g.scalar(2, 'two_b')])]);
  } else {
    const sq = initializerEndingWith(inits, 'knn_reference_sq');
    if (!sq) throw new Error(`the ${src.stage.kind} graph has no stored row norms (knn_reference_sq)`);
    const qsq = g.op('ReduceSum', [g.op('Mul', [q, q]), axes1], { keepdims: 1 });
    dist = g.op('Add', [g.op('Sub', [qsq, g.op('Mul', [g.op('MatMul', [q, rowsT.name!]), g.scalar(2, 'two')])]), sq.name!]);
    queryInits.push(sq);
  }
  const tau = temperature(tensorFloat32(rowsT), d, n);
  const scaled = g.op('Max', [g.op('Mul', [dist, g.scalar(-1 / tau, 'inv_tau')]), g.scalar(-CLAMP, 'clamp')]);
  const onehot = new Float32Array(n * src.numClasses);
  for (let i = 0; i < n; i++) onehot[i * src.numClasses + Number(src.labels[i])] = 1;
  const mass = g.op('MatMul', [g.op('Exp', [scaled]), g.floatConst('onehot', [n, src.numClasses], onehot)]);
  g.node('Log', [g.op('Add', [mass, g.scalar(1e-35, 'floor')])], {}, [DEFENSE_IO.scores]);

  const activation = graph.input!.find((v) => v.name === DEFENSE_IO.activation)!;
  const out = g.graph(
    'soft_knn',
    [activation, tensorValueInfo(DEFENSE_IO.logits, ['N', src.numClasses])],
    [tensorValueInfo(DEFENSE_IO.scores, ['N', src.numClasses])],
    [rowsT, ...queryInits],
  );
  out.node = [...queryNodes, ...(out.node ?? [])];
  return {
    kind: src.stage.kind,
    layer: src.stage.layer,
    placement: 'after-tail',
    scores: 'logits',
    model: makeModel(out, opsetVersion(src.stage.model)),
    params: { surrogate: 'soft nearest neighbours', temperature: tau, rows: n, distance: src.distance },
  };
}

/** Median squared distance from a stored row to its nearest other row (a sample of rows), at least 1e-6. */
function temperature(rowsT: Float32Array, d: number, n: number): number {
  const rows = Math.min(n, TAU_ROWS);
  const step = n / rows;
  const nearest: number[] = [];
  for (let a = 0; a < rows; a++) {
    const i = Math.floor(a * step);
    let best = Infinity;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      let s = 0;
      for (let k = 0; k < d; k++) {
        const diff = rowsT[k * n + i] - rowsT[k * n + j];
        s += diff * diff;
      }
      if (s > 0) best = Math.min(best, s); // duplicates do not set the scale
    }
    if (Number.isFinite(best)) nearest.push(best);
  }
  nearest.sort((x, y) => x - y);
  const median = nearest.length ? nearest[Math.floor(nearest.length / 2)] : 1;
  // Cosine rows are stored normalised, so ‖a − b‖² = 2 − 2 cos: the quantity the graph uses.
  return Math.max(median, 1e-6);
}

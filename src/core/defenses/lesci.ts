/**
 * The LESCI layer (Denk & Pfisterer 2018): a vector-quantisation layer whose embedding space E is
 * initialised with the activations at T of correctly classified reference samples, compared
 * after PCA, with an optional k-NN majority vote.
 *
 * Fit:
 *  - keep only the reference samples the model classifies correctly (paper §3); E = their
 *    flattened activations at T, with their labels;
 *  - PCA to r = `pcaDims` dimensions fitted on E (r = 0: no PCA); distances are measured between
 *    reduced vectors (eq. 4), but the projection returns the row of the ORIGINAL E (§3.1).
 *
 * Modes (the fitted DefenseStage is an ONNX graph with the DEFENSE_IO names):
 *  - 'vq' (before-tail): activation → the nearest row of E (eq. 1–2), reshaped to T's shape; the
 *    tail runs on it. `k` does not matter (the nearest row is the 1-NN).
 *  - 'vote' (after-tail, scores = logits): the labels of the k nearest rows vote (§3.2). With o the
 *    count of the most frequent label, the vote passes when o/k > `tProjection` (strictly, as in the
 *    paper). Then the output is that label as logits: `voteLogit` (default 30) on the voted class and
 *    0 elsewhere, so that its softmax probability is 1 − (C − 1)·e^−30 ≈ 1 and it dominates any
 *    ranking; otherwise the model's own logits pass through. Outputs `defense_projected` (bool [N],
 *    whether the vote passed) and, with `reject`, `defense_accepted` = projected (the pipeline
 *    rejects instead of falling back; the scores are still the fallback logits there).
 *  - Majority ties (`tieBreak`): 'nearest' (default) — among the labels tied for the highest count,
 *    the label of the nearest neighbour carrying one of them; 'smallest' — the smallest label.
 *
 * Defaults from the authors' code: k = 10, tProjection = 0.5, PCA 64, cosine distance.
 *
 * Gradient: indices come from TopK and are piecewise constant, so vq outputs have zero input
 * gradient and vote outputs carry the logits' gradient only where the vote did not pass: the true
 * gradient of this defense, as the generic autodiff computes it.
 */
import { UserError } from '../errors';
import { GraphBuilder, makeModel } from '../onnx/builder';
import { tensorValueInfo } from '../onnx/cut';
import { DataType } from '../onnx/proto';
import { floatTensor, int64Tensor } from '../onnx/tensor-proto';
import { selectReference, type ReferenceActivations } from './activations';
import { addKnnSearch, type Distance } from './knn';
import { explainedVarianceRatio, fitPca, type PcaModel, type PcaOptions } from './pca';
import { DEFENSE_IO, type DefenseStage } from './types';

export interface LesciOptions {
  mode: 'vq' | 'vote';
  /** Neighbours in the vote. Default 10. */
  k?: number;
  /** The vote passes when o/k > tProjection. Default 0.5. */
  tProjection?: number;
  /** PCA dimension r; 0 turns PCA off. Default 64. */
  pcaDims?: number;
  /** Default 'cosine'. */
  distance?: Distance;
  /** Vote mode: output defense_accepted = projected (reject instead of fall back). Default false. */
  reject?: boolean;
  /** Vote mode: the logit of the voted class (others 0). Default 30. */
  voteLogit?: number;
  /** Vote mode: majority ties. Default 'nearest'. */
  tieBreak?: 'nearest' | 'smallest';
  /** PCA method options (method, seed, threads...). */
  pca?: PcaOptions;
}

export const LESCI_DEFAULTS = { k: 10, tProjection: 0.5, pcaDims: 64, distance: 'cosine', reject: false, voteLogit: 30, tieBreak: 'nearest' } as const;

/** Names of internal tensors of the LESCI graph (stable, for inspection and tests). */
export const LESCI_TENSORS = {
  /** float [N, r] (or [N, D] without PCA): the reduced query. */
  reduced: 'lesci_reduced',
  /** int64 [N, k]: indices of the nearest rows of E. */
  indices: 'lesci_indices',
  /** int64 [N, 1]: the voted label (vote mode). */
  votedLabel: 'lesci_voted_label',
  /** float [N, 1]: its count o (vote mode). */
  votes: 'lesci_votes',
  /** Initializers. */
  embedding: 'lesci_E',
  embeddingLabels: 'lesci_E_labels',
} as const;

/**
 * The smallest vote count o (1..k) with o/k > t, or k + 1 if none (the vote never passes).
 * Evaluated in JS float64 exactly as the paper's inequality.
 */
export function minimumVotes(k: number, t: number): number {
  for (let o = 1; o <= k; o++) if (o / k > t) return o;
  return k + 1;
}

export async function fitLesci(ref: ReferenceActivations, options: LesciOptions): Promise<DefenseStage> {
  const mode = options.mode;
  if (mode !== 'vq' && mode !== 'vote') throw new UserError(`LESCI mode must be 'vq' or 'vote', got '${String(mode)}'.`);
  const k = options.k ?? LESCI_DEFAULTS.k;
  const t = options.tProjection ?? LESCI_DEFAULTS.tProjection;
  const r = options.pcaDims ?? LESCI_DEFAULTS.pcaDims;
  const distance = options.distance ?? LESCI_DEFAULTS.distance;
  const reject = options.reject ?? LESCI_DEFAULTS.reject;
  const voteLogit = options.voteLogit ?? LESCI_DEFAULTS.voteLogit;
  const tieBreak = options.tieBreak ?? LESCI_DEFAULTS.tieBreak;
  if (!Number.isInteger(k) || k < 1) throw new UserError(`LESCI k must be a positive integer, got ${k}.`);
  if (!(t >= 0 && t < 1))
    throw new UserError(`LESCI t_projection must lie in [0, 1), got ${t}.`, 'The vote passes when (count of the majority label)/k > t_projection.');
  if (!Number.isInteger(r) || r < 0) throw new UserError(`LESCI PCA dimension must be a non-negative integer, got ${r}.`, 'Use 0 to turn PCA off.');
  if (distance !== 'cosine' && distance !== 'l2') throw new UserError(`LESCI distance must be 'cosine' or 'l2', got '${String(distance)}'.`);
  if (reject && mode !== 'vote') throw new UserError('LESCI rejection needs the vote mode.', "Use mode 'vote' with reject, or drop reject.");

  // E: correctly classified reference samples only.
  const keep: number[] = [];
  for (let i = 0; i < ref.n; i++) if (ref.predictions[i] === ref.labels[i]) keep.push(i);
  const kEff = mode === 'vq' ? 1 : k;
  if (keep.length < Math.max(kEff, 2)) {
    throw new UserError(
      `LESCI needs at least ${Math.max(kEff, 2)} correctly classified reference samples at '${ref.layer}'; found ${keep.length} of ${ref.n}.`,
      'Use more reference images.',
    );
  }
  const E = selectReference(ref, keep);
  const D = ref.size;
  const pca = await fitPca(E.activations, E.n, D, r, options.pca);
  const model = buildLesciModel({ E, pca, mode, k: kEff, distance, tProjection: t, reject, voteLogit, tieBreak });
  const params: Record<string, unknown> = {
    mode,
    k: mode === 'vote' ? k : 1,
    tProjection: mode === 'vote' ? t : null,
    minimumVotes: mode === 'vote' ? minimumVotes(k, t) : null,
    distance,
    reject,
    voteLogit: mode === 'vote' ? voteLogit : null,
    tieBreak: mode === 'vote' ? tieBreak : null,
    pcaDimsRequested: r,
    pcaDims: pca ? pca.dims : 0,
    pcaMethod: pca ? pca.method : null,
    pcaExplainedVariance: pca ? round(explainedVarianceRatio(pca), 6) : null,
    referenceSamples: ref.n,
    embeddingRows: E.n,
    droppedMisclassified: ref.n - E.n,
    activationDims: ref.dims,
    numClasses: ref.numClasses,
  };
  return { kind: 'lesci', layer: ref.layer, placement: mode === 'vq' ? 'before-tail' : 'after-tail', scores: 'logits', model, params };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

interface BuildArgs {
  E: ReferenceActivations;
  pca: PcaModel | undefined;
  mode: 'vq' | 'vote';
  k: number;
  distance: Distance;
  tProjection: number;
  reject: boolean;
  voteLogit: number;
  tieBreak: 'nearest' | 'smallest';
}

function buildLesciModel(a: BuildArgs): DefenseStage['model'] {
  const { E, pca, mode, k, distance } = a;
  const D = E.size;
  const C = E.numClasses;
  const g = new GraphBuilder('lesci/');
  const flat = g.op('Flatten', [DEFENSE_IO.activation], { axis: 1 });
  // The reduced query and reduced E.
  let reducedRows: ArrayLike<number>;
  let rdims: number;
  if (pca) {
    const ct = new Float32Array(D * pca.dims);
    for (let c = 0; c < pca.dims; c++) for (let j = 0; j < D; j++) ct[j * pca.dims + c] = pca.components[c * D + j];
    const centred = g.op('Sub', [flat, g.floatConst('pca_mean', [D], pca.mean)]);
    g.node('MatMul', [centred, g.floatConst('pca_components_t', [D, pca.dims], ct)], {}, [LESCI_TENSORS.reduced]);
    // Ê = (E − mean)·Cᵀ, accumulated in float64 and stored as float32 (the reference rows of the search).
    reducedRows = reduceRows(E.activations, E.n, D, pca);
    rdims = pca.dims;
  } else {
    g.node('Identity', [flat], {}, [LESCI_TENSORS.reduced]);
    reducedRows = E.activations;
    rdims = D;
  }
  const { indices } = addKnnSearch(g, LESCI_TENSORS.reduced, reducedRows, E.n, rdims, k, distance, { indices: LESCI_TENSORS.indices });
  const activationInfo = tensorValueInfo(DEFENSE_IO.activation, ['N', ...E.dims]);
  const extra = [];
  if (mode === 'vq') {
    extra.push(floatTensor(LESCI_TENSORS.embedding, [E.n, D], E.activations));
    // Not read by the graph: the labels of E's rows, for the adaptive attack's surrogate.
    extra.push(int64Tensor(LESCI_TENSORS.embeddingLabels, [E.n], Array.from(E.labels)));
    const idx = g.op('Reshape', [indices, g.int64Const('shape', [-1])]);
    const rows = g.op('Gather', [LESCI_TENSORS.embedding, idx], { axis: 0 });
    g.node('Reshape', [rows, g.int64Const('shape', [-1, ...E.dims])], {}, [DEFENSE_IO.activationOut]);
    const graph = g.graph('lesci_vq', [activationInfo], [tensorValueInfo(DEFENSE_IO.activationOut, ['N', ...E.dims])], extra);
    return makeModel(graph, E.opset);
  }
  // Vote.
  extra.push(int64Tensor(LESCI_TENSORS.embeddingLabels, [E.n], Array.from(E.labels)));
  const labs = g.op('Gather', [LESCI_TENSORS.embeddingLabels, indices], { axis: 0 }); // int64 [N, k]
  const depth = g.int64Const('depth', [C]);
  const oh = g.op('OneHot', [labs, depth, g.floatConst('onehot_values', [2], [0, 1])], { axis: -1 }); // [N, k, C]
  const counts = g.op('ReduceSum', [oh, g.int64Const('axes', [1])], { keepdims: 0 }); // [N, C]
  const [top] = g.node('TopK', [counts, g.int64Const('one', [1])], { axis: 1, largest: 1, sorted: 1 }, [LESCI_TENSORS.votes, g.fresh('top_index')]);
  let label: string;
  if (a.tieBreak === 'smallest') {
    label = g.op('ArgMax', [counts], { axis: 1, keepdims: 1, select_last_index: 0 });
  } else {
    // Labels tied with the maximum count; the first neighbour (nearest) whose label is tied.
    const tied = g.op('Cast', [g.op('Equal', [counts, top])], { to: DataType.FLOAT }); // [N, C]
    const flags = g.op('GatherElements', [tied, labs], { axis: 1 }); // [N, k]
    const first = g.op('ArgMax', [flags], { axis: 1, keepdims: 1, select_last_index: 0 }); // [N, 1]
    label = g.op('GatherElements', [labs, first], { axis: 1 }); // [N, 1]
  }
  g.node('Identity', [label], {}, [LESCI_TENSORS.votedLabel]);
  const minVotes = minimumVotes(k, a.tProjection);
  const passed = g.op('Greater', [top, g.scalar(minVotes - 0.5, 'min_votes')]); // bool [N, 1]
  g.node('Reshape', [passed, g.int64Const('shape', [-1])], {}, [DEFENSE_IO.projected]);
  const voted = g.op('OneHot', [g.op('Reshape', [label, g.int64Const('shape', [-1])]), depth, g.floatConst('vote_values', [2], [0, a.voteLogit])], {
    axis: -1,
  }); // [N, C]
  g.node('Where', [passed, voted, DEFENSE_IO.logits], {}, [DEFENSE_IO.scores]);
  const outputs = [tensorValueInfo(DEFENSE_IO.scores, ['N', C]), tensorValueInfo(DEFENSE_IO.projected, ['N'], DataType.BOOL)];
  if (a.reject) {
    g.node('Identity', [DEFENSE_IO.projected], {}, [DEFENSE_IO.accepted]);
    outputs.push(tensorValueInfo(DEFENSE_IO.accepted, ['N'], DataType.BOOL));
  }
  const graph = g.graph('lesci_vote', [activationInfo, tensorValueInfo(DEFENSE_IO.logits, ['N', C])], outputs, extra);
  return makeModel(graph, E.opset);
}

function reduceRows(x: Float32Array, n: number, d: number, pca: PcaModel): Float32Array {
  const r = pca.dims;
  const out = new Float32Array(n * r);
  const row = new Float32Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) row[j] = x[i * d + j] - pca.mean[j];
    for (let c = 0; c < r; c++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += row[j] * pca.components[c * d + j];
      out[i * r + c] = s;
    }
  }
  return out;
}

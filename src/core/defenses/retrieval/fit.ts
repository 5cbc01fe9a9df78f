/**
 * Fitting the retrieval defense: the database, the search graph (exact or LSH), the attention
 * (U = I, or learned) and, for the paper head, the trained classifier on [h̄; ȳ]. With LSH search
 * the fit measures, on leave-one-out queries from the reference set, the recall@N of the LSH
 * search against exact search and the accuracy difference it makes (params.lshCheck).
 */
import { UserError } from '../../errors';
import { GraphBuilder, makeModel } from '../../onnx/builder';
import { tensorValueInfo } from '../../onnx/cut';
import type { ReferenceActivations } from '../activations';
import { DEFENSE_IO, type DefenseStage } from '../types';
import { Rng } from '../../random';
import { permutation } from '../../train';
import { retrievalAttend } from './attention';
import { addRetrievalAttention, retrievalInitializers } from './graph';
import { checkLearnedAttention, headAccuracy, trainLearnedAttention, trainPaperHead, type TrainedHead } from './head';
import { buildRetrievalIndex, retrievalSearch } from './search';
import {
  ATTENTION_TRAINING_DEFAULTS,
  MAX_LEARNED_ATTENTION_DIMS,
  PAPER_HEAD_DEFAULTS,
  RETRIEVAL_DEFAULTS,
  type AttentionTraining,
  type PaperHeadTraining,
  type RetrievalIndex,
  type RetrievalOptions,
} from './types';

/** Leave-one-out queries the LSH check runs (a seeded subset of the reference set). */
export const LSH_CHECK_QUERIES = 1000;

export interface LshCheck {
  /** Reference rows queried, each left out of its own search. */
  queries: number;
  /** Mean |LSH neighbours ∩ exact neighbours| / N. */
  recall: number;
  /** Mean candidates per query as a fraction of the database. */
  candidateFraction: number;
  /** Queries with fewer than N candidates (they search exactly, in the graph as in JS). */
  fallbacks: number;
  /** What classifies the queries: the paper head on [h̄; ȳ], or argmax ȳ (the tail head's rest of the network is not available to the fit). */
  classifier: 'paper head' | 'argmax ȳ';
  accuracyExact: number;
  accuracyLsh: number;
  /** accuracyLsh − accuracyExact. */
  accuracyDifference: number;
}

/** Recall@N of the LSH search against exact search, and the accuracy difference, on leave-one-out queries of the reference set. */
export function lshCheck(index: RetrievalIndex, seed: number, head?: Pick<TrainedHead, 'mean' | 'invStd' | 'layers'>, queries = LSH_CHECK_QUERIES): LshCheck {
  const m = Math.min(queries, index.n);
  const rows = permutation(index.n, new Rng(seed).fork('retrieval-lsh-check')).subarray(0, m).sort();
  const D = index.size;
  const C = index.numClasses;
  const N = index.neighbours;
  const h = new Float32Array(m * D);
  rows.forEach((r, a) => h.set(index.database.subarray(r * D, (r + 1) * D), a * D));
  const labels = Int32Array.from(rows, (r) => index.labels[r]);
  const exclude = (a: number) => rows[a];
  const exact = retrievalSearch(index, h, m, { method: 'exact', exclude });
  const lsh = retrievalSearch(index, h, m, { method: 'lsh', exclude });
  let hits = 0;
  for (let a = 0; a < m; a++) {
    const s = new Set(exact.indices.subarray(a * N, (a + 1) * N));
    for (const i of lsh.indices.subarray(a * N, (a + 1) * N)) if (s.has(i)) hits++;
  }
  const accuracy = (indices: Int32Array) => {
    const { hbar, ybar } = retrievalAttend(index, h, m, indices);
    if (head) {
      const F = D + C;
      const features = new Float32Array(m * F);
      for (let a = 0; a < m; a++) {
        features.set(hbar.subarray(a * D, (a + 1) * D), a * F);
        features.set(ybar.subarray(a * C, (a + 1) * C), a * F + D);
      }
      return headAccuracy(index, head, features, labels, m);
    }
    let correct = 0;
    for (let a = 0; a < m; a++) {
      let best = 0;
      for (let c = 1; c < C; c++) if (ybar[a * C + c] > ybar[a * C + best]) best = c;
      if (best === labels[a]) correct++;
    }
    return correct / m;
  };
  const accuracyExact = accuracy(exact.indices);
  const accuracyLsh = accuracy(lsh.indices);
  return {
    queries: m,
    recall: hits / (m * N),
    candidateFraction: lsh.meanCandidates / index.n,
    fallbacks: lsh.fallbacks,
    classifier: head ? 'paper head' : 'argmax ȳ',
    accuracyExact,
    accuracyLsh,
    accuracyDifference: accuracyLsh - accuracyExact,
  };
}

/** ‖U − I‖_F / √D: how far the learned attention moved from the identity. */
function distanceFromIdentity(U: Float32Array, D: number): number {
  let s = 0;
  for (let j = 0; j < D; j++) for (let k = 0; k < D; k++) s += (U[j * D + k] - (j === k ? 1 : 0)) ** 2;
  return Math.sqrt(s / D);
}

/** Fits the retrieval defense: the database, the exact-search graph and (paper head) the trained classifier. */
export async function fitRetrieval(ref: ReferenceActivations, options: RetrievalOptions): Promise<DefenseStage> {
  const head = options.head;
  if (head !== 'tail' && head !== 'paper') throw new UserError(`Retrieval head must be 'tail' or 'paper', got '${String(head)}'.`);
  const search = options.search ?? 'exact';
  if (search !== 'exact' && search !== 'lsh') throw new UserError(`Retrieval search must be 'exact' or 'lsh', got '${String(search)}'.`);
  const attention = options.attention ?? 'identity';
  if (attention !== 'identity' && attention !== 'learned')
    throw new UserError(`Retrieval attention must be 'identity' or 'learned', got '${String(attention)}'.`, '--attention identity|learned');
  const index = buildRetrievalIndex(ref, options);
  if (attention === 'learned') checkLearnedAttention(index.size, MAX_LEARNED_ATTENTION_DIMS);
  const seed = options.seed ?? RETRIEVAL_DEFAULTS.seed;
  const hooks = { onEpoch: options.onEpoch, session: options.session, signal: options.signal };
  const params: Record<string, unknown> = {
    head,
    neighbours: index.neighbours,
    projectionDims: index.projectionDims,
    distance: index.distance,
    search,
    attentionScale: options.attentionScale ?? RETRIEVAL_DEFAULTS.attentionScale,
    attentionScaleValue: index.scale,
    attentionMatrix: attention,
    seed,
    databaseSize: index.n,
    activationDims: ref.dims,
    numClasses: ref.numClasses,
    lsh: { tables: index.lsh.tables, bits: index.lsh.bits, radius: index.lsh.radius },
  };
  const activationInfo = tensorValueInfo(DEFENSE_IO.activation, ['N', ...ref.dims]);
  if (head === 'tail') {
    if (attention === 'learned') {
      const at: Required<AttentionTraining> = { ...ATTENTION_TRAINING_DEFAULTS, ...options.attentionTraining };
      checkTraining(at);
      const learned = await trainLearnedAttention(index, { ...at, search }, seed, undefined, hooks);
      index.attention = learned.U;
      params.attentionTraining = {
        ...at,
        search,
        objective: 'cross-entropy of ȳ',
        finalLoss: learned.loss,
        trainAccuracy: learned.accuracy,
        distanceFromIdentity: distanceFromIdentity(learned.U, index.size),
        backend: learned.backend,
      };
    }
    if (search === 'lsh') params.lshCheck = lshCheck(index, seed);
    const g = new GraphBuilder('retrieval/');
    const { hbar } = addRetrievalAttention(g, index, search);
    const init = retrievalInitializers(index);
    g.node('Reshape', [hbar, g.int64Const('shape', [-1, ...ref.dims])], {}, [DEFENSE_IO.activationOut]);
    const graph = g.graph('retrieval_tail', [activationInfo], [tensorValueInfo(DEFENSE_IO.activationOut, ['N', ...ref.dims])], init);
    return { kind: 'retrieval', layer: ref.layer, placement: 'before-tail', scores: 'logits', model: makeModel(graph, ref.opset), params };
  }
  const training: Required<PaperHeadTraining> = { ...PAPER_HEAD_DEFAULTS, hidden: [...PAPER_HEAD_DEFAULTS.hidden], search, ...options.training };
  checkTraining(training);
  let trained: TrainedHead;
  if (attention === 'learned') {
    const learned = await trainLearnedAttention(index, training, seed, { hidden: training.hidden }, hooks);
    index.attention = learned.U;
    trained = learned.head!;
    params.attentionTraining = { objective: 'paper head cross-entropy (joint)', distanceFromIdentity: distanceFromIdentity(learned.U, index.size) };
  } else trained = await trainPaperHead(index, training, seed, hooks);
  if (search === 'lsh') params.lshCheck = lshCheck(index, seed, trained);
  const g = new GraphBuilder('retrieval/');
  const { hbar, ybar } = addRetrievalAttention(g, index, search);
  const init = retrievalInitializers(index);
  const features = g.op('Concat', [hbar, ybar], { axis: 1 });
  let x = g.op('Mul', [
    g.op('Sub', [features, g.floatConst('feature_mean', [trained.mean.length], trained.mean)]),
    g.floatConst('feature_inv_std', [trained.invStd.length], trained.invStd),
  ]);
  trained.layers.forEach((layer, li) => {
    const y = g.op('Add', [
      g.op('MatMul', [x, g.floatConst(`dense${li}_w`, [layer.inputs, layer.outputs], layer.w)]),
      g.floatConst(`dense${li}_b`, [layer.outputs], layer.b),
    ]);
    x = li < trained.layers.length - 1 ? g.op('Relu', [y]) : y;
  });
  g.node('Identity', [x], {}, [DEFENSE_IO.scores]);
  const graph = g.graph(
    'retrieval_paper',
    [activationInfo, tensorValueInfo(DEFENSE_IO.logits, ['N', ref.numClasses])],
    [tensorValueInfo(DEFENSE_IO.scores, ['N', ref.numClasses])],
    init,
  );
  params.training = {
    hidden: training.hidden,
    epochs: training.epochs,
    batchSize: training.batchSize,
    learningRate: training.learningRate,
    search: training.search,
    finalLoss: trained.loss,
    trainAccuracy: trained.accuracy,
    backend: trained.backend,
  };
  return { kind: 'retrieval', layer: ref.layer, placement: 'after-tail', scores: 'logits', model: makeModel(graph, ref.opset), params };
}

function checkTraining(t: Required<AttentionTraining> & { hidden?: number[]; search?: string }): void {
  const positiveInt = (v: number) => Number.isInteger(v) && v >= 1;
  if (
    !(t.hidden ?? [1]).every(positiveInt) ||
    !positiveInt(t.epochs) ||
    !positiveInt(t.batchSize) ||
    !(t.learningRate > 0) ||
    !['exact', 'lsh', undefined].includes(t.search)
  ) {
    throw new UserError(
      `Invalid training options for the retrieval ${t.hidden ? 'paper head' : 'attention'}: ${JSON.stringify(t)}.`,
      'hidden: positive widths; epochs, batchSize: positive integers; learningRate > 0; search: exact or lsh.',
    );
  }
}

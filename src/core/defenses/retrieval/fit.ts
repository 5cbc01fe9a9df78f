/** Fitting the retrieval defense: the database, the exact-search graph and, for the paper head, the trained classifier on [h̄; ȳ]. */
import { UserError } from '../../errors';
import { GraphBuilder, makeModel } from '../../onnx/builder';
import { tensorValueInfo } from '../../onnx/cut';
import type { ReferenceActivations } from '../activations';
import { DEFENSE_IO, type DefenseStage } from '../types';
import { addRetrievalAttention, retrievalInitializers } from './graph';
import { trainPaperHead } from './head';
import { buildRetrievalIndex } from './search';
import { PAPER_HEAD_DEFAULTS, RETRIEVAL_DEFAULTS, type PaperHeadTraining, type RetrievalOptions } from './types';

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
  if (
    !training.hidden.every(positiveInt) ||
    !positiveInt(training.epochs) ||
    !positiveInt(training.batchSize) ||
    !(training.learningRate > 0) ||
    !['exact', 'lsh'].includes(training.search)
  ) {
    throw new UserError(
      `Invalid training options for the retrieval paper head: ${JSON.stringify(training)}.`,
      'hidden: positive widths; epochs, batchSize: positive integers; learningRate > 0; search: exact or lsh.',
    );
  }
  const trained = await trainPaperHead(index, training, seed, { onEpoch: options.onEpoch, session: options.session, signal: options.signal });
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

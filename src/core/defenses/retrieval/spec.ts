/** Retrieval with attention (the retrieval paper): a private database of reference activations. */
import type { LshOptions } from '../lsh';
import { tensorFloat32 } from '../../onnx/tensor-proto';
import { fitRetrieval, PAPER_HEAD_DEFAULTS, RETRIEVAL_DEFAULTS, RETRIEVAL_TENSORS, type LshCheck } from '../retrieval';
import { attackerRows, softKnnStage, type SoftKnnSource } from '../soft-knn';
import type { DefenseStage } from '../types';
import { defineDefense } from '../spec';

/** The search the retrieval runs: its key against its stored keys, with their labels. */
function retrievalSearch(stage: DefenseStage): SoftKnnSource {
  const onehot = stage.model.graph!.initializer!.find((t) => t.name === RETRIEVAL_TENSORS.labels);
  if (!onehot) throw new Error('the retrieval graph stores no labels');
  const [n, classes] = (onehot.dims ?? []).map(Number);
  const values = tensorFloat32(onehot);
  const labels = Array.from({ length: n }, (_, i) => values.subarray(i * classes, (i + 1) * classes).indexOf(1));
  return { stage, query: RETRIEVAL_TENSORS.key, labels, numClasses: classes, distance: (stage.params.distance as 'cosine' | 'l2') ?? 'l2' };
}

export const RETRIEVAL = defineDefense({
  kind: 'retrieval',
  title: 'Retrieval',
  description: 'attention over the nearest reference activations in a random projection',
  reference: 'Zhao, Li & Cho, "Retrieval as a defense mechanism against adversarial examples in convolutional neural networks" (docs/papers.md §3)',
  params: [
    {
      key: 'head',
      flag: 'head',
      type: 'enum',
      values: ['tail', 'paper'],
      default: 'tail',
      valueDescriptions: [
        'The attention-weighted activation goes through the rest of the network',
        'Dense layers on the attended activation and labels, trained on the reference set (the paper)',
      ],
      description: 'What follows the attention: the rest of the network, or the paper\u2019s dense head.',
    },
    {
      key: 'neighbours',
      flag: 'neighbours',
      type: 'integer',
      min: 1,
      max: 10000,
      default: RETRIEVAL_DEFAULTS.neighbours,
      ask: true,
      description: 'Reference images N retrieved per input.',
    },
    {
      key: 'projectionDims',
      flag: 'projection-dims',
      type: 'integer',
      min: 0,
      default: RETRIEVAL_DEFAULTS.projectionDims,
      ask: true,
      description: 'Dimensions of the seeded random projection the search runs in (0: none).',
    },
    { key: 'distance', flag: 'distance', type: 'enum', values: ['l2', 'cosine'], default: RETRIEVAL_DEFAULTS.distance, description: 'Distance of the search.' },
    {
      key: 'search',
      flag: 'search',
      type: 'enum',
      values: ['exact', 'lsh'],
      default: 'exact',
      ask: true,
      valueDescriptions: [
        'exact search over every reference activation',
        'locality-sensitive hashing (the paper\u2019s engine): L tables of K sign bits, multi-probe, exact distances among the candidates',
      ],
      description:
        'How the defended (evaluated and exported) model retrieves, and the paper head\u2019s leave-one-out training; with lsh the fit reports recall@N against exact search and the accuracy difference.',
    },
    {
      key: 'attention',
      flag: 'attention',
      type: 'enum',
      values: ['identity', 'learned'],
      default: 'identity',
      ask: true,
      valueDescriptions: [
        'U = I: \u03b2_n = s\u00b7h\u00b7h_n',
        'U (D \u00d7 D) trained on the reference set with leave-one-out retrieval, with the paper head (or on the cross-entropy of \u0233 for the tail head)',
      ],
      description: 'The attention score \u03b2_n = s\u00b7h\u1d40 U h_n: U the identity, or learned as in the paper.',
    },
    { key: 'lsh.tables', flag: 'lsh-tables', type: 'integer', min: 1, max: 64, default: 8, description: 'LSH tables L.' },
    {
      key: 'lsh.bits',
      flag: 'lsh-bits',
      type: 'integer',
      min: 1,
      max: 24,
      defaultText: 'auto',
      description: 'Bits per table K (auto: about 8 rows per bucket).',
    },
    {
      key: 'lsh.radius',
      flag: 'lsh-radius',
      type: 'integer',
      min: 0,
      max: 3,
      default: 1,
      description: 'Multi-probe: the buckets within this Hamming distance of the query\u2019s code are probed in every table.',
    },
  ],
  adaptive: {
    description:
      'feature matching with the private database known: PGD on a soft nearest-neighbour surrogate over the stored keys, in the projected space the retrieval searches',
    surrogate: (stage) => softKnnStage(retrievalSearch(stage)),
    variants: [
      {
        id: 'own-data',
        description:
          'feature matching without the private database: the same soft nearest-neighbour surrogate over keys the attacker computes from its own labelled data (the evaluation samples) with the retrieval\u2019s projection',
        surrogate: async (stage, ctx) => {
          const own = await attackerRows(stage, RETRIEVAL_TENSORS.key, await ctx.attackerActivations(), ctx.threads);
          return softKnnStage({ ...retrievalSearch(stage), rows: own.rows, labels: own.labels });
        },
      },
    ],
  },
  fit: async (ref, params, ctx) => {
    const p = params as {
      head?: 'tail' | 'paper';
      neighbours?: number;
      projectionDims?: number;
      distance?: 'l2' | 'cosine';
      search?: 'exact' | 'lsh';
      attention?: 'identity' | 'learned';
      lsh?: LshOptions;
    };
    const stage = await fitRetrieval(ref, {
      head: p.head ?? 'tail',
      neighbours: p.neighbours,
      projectionDims: p.projectionDims,
      distance: p.distance,
      seed: ctx.seed,
      lsh: p.lsh,
      search: p.search,
      attention: p.attention,
      signal: ctx.signal,
      session: { ep: 'cpu', threads: ctx.threads },
      // The paper head and the attention matrix train for the same default number of epochs.
      onEpoch: (epoch) => ctx.onProgress?.(epoch + 1, PAPER_HEAD_DEFAULTS.epochs),
    });
    const check = stage.params.lshCheck as LshCheck | undefined;
    if (check) {
      const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
      ctx.log(
        `retrieval LSH (${ref.layer}): recall@${String(stage.params.neighbours)} against exact search ${check.recall.toFixed(3)} on ${check.queries} leave-one-out reference queries, ${pct(check.candidateFraction)} of the rows looked at, ${check.fallbacks} exact fallbacks; accuracy (${check.classifier}) ${pct(check.accuracyLsh)} with LSH vs ${pct(check.accuracyExact)} exact (${check.accuracyDifference >= 0 ? '+' : ''}${(100 * check.accuracyDifference).toFixed(1)} points)`,
      );
    }
    const at = stage.params.attentionTraining as { distanceFromIdentity: number } | undefined;
    if (at) ctx.log(`retrieval attention learned: ‖U − I‖_F/√D = ${at.distanceFromIdentity.toFixed(3)}`);
    return stage;
  },
});

/** Retrieval with attention (the retrieval paper): a private database of reference activations. */
import type { LshOptions } from '../lsh';
import { tensorFloat32 } from '../../onnx/tensor-proto';
import { fitRetrieval, RETRIEVAL_DEFAULTS, RETRIEVAL_TENSORS } from '../retrieval';
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
      valueDescriptions: ['exact search over every reference activation', 'locality-sensitive hashing over a random projection (faster, approximate)'],
      description: 'How the paper head\u2019s leave-one-out training retrieves; the ONNX pipeline always searches exactly.',
    },
    { key: 'lsh.tables', flag: 'lsh-tables', type: 'integer', min: 1, default: 8, description: 'LSH tables L.' },
    { key: 'lsh.bits', flag: 'lsh-bits', type: 'integer', min: 1, defaultText: 'auto', description: 'Bits per table K.' },
    { key: 'lsh.probes', flag: 'lsh-probes', type: 'integer', min: 0, default: 8, description: 'Multi-probe count.' },
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
  fit: (ref, params, ctx) => {
    const p = params as {
      head?: 'tail' | 'paper';
      neighbours?: number;
      projectionDims?: number;
      distance?: 'l2' | 'cosine';
      search?: 'exact' | 'lsh';
      lsh?: LshOptions;
    };
    return fitRetrieval(ref, {
      head: p.head ?? 'tail',
      neighbours: p.neighbours,
      projectionDims: p.projectionDims,
      distance: p.distance,
      seed: ctx.seed,
      lsh: p.lsh,
      training: p.search ? { search: p.search } : undefined,
      signal: ctx.signal,
      session: { ep: 'cpu', threads: ctx.threads },
    });
  },
});

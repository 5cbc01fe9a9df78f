/** LESCI (Denk & Pfisterer): vector quantization or a k-nearest-neighbour vote on reference activations. */
import { tensorValues } from '../../onnx/tensor-proto';
import { fitLesci, LESCI_DEFAULTS, LESCI_TENSORS, type LesciOptions } from '../lesci';
import { softKnnStage, softVoteStage, type SoftKnnSource, type SoftVoteRoute } from '../soft-knn';
import type { DefenseStage } from '../types';
import { defineDefense } from '../spec';

/** The search LESCI runs: its reduced query against its stored rows, with their labels. */
function lesciSearch(stage: DefenseStage): SoftKnnSource {
  const labels = stage.model.graph!.initializer!.find((t) => t.name === LESCI_TENSORS.embeddingLabels);
  if (!labels) throw new Error('the LESCI graph stores no labels of its rows');
  return {
    stage,
    query: LESCI_TENSORS.reduced,
    labels: tensorValues(labels),
    numClasses: Number(stage.params.numClasses),
    distance: stage.params.distance as 'cosine' | 'l2',
  };
}

/** A soft-vote variant of the adaptive threat, for the vote mode only. */
function voteVariant(route: SoftVoteRoute, description: string) {
  return {
    id: route === 'threshold' ? 'soft-vote' : 'vote-bypass',
    description,
    applies: (stage: DefenseStage) => stage.params.mode === 'vote',
    surrogate: (stage: DefenseStage) =>
      softVoteStage({ ...lesciSearch(stage), k: Number(stage.params.k), tProjection: Number(stage.params.tProjection), route }),
  };
}

export const LESCI = defineDefense({
  kind: 'lesci',
  title: 'LESCI',
  description: 'nearest reference activation (vector quantization) or a k-nearest-neighbour vote',
  reference: 'Denk & Pfisterer, "The LESCI Layer", 2018 (docs/papers.md §1)',
  params: [
    {
      key: 'mode',
      flag: 'mode',
      type: 'enum',
      values: ['vq', 'vote'],
      default: 'vq',
      ask: true,
      valueDescriptions: [
        'vector quantization: replace the activation by its nearest reference activation',
        'majority vote of the k nearest reference activations decides the label',
      ],
      description: 'vq: replace the activation by the nearest embedding; vote: the k nearest vote for the label.',
    },
    {
      key: 'k',
      flag: 'k',
      type: 'integer',
      min: 1,
      max: 10000,
      default: LESCI_DEFAULTS.k,
      ask: true,
      when: { key: 'mode', equals: 'vote' },
      description: 'Neighbours that vote (vote mode).',
    },
    {
      key: 'tProjection',
      flag: 't-projection',
      type: 'number',
      min: 0,
      max: 1,
      default: LESCI_DEFAULTS.tProjection,
      when: { key: 'mode', equals: 'vote' },
      description: 'Share of the k votes needed to output the voted label.',
    },
    {
      key: 'pcaDims',
      flag: 'pca',
      type: 'integer',
      min: 0,
      default: LESCI_DEFAULTS.pcaDims,
      ask: true,
      description: 'PCA dimensions the distances are measured in (0: no PCA).',
    },
    {
      key: 'distance',
      flag: 'distance',
      type: 'enum',
      values: ['cosine', 'l2'],
      default: LESCI_DEFAULTS.distance,
      description: 'Distance of the nearest-neighbour search.',
    },
    {
      key: 'reject',
      flag: 'reject',
      type: 'boolean',
      default: LESCI_DEFAULTS.reject,
      when: { key: 'mode', equals: 'vote' },
      description: 'Reject (instead of passing through) samples whose vote fails.',
    },
  ],
  adaptive: {
    description:
      'representation matching: PGD on a soft nearest-neighbour surrogate over the stored rows, in the PCA space and with the distance LESCI searches in',
    surrogate: (stage) => softKnnStage(lesciSearch(stage)),
    variants: [
      voteVariant(
        'threshold',
        'soft vote aimed at t_projection: the k-NN vote smoothed into class shares, scored A·relu(share − t_projection) plus the model\u2019s logits, so the attack drives a wrong class over the threshold or, failing that, the fallback output wrong',
      ),
      voteVariant(
        'bypass',
        'the second route: logits + log(soft vote share), pushing the true class\u2019s share under t_projection so the model\u2019s own output is used, and attacking that output at the same time',
      ),
    ],
  },
  fit: (ref, params, ctx) => fitLesci(ref, { mode: 'vq', ...(params as Partial<LesciOptions>), pca: { seed: ctx.seed, threads: ctx.threads } }),
});

/** The isometric head (arXiv:2211.01236): the dense tail after T retrained with the metric-preservation term. */
import { defineDefense } from '../spec';
import { fitIsometric, ISOMETRIC_DEFAULTS } from './fit';

export const ISOMETRIC = defineDefense({
  kind: 'isometric',
  title: 'Isometric head',
  description: 'the dense layers after the layer retrained with cross-entropy plus the metric-preservation term; the head stays frozen',
  reference: 'arXiv:2211.01236, isometric representations (title and authors: see docs/papers.md §4)',
  params: [
    {
      key: 'weight',
      flag: 'iso-weight',
      type: 'number',
      min: 0,
      default: ISOMETRIC_DEFAULTS.weight,
      ask: true,
      description: 'λ1: weight of the metric-preservation term beside the cross-entropy.',
    },
    {
      key: 'scale',
      flag: 'iso-scale',
      type: 'number',
      min: 0,
      default: ISOMETRIC_DEFAULTS.scale,
      ask: true,
      description: 'λ2: scale of the representation distances, λ2·‖zᵢ − zⱼ‖ against ‖xᵢ − xⱼ‖.',
    },
    { key: 'epochs', flag: 'epochs', type: 'integer', min: 1, max: 10000, default: ISOMETRIC_DEFAULTS.epochs, ask: true, description: 'Training epochs.' },
    {
      key: 'batchSize',
      flag: 'iso-batch',
      type: 'integer',
      min: 2,
      max: 4096,
      default: ISOMETRIC_DEFAULTS.batchSize,
      description: 'Mini-batch size B (the metric term sums over B² pairs).',
    },
    { key: 'learningRate', flag: 'iso-lr', type: 'number', min: 0, default: ISOMETRIC_DEFAULTS.learningRate, description: 'Adam learning rate.' },
  ],
  adaptive: {
    description:
      'no surrogate: the retrained head is an ordinary differentiable network, so the adaptive attack follows the true gradient of the whole defended model (frozen head and retrained tail), as the direct threat model does',
  },
  fit: (ref, params, ctx) => {
    const sources = ctx.sources;
    const p = params as { weight?: number; scale?: number; epochs?: number; batchSize?: number; learningRate?: number };
    return fitIsometric(ref, sources, {
      ...p,
      layer: ctx.layer,
      seed: ctx.seed,
      signal: ctx.signal,
      log: ctx.log,
      onProgress: ctx.onProgress,
      session: { ep: 'cpu', threads: ctx.threads },
    });
  },
});

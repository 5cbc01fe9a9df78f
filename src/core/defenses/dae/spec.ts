/** Denoising-autoencoder confidence (the dAE paper): rejects what the autoencoder cannot reconstruct. */
import { DAE_DEFAULTS, fitDae, type DaeOptions } from '../dae';
import { defineDefense } from '../spec';

export const DAE = defineDefense({
  kind: 'dae',
  title: 'dAE',
  description: 'denoising-autoencoder confidence: rejects what it cannot reconstruct',
  reference: 'Spigler, "Denoising Autoencoders for Overgeneralization in Neural Networks" (docs/papers.md §2)',
  params: [
    { key: 'hidden', flag: 'hidden', type: 'integer', min: 1, default: DAE_DEFAULTS.hidden, ask: true, description: 'Hidden units of the autoencoder.' },
    {
      key: 'sigma',
      flag: 'sigma',
      type: 'number',
      min: 0,
      default: DAE_DEFAULTS.sigma,
      ask: true,
      description: 'Training noise standard deviation (in units of the activations\u2019 RMS deviation).',
    },
    { key: 'epochs', flag: 'epochs', type: 'integer', min: 1, max: 10000, default: DAE_DEFAULTS.epochs, ask: true, description: 'Training epochs.' },
    {
      key: 'alpha',
      flag: 'alpha',
      type: 'number',
      min: 0,
      defaultText: 'calibrated',
      description:
        'Sensitivity of the confidence to the reconstruction error; by default calibrated so that 95% of reference samples keep a reconstruction factor of at least 0.99.',
    },
    { key: 'beta', flag: 'beta', type: 'number', min: 0, default: DAE_DEFAULTS.beta, description: 'Weight of the curvature term \u0393.' },
    {
      key: 'thresholds',
      flag: 'thresholds',
      type: 'numbers',
      min: 0,
      max: 1,
      default: [0, 0.9, 0.99],
      description: 'Confidence thresholds to report accuracy and rejection at.',
    },
  ],
  adaptive: {
    description: 'the joint objective: maximise log Σ_{j≠y} c·softmax_j, misclassified and confidently accepted at once, through the confidence c',
  },
  fit: (ref, params, ctx) =>
    fitDae(
      { activations: ref.activations, n: ref.n, dims: ref.dims, layer: ctx.layer },
      {
        ...(params as DaeOptions),
        seed: ctx.seed,
        numClasses: ref.numClasses,
        signal: ctx.signal,
        log: ctx.log,
        session: { ep: 'cpu', threads: ctx.threads },
        onEpoch: (epoch) => ctx.onProgress?.(epoch + 1, (params as DaeOptions).epochs ?? DAE_DEFAULTS.epochs), // epochs count from 0
      },
    ),
});

/**
 * Open-set recognition in an evaluation (dAE paper): the test data are the known inputs, the
 * `unknown` set holds images of classes the model never learnt. Scored by the undefended model's
 * top softmax probability and, when the defense outputs probabilities (the dAE's confidence-scaled
 * softmax), by the defended model's top probability too. The metrics are in core/analysis/open-set.ts.
 */
import { softmaxRows } from '../../attacks/fooling';
import { openSetScorer, topScores } from '../../analysis/open-set';
import { inferInputSpec, loadDataset, preprocess } from '../../data';
import type { DefendedClassifier } from '../../defenses/threats';
import { UserError } from '../../errors';
import { DEFAULT_OPEN_SET_THRESHOLDS, defenseParams, type EvaluationConfig } from '../../../protocol/experiment';
import type { OpenSetResult, RunResult } from '../../../protocol/run-result';
import { throwIfCancelled, type RunHooks } from '../context';
import type { PreparedData } from '../data';
import { argmaxRows, classifierLogits, type ClassifierModel } from '../model-session';

export interface UnknownSet {
  x: Float32Array;
  count: number;
  description: OpenSetResult['unknown'];
}

/** Loads the unknown images (labels are not needed) and preprocesses them exactly as the test data. */
export async function prepareUnknown(config: EvaluationConfig, model: Pick<ClassifierModel, 'sampleDims'>): Promise<UnknownSet> {
  const plan = config.unknown!;
  const raw = await loadDataset({
    path: plan.data,
    labelsPath: plan.labels,
    limit: plan.limit,
    maxDecompressedBytes: config.maxDecompressedBytes,
    allowNonFinite: config.allowNonFinite,
  });
  if (raw.count === 0)
    throw new UserError(`The unknown set '${plan.data}' holds no images.`, 'Give a dataset with at least one image of a class the model never learnt.');
  const spec = inferInputSpec([1, ...model.sampleDims]);
  // The same scale as the test data gets (prepareData): 1/255 for 8-bit images unless --scale says otherwise.
  const scale = config.preprocessing?.scale ?? (raw.pixels instanceof Uint8Array ? 1 / 255 : 1);
  const x = preprocess(raw, spec, { ...config.preprocessing, scale });
  return { x, count: raw.count, description: { path: plan.data, format: raw.info.format, count: raw.count, sha256: raw.info.sha256 } };
}

/** The thresholds of the open-set table: the plan's (or the defaults), with the dAE plan's own added. */
export function openSetThresholds(config: EvaluationConfig): number[] {
  const own = config.unknown?.thresholds ?? DEFAULT_OPEN_SET_THRESHOLDS;
  const dae = config.defense?.kind === 'dae' ? ((defenseParams(config.defense).thresholds as number[] | undefined) ?? []) : [];
  return [...new Set([...own, ...dae])].sort((a, b) => a - b);
}

async function defendedScores(defended: DefendedClassifier, x: Float32Array, count: number, batchSize: number): Promise<Float32Array> {
  const classes = defended.numClasses;
  const d = defended.sampleDims.reduce((a, b) => a * b, 1);
  const scores = new Float32Array(count * classes);
  for (let start = 0; start < count; start += batchSize) {
    const n = Math.min(batchSize, count - start);
    const out = await defended.run(x.subarray(start * d, (start + n) * d), n);
    scores.set(out[defended.defended.scores].data as Float32Array, start * classes);
  }
  return scores;
}

function correctFlags(predictions: Int32Array, labels: Int32Array): Uint8Array {
  return Uint8Array.from(labels, (l, i) => (predictions[i] === l ? 1 : 0));
}

export async function runOpenSet(
  config: EvaluationConfig,
  model: ClassifierModel,
  unknown: UnknownSet,
  data: PreparedData,
  knownLogits: Float32Array,
  defended: DefendedClassifier | undefined,
  result: RunResult,
  hooks: RunHooks,
): Promise<void> {
  const batchSize = model.fixedBatch ?? config.batchSize;
  const thresholds = openSetThresholds(config);
  hooks.onProgress?.({ phase: 'Open-set recognition: unknown inputs', done: 0, total: unknown.count });
  const unknownLogits = await classifierLogits(model, unknown.x, unknown.count, batchSize, (done) => {
    hooks.onProgress?.({ phase: 'Open-set recognition: unknown inputs', done, total: unknown.count });
    throwIfCancelled(hooks.signal);
  });
  const k = model.numClasses;
  const knownProbabilities = softmaxRows(knownLogits, k);
  const section: OpenSetResult = {
    unknown: unknown.description,
    knownCount: data.count,
    baseline: openSetScorer(
      'max-softmax',
      topScores(knownProbabilities, k),
      correctFlags(argmaxRows(knownProbabilities, k), data.labels),
      topScores(softmaxRows(unknownLogits, k), k),
      thresholds,
    ),
  };
  if (defended?.parts.stage.scores === 'probabilities') {
    hooks.onProgress?.({ phase: 'Open-set recognition: the dAE-scaled model', done: 0, total: 1 });
    const known = await defendedScores(defended, data.x, data.count, batchSize);
    throwIfCancelled(hooks.signal);
    const other = await defendedScores(defended, unknown.x, unknown.count, batchSize);
    section.defended = openSetScorer('dae-confidence', topScores(known, k), correctFlags(argmaxRows(known, k), data.labels), topScores(other, k), thresholds);
  }
  hooks.onLog?.(
    `Open set: ${unknown.count} unknown against ${data.count} known inputs, AUROC ${section.baseline.auroc.toFixed(4)} (max softmax)${section.defended ? `, ${section.defended.auroc.toFixed(4)} (dAE confidence)` : ''}`,
  );
  result.openSet = section;
}

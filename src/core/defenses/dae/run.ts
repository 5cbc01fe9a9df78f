/** Running a fitted dAE stage with onnxruntime, acceptance at a threshold, and the per-threshold metrics. */
import * as ort from 'onnxruntime-node';
import type { ThresholdRow } from '../../../protocol/run-result';
import { encodeModel } from '../../onnx/proto';
import { createSession, type SessionOptions } from '../../runtime/session';
import { DEFENSE_IO, type DefenseStage } from '../types';
import { DAE_CONFIDENCE_OUTPUT, type DaeParams } from './types';

export type { ThresholdRow };

/** Runs a dAE defense model on (activations, logits) with onnxruntime: scaled scores and c. */
export async function runDaeStage(
  stage: DefenseStage,
  activations: Float32Array,
  logits: Float32Array,
  n: number,
  options: SessionOptions & { batchSize?: number } = { ep: 'cpu' },
): Promise<{ scores: Float32Array; confidence: Float32Array }> {
  const params = stage.params as unknown as DaeParams;
  const dims = params.dims;
  const d = params.d;
  const classes = logits.length / n;
  const session = await createSession(encodeModel(stage.model), options);
  const scores = new Float32Array(n * classes);
  const confidence = new Float32Array(n);
  const batch = options.batchSize ?? 256;
  try {
    for (let start = 0; start < n; start += batch) {
      const m = Math.min(batch, n - start);
      const out = await session.run(
        {
          [DEFENSE_IO.activation]: new ort.Tensor('float32', activations.subarray(start * d, (start + m) * d), [m, ...dims]),
          [DEFENSE_IO.logits]: new ort.Tensor('float32', logits.subarray(start * classes, (start + m) * classes), [m, classes]),
        },
        [DEFENSE_IO.scores, DAE_CONFIDENCE_OUTPUT],
      );
      scores.set(out[DEFENSE_IO.scores].data as Float32Array, start * classes);
      confidence.set(out[DAE_CONFIDENCE_OUTPUT].data as Float32Array, start);
    }
  } finally {
    await session.release();
  }
  return { scores, confidence };
}

/** 1 where the top scaled probability reaches `threshold` (the sample is accepted), else 0. */
export function daeAcceptance(scores: Float32Array, threshold: number, numClasses: number): Uint8Array {
  const n = scores.length / numClasses;
  const out = new Uint8Array(n);
  for (let j = 0; j < n; j++) {
    let best = -Infinity;
    for (let c = 0; c < numClasses; c++) best = Math.max(best, scores[j * numClasses + c]);
    out[j] = best >= threshold ? 1 : 0;
  }
  return out;
}

/** Per threshold: accuracy among accepted samples, rejection rate and accuracy over all samples. */
export function thresholdTable(scores: Float32Array, labels: ArrayLike<number>, thresholds: readonly number[]): ThresholdRow[] {
  const n = labels.length;
  if (n === 0 || scores.length % n !== 0) throw new RangeError(`thresholdTable: ${scores.length} scores for ${n} labels`);
  const classes = scores.length / n;
  const top = new Float64Array(n);
  const correct = new Uint8Array(n);
  for (let j = 0; j < n; j++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (scores[j * classes + c] > scores[j * classes + best]) best = c;
    top[j] = scores[j * classes + best];
    correct[j] = best === labels[j] ? 1 : 0;
  }
  return thresholds.map((threshold) => {
    let accepted = 0;
    let good = 0;
    for (let j = 0; j < n; j++) {
      if (top[j] >= threshold) {
        accepted++;
        good += correct[j];
      }
    }
    return {
      threshold,
      acceptedAccuracy: accepted ? good / accepted : null,
      rejectionRate: (n - accepted) / n,
      accuracyOverAll: good / n,
      acceptedWrong: (accepted - good) / n,
      accepted,
      total: n,
    };
  });
}

/**
 * The fooling generator of the dAE paper in an evaluation: on the undefended model, and, when a
 * dAE defense ran, on the dAE-scaled model with the gradient through the confidence c.
 */
import { appendRejectClassLogits, foolingGenerator, scoredFromLogits, scoredFromRejectClassLogits, type FoolingResult } from '../../attacks/fooling';
import { inferShapes } from '../../runtime/shapes';
import { sha256Hex } from '../../model/load';
import { encodeModel } from '../../onnx/proto';
import { OnnxClassifier } from '../../runtime/onnx-classifier';
import { createSession } from '../../runtime/session';
import type { DefendedClassifier } from '../../defenses/threats';
import type { EvaluationConfig } from '../../../protocol/experiment';
import type { FoolingSummary, RunResult } from '../../../protocol/run-result';
import { CancelledError, isCancelled, type RunHooks } from '../context';

function summaries(r: FoolingResult): FoolingSummary[] {
  return r.byThreshold.map((t) => ({ threshold: t.threshold, foolingRate: t.foolingRate, averageSteps: t.averageSteps, runs: t.runs }));
}

export async function runFooling(
  config: EvaluationConfig,
  undefended: OnnxClassifier,
  defended: DefendedClassifier | undefined,
  result: RunResult,
  hooks: RunHooks,
): Promise<void> {
  const plan = config.fooling!;
  const seeds = Array.from({ length: plan.seeds ?? 1 }, (_, i) => config.seed + i);
  const options = { targets: plan.targets, seeds, maxSteps: plan.maxSteps, thresholds: plan.thresholds, learningRate: plan.learningRate, signal: hooks.signal };
  const run = async (label: string, scored: Parameters<typeof foolingGenerator>[0]) => {
    hooks.onLog?.(`Fooling generator on the ${label} model`);
    try {
      return await foolingGenerator(scored, {
        ...options,
        onProgress: (done: number, total: number) => hooks.onProgress?.({ phase: `Fooling generator (${label})`, done, total }),
      });
    } catch (e) {
      if (isCancelled(e)) throw new CancelledError();
      throw e;
    }
  };
  const baseline = await run('undefended', scoredFromLogits(undefended));
  result.fooling = {
    baseline: summaries(baseline),
    params: { maxSteps: baseline.maxSteps, learningRate: baseline.learningRate, latentSize: baseline.latentSize, seeds, targets: plan.targets ?? 'all' },
  };
  if (defended?.parts.stage.scores !== 'probabilities') return;

  // The dAE-scaled scores s = c·softmax become C+1 logits [log s, log(1 − Σs)], whose cross-entropy
  // towards a target t is −log(c·p_t): the autodiff then differentiates through c.
  const model = appendRejectClassLogits(defended.defended.model, defended.defended.scores, defended.numClasses);
  const bytes = encodeModel(model);
  const shapes = await inferShapes({ path: '(dAE-scaled model)', sha256: sha256Hex(bytes), model, bytes }, config.threads);
  const session = await createSession(bytes, { ep: config.ep, threads: config.threads });
  const scaled = new OnnxClassifier({
    model,
    shapes,
    session,
    input: defended.parts.input,
    output: 'fooling_logits',
    sampleDims: defended.sampleDims,
    numClasses: defended.numClasses + 1,
    sessionOptions: { ep: config.ep, threads: config.threads },
  });
  try {
    result.fooling.defended = summaries(await run('dAE-scaled', scoredFromRejectClassLogits(scaled)));
  } finally {
    await scaled.release();
    await session.release();
  }
}

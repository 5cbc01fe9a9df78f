/**
 * The attack stage: every attack of the plan at every epsilon against one classifier (the
 * undefended model, or the defended one under a threat model), as RunResult entries that keep each
 * sample's outcome, so that the worst case can be taken per sample.
 */
import { availableParallelism } from 'node:os';
import { parseAttackList, runAttack, type AttackConfig } from '../../attacks/run';
import { ATTACKS, type AttackName } from '../../attacks/registry';
import type { Classifier, Norm } from '../../attacks/types';
import { UserError } from '../../errors';
import { OnnxLanes } from '../../runtime/lanes';
import { encodeBits } from '../../../protocol/bitset';
import type { AttackPlan, EvaluationConfig } from '../../../protocol/experiment';
import type { AttackResult, ExampleImage, RunResult } from '../../../protocol/run-result';
import { isCancelled, CancelledError, type RunHooks } from '../context';
import type { PreparedData } from '../data';
import { laneInit, type ClassifierModel } from '../model-session';

/** Input/adversarial pairs kept per attack at the largest epsilon, for the results view. */
export const EXAMPLES_PER_RUN = 4;

export interface AttackPlanOptions {
  seed: number;
  batchSize: number;
  /** Copies of the classifier that attack batches in parallel (see OnnxLanes). */
  lanes?: readonly Classifier[];
  target: 'baseline' | 'defended';
  /** Keep every adversarial input and let the caller add to the entry (rejection metrics). */
  inspect?(entry: AttackResult, adversarial: Float32Array, predictions: Int32Array): Promise<void>;
  /** Samples whose clean and adversarial inputs go into the result's examples. */
  examples?: { count: number; into: ExampleImage[]; onlyEps?: number };
}

/** Every attack of the plan at every epsilon, as result entries with the given threat model. */
export async function runAttackPlan(
  classifier: Classifier,
  data: PreparedData,
  plan: AttackPlan,
  threat: string,
  options: AttackPlanOptions,
  hooks: RunHooks,
): Promise<AttackResult[]> {
  const names = parseAttackList(plan.names.join(','));
  return runAttacks(classifier, data, plan, names, threat, options, hooks);
}

export async function runAttacks(
  classifier: Classifier,
  data: PreparedData,
  plan: AttackPlan,
  names: AttackName[],
  threat: string,
  options: AttackPlanOptions,
  hooks: RunHooks,
): Promise<AttackResult[]> {
  const badEps = plan.eps.find((e) => !(e >= 0) || !Number.isFinite(e));
  if (badEps !== undefined || plan.eps.length === 0)
    throw new UserError(`Epsilons must be non-negative numbers, got [${plan.eps.join(', ')}].`, 'Pass e.g. --eps 0.01,0.02,0.05');
  const results: AttackResult[] = [];
  // Sequential (AutoAttack): per eps, each attack runs only on the samples no earlier one broke.
  const broken = new Map<number, Uint8Array>();
  for (const attack of names) {
    for (const eps of plan.eps) {
      const alreadyBroken = plan.sequential ? broken.get(eps) : undefined;
      const config: AttackConfig = {
        attack,
        eps,
        norm: plan.norm as Norm,
        steps: plan.steps,
        stepSize: plan.stepSize,
        restarts: plan.restarts,
        randomStart: plan.randomStart,
        queries: plan.queries,
        loss: plan.loss,
        targeted: plan.targeted ? 'random' : undefined,
      };
      const phase = `${options.target === 'defended' ? `${threat}: ` : ''}${attack} (${plan.norm}) at eps ${eps}`;
      hooks.onLog?.(`Attack ${phase}`);
      const wantExamples = options.examples && (options.examples.onlyEps === undefined || options.examples.onlyEps === eps) ? options.examples.count : 0;
      let metrics;
      try {
        metrics = await runAttack(classifier, data, config, {
          batchSize: options.batchSize,
          seed: options.seed,
          signal: hooks.signal,
          lanes: options.lanes,
          alreadyBroken,
          keepExamples: options.inspect ? data.count : wantExamples,
          onProgress: (done, total) => hooks.onProgress?.({ phase: `Attack ${phase}`, done, total }),
        });
      } catch (e) {
        if (isCancelled(e)) throw new CancelledError();
        throw e;
      }
      const params = effectiveParams(attack, config);
      if (plan.sequential) {
        params.sequential = `on the samples no earlier attack broke (${alreadyBroken ? alreadyBroken.reduce((a, b) => a + b, 0) : 0} skipped): accuracy is cumulative`;
        broken.set(
          eps,
          Uint8Array.from(metrics.robust, (r) => 1 - r),
        ); // already-broken samples are never robust
      }
      const entry: AttackResult = {
        target: options.target,
        attack,
        threat,
        norm: metrics.norm,
        eps,
        accuracy: metrics.accuracy,
        successRate: metrics.successRate,
        meanPerturbation: metrics.meanPerturbation,
        maxPerturbation: metrics.maxPerturbation,
        gradientEvaluations: metrics.gradientEvaluations,
        queries: metrics.queries,
        seconds: metrics.seconds,
        params,
        robust: encodeBits(metrics.robust),
        ...(metrics.convergence && { convergence: metrics.convergence }),
      };
      if (options.inspect && metrics.adversarialExamples) await options.inspect(entry, metrics.adversarialExamples, metrics.predictions);
      if (wantExamples && metrics.adversarialExamples) {
        options.examples!.into.push(
          ...exampleImages(
            data,
            metrics.adversarialExamples,
            metrics.predictions,
            wantExamples,
            { attack, eps, threat, target: options.target },
            classifier.sampleDims,
          ),
        );
      }
      results.push(entry);
      hooks.onLog?.(
        `  robust accuracy ${(100 * metrics.accuracy).toFixed(2)}%, success rate ${(100 * metrics.successRate).toFixed(2)}%, ${metrics.seconds.toFixed(1)} s`,
      );
    }
  }
  return results;
}

/**
 * The parameters an attack actually ran with: its documented defaults overridden by what the plan
 * set (only the options the attack reads), the step size resolved, so every number in a result
 * says which budget produced it.
 */
export function effectiveParams(attack: AttackName, config: AttackConfig): Record<string, unknown> {
  const spec = ATTACKS[attack];
  const reads = (k: string) => (spec.uses as readonly string[]).includes(k) || k in spec.defaults;
  const set = Object.fromEntries(Object.entries(config).filter(([k, v]) => v !== undefined && reads(k)));
  const out: Record<string, unknown> = { ...spec.defaults, ...set };
  const factor = out.stepSizeFactor;
  if (config.stepSize === undefined && typeof factor === 'number' && typeof out.steps === 'number') out.stepSize = (factor * config.eps) / out.steps;
  if (config.stepSize !== undefined) delete out.stepSizeFactor;
  if (out.targeted === 'random') out.targeted = 'random wrong label';
  return out;
}

/** The first samples' clean and adversarial inputs, rounded to keep result files small. */
function exampleImages(
  data: PreparedData,
  adversarial: Float32Array,
  predictions: Int32Array,
  count: number,
  run: Pick<ExampleImage, 'attack' | 'eps' | 'threat' | 'target'>,
  sampleDims: readonly number[],
): ExampleImage[] {
  const d = sampleDims.reduce((a, b) => a * b, 1);
  const round = (v: number) => Math.round(v * 1000) / 1000;
  return Array.from({ length: Math.min(count, data.count) }, (_, i) => ({
    index: i,
    label: data.labels[i],
    cleanPrediction: data.cleanPredictions?.[i] ?? -1,
    ...run,
    adversarialPrediction: predictions[i],
    shape: [...sampleDims],
    clean: Array.from(data.x.subarray(i * d, (i + 1) * d), round),
    adversarial: Array.from(adversarial.subarray(i * d, (i + 1) * d), round),
  }));
}

/**
 * Worker-thread lanes for the baseline attacks when config.lanes > 1 on the CPU, the threads split
 * between them (the default 0 threads means one per core). Recorded in the result's runtime.
 */
export async function startLanes(
  config: EvaluationConfig,
  model: ClassifierModel,
  result: RunResult,
  log: (line: string) => void,
): Promise<OnnxLanes | undefined> {
  const count = config.lanes ?? 1;
  if (count <= 1) return undefined;
  if (model.session.provider !== 'cpu') {
    log(`--lanes ${count} ignored: lanes split the CPU, and the model runs on ${model.session.provider}.`);
    return undefined;
  }
  const threads = Math.max(1, Math.floor((config.threads || availableParallelism()) / count));
  log(`Attacks run in ${count} lanes of ${threads} onnxruntime thread${threads === 1 ? '' : 's'} each.`);
  result.runtime.lanes = count;
  return OnnxLanes.start(laneInit(model, { ep: 'cpu', threads }), count);
}

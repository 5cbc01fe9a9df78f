/**
 * The attack stage: every attack of the plan at every epsilon against one classifier (the
 * undefended model, or the defended one under a threat model), as RunResult entries that keep each
 * sample's outcome, so that the worst case can be taken per sample.
 */
import { availableParallelism, freemem } from 'node:os';
import { parseAttackList, runAttack, type AttackConfig } from '../../attacks/run';
import { ATTACKS, type AttackName } from '../../attacks/registry';
import type { Classifier, Norm } from '../../attacks/types';
import { UserError } from '../../errors';
import { chooseLanes, type LaneChoice } from '../../runtime/lane-count';
import { OnnxLanes, type LaneInit } from '../../runtime/lanes';
import { encodeBits } from '../../../protocol/bitset';
import { largestUsefulEps } from '../../../protocol/eps';
import type { AttackPlan, EvaluationConfig } from '../../../protocol/experiment';
import type { AttackResult, ExampleImage, RunResult } from '../../../protocol/run-result';
import { isCancelled, CancelledError, type RunHooks } from '../context';
import type { PreparedData } from '../data';
import { argmaxRows, laneInit, type ClassifierModel } from '../model-session';
import { attackWork } from '../progress';

/** Input/adversarial pairs kept per attack at the largest epsilon, for the results view. */
export const EXAMPLES_PER_RUN = 4;
/** Pairs kept per threat model on the defended model (from its strongest attack there). */
export const EXAMPLES_PER_THREAT = 4;
/**
 * Values of adversarial inputs an attack keeps to choose its examples among the samples it fooled
 * (128 MiB of float32): all samples of ordinary test sets, the first samples of very large ones.
 */
const EXAMPLE_POOL_VALUES = 2 ** 25;

export interface AttackPlanOptions {
  seed: number;
  batchSize: number;
  /** Copies of the classifier that attack batches in parallel (see OnnxLanes). */
  lanes?: readonly Classifier[];
  target: 'baseline' | 'defended';
  /** Keep every adversarial input and let the caller add to the entry (rejection metrics). */
  inspect?(entry: AttackResult, adversarial: Float32Array, predictions: Int32Array): Promise<void>;
  /**
   * Samples whose clean and adversarial inputs go into the result's examples: `count` per attack
   * (only the strongest attack's, the one with the lowest robust accuracy at `onlyEps`, when
   * `strongestOnly`), chosen among the samples the attack fooled. `cleanPredictions`: the attacked
   * model's predictions without an attack (default: the undefended model's, data.cleanPredictions).
   */
  examples?: { count: number; into: ExampleImage[]; onlyEps?: number; cleanPredictions?: Int32Array; strongestOnly?: boolean };
  /** Each entry's per-sample predictions on the adversarial inputs (for the adversarial confusion matrix). */
  predictionsInto?: Map<AttackResult, Int32Array>;
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
  // Attacks keep inputs in [0, 1]: a larger ball holds every input, which is a typo, not a threat model.
  const bound = largestUsefulEps({ norm: plan.norm as Norm, sampleSize: classifier.sampleDims.reduce((a, b) => a * b, 1) });
  const tooLarge = plan.eps.find((e) => bound !== undefined && e > bound + 1e-12);
  if (tooLarge !== undefined)
    throw new UserError(
      `Epsilon ${tooLarge} (${plan.norm}) is larger than ${plan.norm === 'linf' ? 'the input range 1' : `√d = ${bound!.toFixed(2)}, the largest L2 distance between two inputs`}: inputs are scaled to [0, 1], and that ball holds every input.`,
      'Epsilons are on the [0, 1] scale: e.g. 8/255 ≈ 0.031 for L∞.',
    );
  const results: AttackResult[] = [];
  // Examples per attack, pushed once every attack ran (only the strongest's with strongestOnly).
  const examplesOf = new Map<AttackResult, ExampleImage[]>();
  const sampleSize = classifier.sampleDims.reduce((a, b) => a * b, 1);
  // Sequential (AutoAttack): per eps, each attack runs only on the samples no earlier one broke.
  const broken = new Map<number, Uint8Array>();
  for (const attack of names) {
    for (const eps of plan.eps) {
      const alreadyBroken = plan.sequential ? broken.get(eps) : undefined;
      const config = attackConfig(plan, attack, eps);
      const phase = `${options.target === 'defended' ? `${threat}: ` : ''}${attack} (${plan.norm}) at eps ${eps}`;
      hooks.onLog?.(`Attack ${phase}`);
      const wantExamples = options.examples && (options.examples.onlyEps === undefined || options.examples.onlyEps === eps) ? options.examples.count : 0;
      let metrics;
      hooks.work?.begin(attackWork(effectiveParams(attack, config)) * data.count);
      try {
        metrics = await runAttack(classifier, data, config, {
          batchSize: options.batchSize,
          seed: options.seed,
          signal: hooks.signal,
          lanes: options.lanes,
          alreadyBroken,
          // Every sample's adversarial input (up to a memory budget), to choose examples among the fooled ones.
          keepExamples: options.inspect ? data.count : wantExamples ? Math.max(wantExamples, Math.floor(EXAMPLE_POOL_VALUES / Math.max(sampleSize, 1))) : 0,
          onProgress: (done, total) => {
            hooks.work?.advance(done, total);
            hooks.onProgress?.({ phase: `Attack ${phase}`, done, total });
          },
        });
      } catch (e) {
        if (isCancelled(e)) throw new CancelledError();
        throw e;
      } finally {
        hooks.work?.end();
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
      options.predictionsInto?.set(entry, metrics.predictions);
      if (wantExamples && metrics.adversarialExamples) {
        examplesOf.set(
          entry,
          await exampleImages(
            classifier,
            data,
            metrics.adversarialExamples,
            metrics.predictions,
            wantExamples,
            { attack, eps, threat, target: options.target },
            options.examples!.cleanPredictions ?? data.cleanPredictions,
          ),
        );
      }
      results.push(entry);
      hooks.onLog?.(
        `  robust accuracy ${(100 * metrics.accuracy).toFixed(2)}%, success rate ${(100 * metrics.successRate).toFixed(2)}%, ${metrics.seconds.toFixed(1)} s`,
      );
    }
  }
  if (options.examples && examplesOf.size) {
    const kept = [...examplesOf.keys()];
    const strongest = kept.reduce((w, a) => (a.accuracy < w.accuracy ? a : w));
    for (const entry of options.examples.strongestOnly ? [strongest] : kept) options.examples.into.push(...examplesOf.get(entry)!);
  }
  return results;
}

/**
 * Which samples to show: the samples the attack fooled (classified correctly clean, wrongly after
 * the attack) among the first `pool`, in sample order; and the others, to fill up with only when
 * the attack fooled too few. Pure: exampleImages checks the stored inputs.
 */
export function exampleCandidates(
  labels: ArrayLike<number>,
  cleanPredictions: ArrayLike<number> | undefined,
  adversarialPredictions: ArrayLike<number>,
  pool: number,
): { fooled: number[]; others: number[] } {
  const fooled: number[] = [];
  const others: number[] = [];
  for (let i = 0; i < Math.min(pool, labels.length); i++) {
    const cleanCorrect = cleanPredictions === undefined || cleanPredictions[i] === labels[i];
    (cleanCorrect && adversarialPredictions[i] !== labels[i] ? fooled : others).push(i);
  }
  return { fooled, others };
}

/** One attack of the plan at one epsilon, as runAttack takes it. */
function attackConfig(plan: AttackPlan, attack: AttackName, eps: number): AttackConfig {
  return {
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
}

/** The work (gradient evaluations) of running `names` of the plan at every epsilon on `samples` samples: its budget, an upper bound. */
export function plannedWork(plan: AttackPlan, names: readonly AttackName[], samples: number): number {
  return names.reduce(
    (sum, attack) => sum + plan.eps.reduce((s2, eps) => s2 + attackWork(effectiveParams(attack, attackConfig(plan, attack, eps))) * samples, 0),
    0,
  );
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

/**
 * Example images of one attack: samples it fooled (exampleCandidates), their inputs rounded to keep
 * result files small. The rounded adversarial inputs are classified again and a sample that the
 * rounding turned back to its label is passed over, so that every example stored as fooled is
 * misclassified as stored; unfooled samples fill up only when too few were fooled (`fooled: false`).
 * `adversarial` holds the first samples' adversarial inputs (as many as it has room for).
 */
async function exampleImages(
  classifier: Classifier,
  data: PreparedData,
  adversarial: Float32Array,
  predictions: Int32Array,
  count: number,
  run: Pick<ExampleImage, 'attack' | 'eps' | 'threat' | 'target'>,
  cleanPredictions: Int32Array | undefined,
): Promise<ExampleImage[]> {
  const sampleDims = classifier.sampleDims;
  const d = sampleDims.reduce((a, b) => a * b, 1);
  const round = (v: number) => Math.round(v * 1000) / 1000;
  const pool = Math.floor(adversarial.length / Math.max(d, 1));
  const { fooled, others } = exampleCandidates(data.labels, cleanPredictions, predictions, pool);
  const out: ExampleImage[] = [];
  const add = async (indices: number[], fooledOnly: boolean) => {
    // In chunks of `count`: usually the first chunk is enough.
    for (let at = 0; at < indices.length && out.length < count; at += count) {
      const chunk = indices.slice(at, at + count);
      const rounded = chunk.map((i) => Array.from(adversarial.subarray(i * d, (i + 1) * d), round));
      const batch = new Float32Array(chunk.length * d);
      rounded.forEach((x, r) => batch.set(x, r * d));
      const stored = argmaxRows(await classifier.logits(batch, chunk.length), classifier.numClasses);
      chunk.forEach((i, r) => {
        const clean = cleanPredictions?.[i] ?? -1;
        const isFooled = clean === data.labels[i] && stored[r] !== data.labels[i];
        if (out.length >= count || (fooledOnly && !isFooled)) return;
        out.push({
          index: i,
          label: data.labels[i],
          cleanPrediction: clean,
          ...run,
          adversarialPrediction: stored[r],
          fooled: isFooled,
          shape: [...sampleDims],
          clean: Array.from(data.x.subarray(i * d, (i + 1) * d), round),
          adversarial: rounded[r],
        });
      });
    }
  };
  await add(fooled, true);
  await add(others, false);
  return out;
}

/** Bytes the lanes of one attack run may take together: half the free memory, at most 8 GiB. */
const LANE_MEMORY_BUDGET = () => Math.min(freemem() / 2, 8 * 2 ** 30);

/**
 * The lanes attacks use (config.lanes: a number, or 'auto', the default): picked from the cores,
 * the model's size and the batch within a memory budget (runtime/lane-count.ts). Recorded in the
 * result's runtime and logged.
 */
export function laneChoiceFor(
  config: EvaluationConfig,
  model: ClassifierModel,
  samples: number,
  result: RunResult,
  log: (line: string) => void,
  /** The bytes of what each lane opens, when more than the model (a defended model and its surrogate); asked only for 'auto'. */
  laneModelBytes = () => model.loaded.bytes.length,
): LaneChoice {
  const requested = config.lanes ?? 'auto';
  const choice = chooseLanes({
    requested,
    cores: availableParallelism(),
    threads: config.threads,
    provider: model.session.provider,
    modelBytes: requested === 'auto' ? laneModelBytes() : 0,
    shapes: model.graph.shapes,
    batchSize: model.fixedBatch ?? config.batchSize,
    samples,
    memoryBudget: LANE_MEMORY_BUDGET(),
  });
  if (choice.lanes > 1 && model.session.provider !== 'cpu') {
    log(`--lanes ${choice.lanes} ignored: lanes split the CPU, and the model runs on ${model.session.provider}.`);
    return { lanes: 1, threadsPerLane: config.threads, reason: `${choice.reason}; ignored: the model runs on ${model.session.provider}` };
  }
  result.runtime.lanes = choice.lanes;
  result.runtime.lanesChoice = choice.reason;
  if (choice.lanes > 1)
    log(
      `Attacks run in ${choice.lanes} lanes of ${choice.threadsPerLane} onnxruntime thread${choice.threadsPerLane === 1 ? '' : 's'} each (${choice.reason}).`,
    );
  return choice;
}

/** Worker-thread lanes from a lane description, or none when one lane was chosen. */
export async function startLanes(init: (threads: number) => LaneInit | Promise<LaneInit>, choice: LaneChoice): Promise<OnnxLanes | undefined> {
  if (choice.lanes <= 1) return undefined;
  return OnnxLanes.start(await init(choice.threadsPerLane), choice.lanes);
}

/** Lanes for the baseline attacks: copies of the undefended model. */
export function startModelLanes(model: ClassifierModel, choice: LaneChoice): Promise<OnnxLanes | undefined> {
  return startLanes((threads) => laneInit(model, { ep: 'cpu', threads }), choice);
}

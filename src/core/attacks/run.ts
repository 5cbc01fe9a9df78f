/**
 * Runs one attack at one epsilon over a whole data set, in batches, and reduces the per-sample
 * outcomes to the metrics a results file needs.
 */
import { UserError } from '../errors';
import { Rng } from '../random';
import { sizeOf } from '../tensor';
import { argmaxRow, checkLabels, checkThreatModel, gatherRows, keptRows, requireGradient, throwIfAborted } from './common';
import { ATTACK_FUNCTIONS, ATTACKS, parseAttackList, type AttackName } from './registry';
import type { AttackLoss, Classifier, Norm } from './types';

export { ATTACK_DEFAULTS, ATTACK_FUNCTIONS, ATTACK_NAMES, ATTACKS, parseAttackList, type AttackName } from './registry';

export interface AttackConfig {
  attack: AttackName;
  norm: Norm;
  eps: number;
  /** bim, pgd, mifgsm: gradient steps (per restart). */
  steps?: number;
  /** bim, pgd, mifgsm: step size; default stepSizeFactor · eps / steps. */
  stepSize?: number;
  /** pgd: restarts. */
  restarts?: number;
  /** pgd, spsa: random start in the eps-ball. */
  randomStart?: boolean;
  /** spsa, square: forward passes per sample. */
  queries?: number;
  /** Targeted attack towards the given labels, or towards a seeded random label ≠ the true one. */
  targeted?: { labels: Int32Array } | 'random';
  /** Valid input range [lo, hi] (default [0, 1]). */
  range?: readonly [number, number];
  /** mifgsm: momentum decay μ. */
  momentum?: number;
  /** fgsm, bim, pgd, mifgsm: loss to follow ('ce' or 'cw'). */
  loss?: AttackLoss;
  /** spsa: Rademacher directions per step, finite-difference size and Adam learning rate. */
  samplesPerStep?: number;
  delta?: number;
  lr?: number;
  /** square: initial fraction of pixels changed. */
  pInit?: number;
}

export interface AttackDataset {
  /** count samples, flattened and contiguous, in the classifier's sampleDims. */
  x: Float32Array;
  labels: Int32Array;
  count: number;
}

export interface RunAttackOptions {
  batchSize: number;
  /** Seeds random starts, probes, search and random targets; sample i uses its own stream, so results do not depend on batchSize. */
  seed: number;
  onProgress?(done: number, total: number): void;
  /** Checked between batches and steps; runAttack then rejects with CancelledError (core/cancel.ts). */
  signal?: AbortSignal;
  /** Return the adversarial inputs of the first k samples (clean inputs for samples not attacked). */
  keepExamples?: number;
  /**
   * Samples an earlier attack already broke (1 = broken): not attacked again, counted as fooled, so
   * that accuracy and success rate are cumulative over the sequence (AutoAttack runs its ensemble
   * this way). Their perturbation and cost are left out of the perturbation statistics.
   */
  alreadyBroken?: Uint8Array;
  /**
   * Independent copies of the classifier that can run at the same time (OnnxLanes): batches are
   * spread over them, one batch per lane at a time. Results are the same as with one classifier.
   */
  lanes?: readonly Classifier[];
}

export interface AttackMetrics {
  attack: AttackName;
  norm: Norm;
  eps: number;
  targeted: boolean;
  count: number;
  /** Share of all samples classified correctly before the attack. */
  cleanAccuracy: number;
  /** Robust accuracy: share of ALL samples still classified correctly after the attack (misclassified clean counts as not robust). */
  accuracy: number;
  /** Among samples classified correctly clean, the share the attack fooled (targeted: classified as the target); 0 when there are none. */
  successRate: number;
  /** Perturbation in the attack's norm over the samples it attacked (correct clean, not already broken); 0 when there are none. */
  meanPerturbation: number;
  maxPerturbation: number;
  /** Sum over samples of gradient evaluations and of forward queries spent by the attack (the clean forward pass not included). */
  gradientEvaluations: number;
  queries: number;
  seconds: number;
  /** Prediction per sample after the attack (the clean prediction for samples not attacked). */
  predictions: Int32Array;
  /** 1 where the sample is still classified correctly after the attack (0 for samples misclassified clean). */
  robust: Uint8Array;
  /**
   * Iterative attacks: how many samples were first broken at or after step `fromStep` of a run of
   * `steps` (the last fifth). Many late breaks mean the attack had not converged.
   */
  convergence?: { steps: number; fromStep: number; lateBroken: number };
  /** The target label per sample, when targeted. */
  targets?: Int32Array;
  /** keepExamples × sample size values, when asked. */
  adversarialExamples?: Float32Array;
}

export async function runAttack(classifier: Classifier, dataset: AttackDataset, config: AttackConfig, options: RunAttackOptions): Promise<AttackMetrics> {
  const started = performance.now();
  const attack = parseAttackList(String(config.attack))[0];
  const { x, labels, count } = dataset;
  const d = sizeOf(classifier.sampleDims);
  const k = classifier.numClasses;
  if (!Number.isInteger(count) || count < 0 || x.length !== count * d || labels.length !== count) {
    throw new RangeError(`runAttack: ${count} samples need ${count * d} values and ${count} labels; got ${x.length} and ${labels.length}`);
  }
  const batchSize = options.batchSize;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new UserError(`Invalid batch size ${batchSize}`, 'The batch size must be a whole number ≥ 1.');
  }
  const [lo, hi] = checkThreatModel(config.norm, config.eps, config.range);
  checkInRange(x, d, lo, hi);
  if (!ATTACKS[attack].gradientFree) requireGradient(classifier, ATTACKS[attack].title); // fail before any work
  const minClasses = ATTACKS[attack].minClasses ?? 2;
  if (k < minClasses)
    throw new UserError(`The ${ATTACKS[attack].title} needs a model with at least ${minClasses} classes; this one has ${k}.`, 'Use apgd-ce or pgd instead.');
  checkLabels(labels, k, 'label');

  const root = new Rng(options.seed);
  // Attacks that cannot be targeted (FAB-T picks its own targets) ignore the option.
  const targets = (ATTACKS[attack].uses as readonly string[]).includes('targeted')
    ? resolveTargets(config.targeted, labels, k, root.fork('targets'))
    : undefined;
  const rng = root.fork(`attack:${attack}`);
  const attackFn = ATTACK_FUNCTIONS[attack];
  const attackOptions = {
    norm: config.norm,
    eps: config.eps,
    range: [lo, hi] as const,
    signal: options.signal,
    loss: config.loss,
    steps: config.steps,
    stepSize: config.stepSize,
    restarts: config.restarts,
    randomStart: config.randomStart,
    momentum: config.momentum,
    queries: config.queries,
    samplesPerStep: config.samplesPerStep,
    delta: config.delta,
    lr: config.lr,
    pInit: config.pInit,
  };

  const predictions = new Int32Array(count);
  const keep = Math.max(0, Math.min(options.keepExamples ?? 0, count));
  const examples = keep > 0 ? Float32Array.from(x.subarray(0, keep * d)) : undefined;
  // Per-sample outcomes, reduced in sample order at the end: the same sums whatever order batches finish in.
  const attacked = new Uint8Array(count);
  const robust = new Uint8Array(count);
  const fooled = new Uint8Array(count);
  const perturbation = new Float64Array(count);
  const gradients = new Float64Array(count);
  const queryCounts = new Float64Array(count);
  const skipped = new Uint8Array(count);
  // Iterative attacks: samples first broken in the last fifth of a run's steps.
  const late = new Uint8Array(count);
  let stepsPerRun = 0;

  const attackBatch = async (engine: Classifier, start: number) => {
    const end = Math.min(count, start + batchSize);
    const n = end - start;
    const xb = x.slice(start * d, end * d);
    const logits = await engine.logits(xb, n);
    if (logits.length !== n * k) throw new Error(`classifier.logits returned ${logits.length} values for ${n} samples`);
    const correct: boolean[] = [];
    for (let r = 0; r < n; r++) {
      const i = start + r;
      predictions[i] = argmaxRow(logits, r, k);
      const clean = predictions[i] === labels[i];
      if (clean && options.alreadyBroken?.[i]) {
        attacked[i] = 1;
        fooled[i] = 1;
        skipped[i] = 1;
      }
      correct.push(clean && !options.alreadyBroken?.[i]);
    }
    // Samples misclassified clean are not attacked: they count as not robust.
    const idx = keptRows(correct);
    for (const r of idx) attacked[start + r] = 1;
    if (idx.length > 0 && config.eps === 0) {
      for (const r of idx) robust[start + r] = 1; // no perturbation is possible: the clean predictions stand
    } else if (idx.length > 0) {
      const ids = Int32Array.from(idx, (r) => start + r);
      const res = await attackFn(
        engine,
        gatherRows(xb, idx, d),
        gatherRows(labels, ids, 1),
        {
          ...attackOptions,
          targets: targets && gatherRows(targets, ids, 1),
          sampleIds: ids,
        },
        rng,
      );
      const norms = config.norm === 'linf' ? res.linf : res.l2;
      for (let r = 0; r < idx.length; r++) {
        const i = ids[r];
        predictions[i] = res.predictions[r];
        robust[i] = res.predictions[r] === labels[i] ? 1 : 0;
        fooled[i] = res.fooled[r];
        perturbation[i] = norms[r];
        gradients[i] = res.gradientEvaluations[r];
        if (res.steps) {
          stepsPerRun = res.steps;
          if (res.fooledAtStep![r] >= lateFrom(res.steps)) late[i] = 1;
        }
        queryCounts[i] = res.queries[r];
        if (examples && i < keep) examples.set(res.x.subarray(r * d, (r + 1) * d), i * d);
      }
    }
    return n;
  };

  // Each engine takes the next batch when it is free; the first error stops new batches.
  const engines = options.lanes && options.lanes.length > 0 ? options.lanes : [classifier];
  let nextStart = 0;
  let done = 0;
  let failed = false;
  await Promise.all(
    engines.map(async (engine) => {
      try {
        while (!failed && nextStart < count) {
          throwIfAborted(options.signal);
          const start = nextStart;
          nextStart += batchSize;
          const n = await attackBatch(engine, start); // not `done += await …`: that would read `done` before the await
          done += n;
          options.onProgress?.(done, count);
        }
      } catch (e) {
        failed = true;
        throw e;
      }
    }),
  );

  let cleanCorrect = 0,
    robustCount = 0,
    fooledCount = 0,
    sumPerturbation = 0,
    maxPerturbation = 0,
    gradientEvaluations = 0,
    queries = 0,
    ran = 0;
  for (let i = 0; i < count; i++) {
    if (!attacked[i]) continue;
    cleanCorrect++;
    robustCount += robust[i];
    fooledCount += fooled[i];
    if (skipped[i]) continue;
    ran++;
    sumPerturbation += perturbation[i];
    maxPerturbation = Math.max(maxPerturbation, perturbation[i]);
    gradientEvaluations += gradients[i];
    queries += queryCounts[i];
  }

  return {
    attack,
    norm: config.norm,
    eps: config.eps,
    targeted: !!targets,
    count,
    cleanAccuracy: count ? cleanCorrect / count : 0,
    accuracy: count ? robustCount / count : 0,
    successRate: cleanCorrect ? fooledCount / cleanCorrect : 0,
    meanPerturbation: ran ? sumPerturbation / ran : 0,
    maxPerturbation,
    gradientEvaluations,
    queries,
    seconds: (performance.now() - started) / 1000,
    predictions,
    robust,
    ...(stepsPerRun > 0 && { convergence: { steps: stepsPerRun, fromStep: lateFrom(stepsPerRun), lateBroken: late.reduce((a, b) => a + b, 0) } }),
    targets,
    adversarialExamples: examples,
  };
}

function checkInRange(x: Float32Array, d: number, lo: number, hi: number): void {
  const tol = 1e-6 * Math.max(1, hi - lo);
  for (let i = 0; i < x.length; i++) {
    if (!(x[i] >= lo - tol && x[i] <= hi + tol)) {
      throw new UserError(
        `Sample ${Math.floor(i / d)} has the value ${x[i]} outside the attack's input range [${lo}, ${hi}]`,
        "Set the attack's range to the model's input range, or check the preprocessing.",
      );
    }
  }
}

/** Target labels: given (checked), or a uniformly random label ≠ the true one from sample i's stream. */
function resolveTargets(targeted: AttackConfig['targeted'], labels: Int32Array, k: number, rng: Rng): Int32Array | undefined {
  if (!targeted) return undefined;
  if (k < 2) throw new UserError('A targeted attack needs a model with at least 2 classes');
  if (targeted === 'random') {
    return Int32Array.from(labels, (y, i) => (y + 1 + rng.fork(i).int(k - 1)) % k);
  }
  const t = targeted.labels;
  if (t.length !== labels.length) {
    throw new UserError(`${t.length} target labels for ${labels.length} samples`, 'Give one target label per sample.');
  }
  checkLabels(t, k, 'target label');
  for (let i = 0; i < t.length; i++) {
    if (t[i] === labels[i]) {
      throw new UserError(`Sample ${i} has its true label ${t[i]} as target`, 'A target must differ from the true label.');
    }
  }
  return t;
}

/** The first step of the last fifth of a run (the final evaluation, at step `steps`, included). */
function lateFrom(steps: number): number {
  return Math.ceil(0.8 * steps);
}

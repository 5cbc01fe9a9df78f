/**
 * The experiment runner: load model and data, run the clean evaluation (and, from later stages,
 * attacks and defenses), and assemble the RunResult. Front ends call this and render the result.
 */
import { parseAttackList, runAttack, type AttackConfig } from '../attacks/run';
import type { Norm } from '../attacks/types';
import { loadDataset, preprocess, inferInputSpec } from '../data';
import type { RawImageSet } from '../data/types';
import { UserError } from '../errors';
import { writeJsonAtomic } from '../fs-atomic';
import { TOOL_VERSION } from '../version';
import { OnnxClassifier } from '../runtime/onnx-classifier';
import { RUN_RESULT_SCHEMA_VERSION, type AttackResult, type DatasetDescription, type RunResult } from '../../protocol/run-result';
import type { AttackPlan, EvaluationConfig, Progress } from '../../protocol/experiment';
import { argmaxRows, classifierLogits, openClassifier, type ClassifierModel } from './model-session';

export interface RunHooks {
  onProgress?(p: Progress): void;
  onLog?(line: string): void;
  signal?: AbortSignal;
}

export class CancelledError extends Error {
  constructor() {
    super('The evaluation was cancelled.');
    this.name = 'CancelledError';
  }
}

export function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CancelledError();
}

/** Images preprocessed for the model, with labels. */
export interface PreparedData {
  x: Float32Array;
  labels: Int32Array;
  count: number;
  description: DatasetDescription;
}

export interface DataSource {
  data: string;
  labels?: string;
  limit?: number;
  preprocessing?: EvaluationConfig['preprocessing'];
}

/** Loads a labelled image set and preprocesses it for the model's input. */
export async function prepareData(source: DataSource, model: ClassifierModel): Promise<PreparedData> {
  const raw: RawImageSet = await loadDataset({ path: source.data, labelsPath: source.labels, limit: source.limit });
  if (!raw.labels) {
    throw new UserError(`The dataset '${source.data}' has no labels.`, 'Pass the labels file with --labels (IDX, .npy or a text file with one integer per line).');
  }
  const spec = inferInputSpec([1, ...model.sampleDims]);
  const scale = source.preprocessing?.scale ?? (raw.pixels instanceof Uint8Array ? 1 / 255 : 1);
  const x = preprocess(raw, spec, { ...source.preprocessing, scale });
  const badLabel = raw.labels.findIndex((l) => l < 0 || l >= model.numClasses);
  if (badLabel >= 0) {
    throw new UserError(
      `Label ${raw.labels[badLabel]} of sample ${badLabel} in '${source.labels ?? source.data}' is outside the model's ${model.numClasses} classes (0..${model.numClasses - 1}).`,
      'Check that the labels file belongs to this dataset and model.',
    );
  }
  return {
    x,
    labels: raw.labels,
    count: raw.count,
    description: {
      format: raw.info.format,
      path: source.data,
      labelsPath: source.labels,
      count: raw.count,
      sha256: raw.info.sha256,
      sampleShape: [...model.sampleDims],
      preprocessing: { scale, mean: source.preprocessing?.mean, std: source.preprocessing?.std, layout: spec.layout },
      classNames: raw.info.classNames,
    },
  };
}

export async function runEvaluation(config: EvaluationConfig, hooks: RunHooks = {}): Promise<RunResult> {
  const log = hooks.onLog ?? (() => {});
  const t0 = performance.now();
  hooks.onProgress?.({ phase: 'Loading model', done: 0, total: 1 });
  const model = await openClassifier(config.model, { ep: config.ep, threads: config.threads });
  try {
    if (model.session.fallbackReason) log(model.session.fallbackReason);
    log(`Model ${config.model}: input ${model.input} [${model.sampleDims}], ${model.numClasses} classes, on ${model.session.provider}`);
    const data = await prepareData(config, model);
    log(`Data ${config.data}: ${data.count} samples, sha256 ${data.description.sha256.slice(0, 12)}…`);
    const tLoaded = performance.now();
    throwIfCancelled(hooks.signal);

    const logits = await classifierLogits(model, data.x, data.count, config.batchSize, (done) => {
      hooks.onProgress?.({ phase: 'Clean accuracy', done, total: data.count });
      throwIfCancelled(hooks.signal);
    });
    const predictions = argmaxRows(logits, model.numClasses);
    const tClean = performance.now();
    const confusion = Array.from({ length: model.numClasses }, () => new Array<number>(model.numClasses).fill(0));
    let correct = 0;
    for (let i = 0; i < data.count; i++) {
      confusion[data.labels[i]][predictions[i]]++;
      if (predictions[i] === data.labels[i]) correct++;
    }
    const cleanSeconds = (tClean - tLoaded) / 1000;
    const result: RunResult = {
      schemaVersion: RUN_RESULT_SCHEMA_VERSION,
      tool: { name: 'robustness-lab', version: TOOL_VERSION },
      createdAt: new Date().toISOString(),
      model: { path: config.model, sha256: model.loaded.sha256, input: model.input, output: model.output, inputShape: model.graph.inputs[0].shape, opset: model.graph.opset },
      dataset: data.description,
      seed: config.seed,
      runtime: { executionProvider: model.session.provider, requested: config.ep, fallbackReason: model.session.fallbackReason, threads: config.threads, batchSize: model.fixedBatch ?? config.batchSize },
      timings: { loadSeconds: (tLoaded - t0) / 1000, cleanSeconds, totalSeconds: (performance.now() - t0) / 1000, cleanImagesPerSecond: data.count / Math.max(cleanSeconds, 1e-9) },
      clean: { accuracy: data.count ? correct / data.count : 0, correct, count: data.count, confusion },
    };
    if (config.attacks) {
      const classifier = new OnnxClassifier({
        model: model.loaded.model, shapes: model.graph.shapes, session: model.session, input: model.input, output: model.output,
        sampleDims: model.sampleDims, numClasses: model.numClasses, fixedBatch: model.fixedBatch, sessionOptions: { ep: config.ep, threads: config.threads },
      });
      try {
        result.attacks = await runAttackPlan(classifier, data, config.attacks, 'whitebox', { seed: config.seed, batchSize: model.fixedBatch ?? config.batchSize }, hooks);
      } finally {
        await classifier.release();
      }
      result.timings.totalSeconds = (performance.now() - t0) / 1000;
    }
    throwIfCancelled(hooks.signal);
    if (config.out) writeJsonAtomic(config.out, result);
    return result;
  } finally {
    await model.session.release();
  }
}

/** Every attack of the plan at every epsilon, as result entries with the given threat model. */
export async function runAttackPlan(
  classifier: OnnxClassifier,
  data: PreparedData,
  plan: AttackPlan,
  threat: string,
  options: { seed: number; batchSize: number },
  hooks: RunHooks,
): Promise<AttackResult[]> {
  const names = parseAttackList(plan.names.join(','));
  const badEps = plan.eps.find((e) => !(e >= 0) || !Number.isFinite(e));
  if (badEps !== undefined || plan.eps.length === 0) throw new UserError(`Epsilons must be non-negative numbers, got [${plan.eps.join(', ')}].`, 'Pass e.g. --eps 0.01,0.02,0.05');
  const results: AttackResult[] = [];
  for (const attack of names) {
    for (const eps of plan.eps) {
      const config: AttackConfig = {
        attack, eps, norm: plan.norm as Norm, steps: plan.steps, stepSize: plan.stepSize, restarts: plan.restarts,
        randomStart: plan.randomStart, queries: plan.queries, loss: plan.loss, targeted: plan.targeted ? 'random' : undefined,
      };
      const phase = `${attack} (${plan.norm}) at eps ${eps}`;
      hooks.onLog?.(`Attack ${phase}`);
      let metrics;
      try {
        metrics = await runAttack(classifier, data, config, {
          batchSize: options.batchSize, seed: options.seed, signal: hooks.signal,
          onProgress: (done, total) => hooks.onProgress?.({ phase: `Attack ${phase}`, done, total }),
        });
      } catch (e) {
        if ((e as Error).name === 'AbortError') throw new CancelledError();
        throw e;
      }
      const params = Object.fromEntries(Object.entries(config).filter(([k, v]) => v !== undefined && !['attack', 'eps', 'norm'].includes(k)));
      results.push({
        attack, threat, norm: metrics.norm, eps, accuracy: metrics.accuracy, successRate: metrics.successRate,
        meanPerturbation: metrics.meanPerturbation, maxPerturbation: metrics.maxPerturbation,
        gradientEvaluations: metrics.gradientEvaluations, queries: metrics.queries, seconds: metrics.seconds, params,
      });
      hooks.onLog?.(`  robust accuracy ${(100 * metrics.accuracy).toFixed(2)}%, success rate ${(100 * metrics.successRate).toFixed(2)}%, ${metrics.seconds.toFixed(1)} s`);
    }
  }
  return results;
}

/**
 * The experiment runner: load model and data, run the clean evaluation (and, from later stages,
 * attacks and defenses), and assemble the RunResult. Front ends call this and render the result.
 */
import { availableParallelism } from 'node:os';
import { parseAttackList, runAttack, type AttackConfig } from '../attacks/run';
import type { AttackName, Classifier, Norm } from '../attacks/types';
import { loadDataset, preprocess, inferInputSpec } from '../data';
import type { RawImageSet } from '../data/types';
import { UserError } from '../errors';
import { writeJsonAtomic } from '../fs-atomic';
import { TOOL_VERSION } from '../version';
import { checkLayer } from '../defenses/fit';
import type { DefendedClassifier } from '../defenses/threats';
import { encodeModel } from '../onnx/proto';
import { OnnxLanes } from '../runtime/lanes';
import { OnnxClassifier } from '../runtime/onnx-classifier';
import { runDefense } from './defended-run';
import { runFooling } from './fooling-run';
import { RUN_RESULT_SCHEMA_VERSION, type AttackResult, type DatasetDescription, type ExampleImage, type RunResult } from '../../protocol/run-result';
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
  /** The undefended model's clean predictions, once computed. */
  cleanPredictions?: Int32Array;
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
    data.cleanPredictions = predictions;
    const tClean = performance.now();
    const cleanSeconds = (tClean - tLoaded) / 1000;
    const result: RunResult = {
      schemaVersion: RUN_RESULT_SCHEMA_VERSION,
      tool: { name: 'robustness-lab', version: TOOL_VERSION },
      createdAt: new Date().toISOString(),
      model: { path: config.model, sha256: model.loaded.sha256, input: model.input, output: model.output, inputShape: model.graph.inputs[0].shape, opset: model.graph.opset },
      dataset: data.description,
      seed: config.seed,
      runtime: { executionProvider: model.session.provider, requested: config.ep, fallbackReason: model.session.fallbackReason, threads: config.threads, batchSize: model.fixedBatch ?? config.batchSize },
      timings: { loadSeconds: (tLoaded - t0) / 1000, cleanSeconds, totalSeconds: 0, cleanImagesPerSecond: data.count / Math.max(cleanSeconds, 1e-9) },
      clean: accuracyAndConfusion(predictions, data.labels, model.numClasses),
    };
    const classifier = new OnnxClassifier({
      model: model.loaded.model, shapes: model.graph.shapes, session: model.session, input: model.input, output: model.output,
      sampleDims: model.sampleDims, numClasses: model.numClasses, fixedBatch: model.fixedBatch, sessionOptions: { ep: config.ep, threads: config.threads },
    });
    let defended: DefendedClassifier | undefined;
    try {
      if (config.defense) checkLayer(model.graph, config.defense.layer); // before any attack runs
      if (config.attacks) {
        const examples: ExampleImage[] = [];
        const lanes = await startLanes(config, model, result, log);
        try {
          result.attacks = await runAttackPlan(classifier, data, config.attacks, 'whitebox', {
            seed: config.seed, batchSize: model.fixedBatch ?? config.batchSize, target: 'baseline', lanes: lanes?.lanes,
            examples: { count: EXAMPLES_PER_RUN, into: examples, onlyEps: Math.max(...config.attacks.eps) },
          }, hooks);
        } finally {
          await lanes?.release();
        }
        result.examples = examples;
      }
      if (config.defense) defended = await runDefense(config, model, classifier, data, result, hooks);
      if (config.fooling) await runFooling(config, classifier, defended, result, hooks);
    } finally {
      await defended?.release();
      await classifier.release();
    }
    result.timings.totalSeconds = (performance.now() - t0) / 1000;
    throwIfCancelled(hooks.signal);
    if (config.out) writeJsonAtomic(config.out, result);
    return result;
  } finally {
    await model.session.release();
  }
}

/**
 * Worker-thread lanes for the baseline attacks when config.lanes > 1 on the CPU, the threads split
 * between them (the default 0 threads means one per core). Recorded in the result's runtime.
 */
async function startLanes(config: EvaluationConfig, model: ClassifierModel, result: RunResult, log: (line: string) => void): Promise<OnnxLanes | undefined> {
  const count = config.lanes ?? 1;
  if (count <= 1) return undefined;
  if (model.session.provider !== 'cpu') {
    log(`--lanes ${count} ignored: lanes split the CPU, and the model runs on ${model.session.provider}.`);
    return undefined;
  }
  const threads = Math.max(1, Math.floor((config.threads || availableParallelism()) / count));
  log(`Attacks run in ${count} lanes of ${threads} onnxruntime thread${threads === 1 ? '' : 's'} each.`);
  result.runtime.lanes = count;
  return OnnxLanes.start({
    model: encodeModel(model.loaded.model), shapes: [...model.graph.shapes], input: model.input, output: model.output,
    sampleDims: [...model.sampleDims], numClasses: model.numClasses, fixedBatch: model.fixedBatch, sessionOptions: { ep: 'cpu', threads },
  }, count);
}

/** Input/adversarial pairs kept per attack at the largest epsilon, for the results view. */
const EXAMPLES_PER_RUN = 4;

export function accuracyAndConfusion(predictions: Int32Array, labels: Int32Array, classes: number): RunResult['clean'] {
  const confusion = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    confusion[labels[i]][predictions[i]]++;
    if (predictions[i] === labels[i]) correct++;
  }
  return { accuracy: labels.length ? correct / labels.length : 0, correct, count: labels.length, confusion };
}

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
export async function runAttackPlan(classifier: Classifier, data: PreparedData, plan: AttackPlan, threat: string, options: AttackPlanOptions, hooks: RunHooks): Promise<AttackResult[]> {
  const names = parseAttackList(plan.names.join(','));
  return runAttacks(classifier, data, plan, names, threat, options, hooks);
}

export async function runAttacks(classifier: Classifier, data: PreparedData, plan: AttackPlan, names: AttackName[], threat: string, options: AttackPlanOptions, hooks: RunHooks): Promise<AttackResult[]> {
  const badEps = plan.eps.find((e) => !(e >= 0) || !Number.isFinite(e));
  if (badEps !== undefined || plan.eps.length === 0) throw new UserError(`Epsilons must be non-negative numbers, got [${plan.eps.join(', ')}].`, 'Pass e.g. --eps 0.01,0.02,0.05');
  const results: AttackResult[] = [];
  for (const attack of names) {
    for (const eps of plan.eps) {
      const config: AttackConfig = {
        attack, eps, norm: plan.norm as Norm, steps: plan.steps, stepSize: plan.stepSize, restarts: plan.restarts,
        randomStart: plan.randomStart, queries: plan.queries, loss: plan.loss, targeted: plan.targeted ? 'random' : undefined,
      };
      const phase = `${options.target === 'defended' ? `${threat}: ` : ''}${attack} (${plan.norm}) at eps ${eps}`;
      hooks.onLog?.(`Attack ${phase}`);
      const wantExamples = options.examples && (options.examples.onlyEps === undefined || options.examples.onlyEps === eps) ? options.examples.count : 0;
      let metrics;
      try {
        metrics = await runAttack(classifier, data, config, {
          batchSize: options.batchSize, seed: options.seed, signal: hooks.signal, lanes: options.lanes,
          keepExamples: options.inspect ? data.count : wantExamples,
          onProgress: (done, total) => hooks.onProgress?.({ phase: `Attack ${phase}`, done, total }),
        });
      } catch (e) {
        if ((e as Error).name === 'AbortError') throw new CancelledError();
        throw e;
      }
      const params = Object.fromEntries(Object.entries(config).filter(([k, v]) => v !== undefined && !['attack', 'eps', 'norm'].includes(k)));
      const entry: AttackResult = {
        target: options.target, attack, threat, norm: metrics.norm, eps, accuracy: metrics.accuracy, successRate: metrics.successRate,
        meanPerturbation: metrics.meanPerturbation, maxPerturbation: metrics.maxPerturbation,
        gradientEvaluations: metrics.gradientEvaluations, queries: metrics.queries, seconds: metrics.seconds, params,
      };
      if (options.inspect && metrics.adversarialExamples) await options.inspect(entry, metrics.adversarialExamples, metrics.predictions);
      if (wantExamples && metrics.adversarialExamples) {
        options.examples!.into.push(...exampleImages(data, metrics.adversarialExamples, metrics.predictions, wantExamples, { attack, eps, threat, target: options.target }, classifier.sampleDims));
      }
      results.push(entry);
      hooks.onLog?.(`  robust accuracy ${(100 * metrics.accuracy).toFixed(2)}%, success rate ${(100 * metrics.successRate).toFixed(2)}%, ${metrics.seconds.toFixed(1)} s`);
    }
  }
  return results;
}

/** The first samples' clean and adversarial inputs, rounded to keep result files small. */
function exampleImages(data: PreparedData, adversarial: Float32Array, predictions: Int32Array, count: number, run: Pick<ExampleImage, 'attack' | 'eps' | 'threat' | 'target'>, sampleDims: readonly number[]): ExampleImage[] {
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

/**
 * The experiment runner: load model and data, run the clean evaluation (and, from later stages,
 * attacks and defenses), and assemble the RunResult. Front ends call this and render the result.
 */
import { loadDataset, preprocess, inferInputSpec } from '../data';
import type { RawImageSet } from '../data/types';
import { UserError } from '../errors';
import { writeJsonAtomic } from '../fs-atomic';
import { TOOL_VERSION } from '../version';
import { RUN_RESULT_SCHEMA_VERSION, type DatasetDescription, type RunResult } from '../../protocol/run-result';
import type { EvaluationConfig, Progress } from '../../protocol/experiment';
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

export async function prepareData(config: EvaluationConfig, model: ClassifierModel): Promise<PreparedData> {
  const raw: RawImageSet = await loadDataset({ path: config.data, labelsPath: config.labels, limit: config.limit });
  if (!raw.labels) {
    throw new UserError(`The dataset '${config.data}' has no labels.`, 'Pass the labels file with --labels (IDX, .npy or a text file with one integer per line).');
  }
  const spec = inferInputSpec([1, ...model.sampleDims]);
  const scale = config.preprocessing?.scale ?? (raw.pixels instanceof Uint8Array ? 1 / 255 : 1);
  const x = preprocess(raw, spec, { ...config.preprocessing, scale });
  const badLabel = raw.labels.findIndex((l) => l < 0 || l >= model.numClasses);
  if (badLabel >= 0) {
    throw new UserError(
      `Label ${raw.labels[badLabel]} of sample ${badLabel} in '${config.labels ?? config.data}' is outside the model's ${model.numClasses} classes (0..${model.numClasses - 1}).`,
      'Check that the labels file belongs to this dataset and model.',
    );
  }
  return {
    x,
    labels: raw.labels,
    count: raw.count,
    description: {
      format: raw.info.format,
      path: config.data,
      labelsPath: config.labels,
      count: raw.count,
      sha256: raw.info.sha256,
      sampleShape: [...model.sampleDims],
      preprocessing: { scale, mean: config.preprocessing?.mean, std: config.preprocessing?.std, layout: spec.layout },
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
    throwIfCancelled(hooks.signal);
    if (config.out) writeJsonAtomic(config.out, result);
    return result;
  } finally {
    await model.session.release();
  }
}

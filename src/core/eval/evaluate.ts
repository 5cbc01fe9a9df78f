/**
 * The experiment runner: load the model and data, then run the stages the config asks for (clean,
 * attacks, defense, fooling) and assemble the RunResult. The stages live in stages/; this file only
 * orders them. Front ends call runEvaluation and render the result.
 */
import { parseAttackList } from '../attacks/registry';
import { resolveStrength } from '../attacks/strength';
import { checkLayer } from '../defenses/fit';
import { UserError } from '../errors';
import type { DefendedClassifier } from '../defenses/threats';
import { writeJsonAtomic } from '../fs-atomic';
import { TOOL_VERSION } from '../version';
import { THREAT_MODELS, type EvaluationConfig } from '../../protocol/experiment';
import { formatEta } from '../../protocol/eta';
import { RUN_RESULT_SCHEMA_VERSION, type AttackResult, type ExampleImage, type RunResult } from '../../protocol/run-result';
import { throwIfCancelled, type RunHooks } from './context';
import { prepareData } from './data';
import { accuracyAndConfusion, correctFlags } from './metrics';
import { argmaxRows, classifierLogits, onnxClassifier, openClassifier, type ClassifierModel } from './model-session';
import { WorkTracker } from './progress';
import { EXAMPLES_PER_RUN, laneChoiceFor, plannedWork, runAttackPlan, startModelLanes } from './stages/attacks';
import { classifierChecks, forwardChecks, resultChecks } from './stages/checks';
import { defendedWork, runDefense } from './stages/defense';
import { runFooling } from './stages/fooling';
import { runSweep, sweepLayerChoices } from './sweep';
import { prepareUnknown, runOpenSet } from './stages/open-set';
import { measureIsometry } from '../analysis/isometry';
import { adversarialConfusion, perClassAccuracy, unionWorstCases } from './worst-case';

export { CancelledError, throwIfCancelled, type RunHooks } from './context';
export { prepareData, type DataSource, type PreparedData } from './data';
export { accuracyAndConfusion } from './metrics';

/**
 * The attacks' budget, before any runs: the undefended model's attacks and the defended model's
 * under its threat models (a sweep: once per layer), calibrated by the clean pass's speed.
 */
function planWork(
  config: EvaluationConfig,
  model: ClassifierModel,
  samples: number,
  cleanSeconds: number,
  work: WorkTracker,
  log: (line: string) => void,
): void {
  const plan = config.attacks!;
  const baseline = plannedWork(plan, parseAttackList(plan.names.join(',')), samples);
  const layers = config.sweep ? sweepLayerChoices(model.graph, config.sweep.layers).length : 1;
  const defended = config.defense ? layers * defendedWork(plan, samples, config.defense.threats ?? THREAT_MODELS) : 0;
  work.plan(baseline + defended);
  work.calibrate(samples / Math.max(cleanSeconds, 1e-9));
  const eta = work.overall().etaSeconds;
  log(
    `Attack budget: ${Math.round(baseline + defended).toLocaleString('en-US')} gradient evaluations (an upper bound: attacks stop early on broken samples)${eta !== undefined ? `; at the clean pass's speed, ${formatEta(eta).replace(' left', '')}` : ''}.`,
  );
}

export async function runEvaluation(requested: EvaluationConfig, given: RunHooks = {}): Promise<RunResult> {
  const config: EvaluationConfig = requested.attacks ? { ...requested, attacks: resolveStrength(requested.attacks) } : requested;
  if (config.attacks) parseAttackList(config.attacks.names.join(',')); // unknown names fail before any work
  // Every progress report carries the whole run's progress and the estimate of the time left.
  const work = given.work ?? new WorkTracker();
  const hooks: RunHooks = { ...given, work, onProgress: given.onProgress && ((p) => given.onProgress!({ ...p, overall: work.overall() })) };
  const log = hooks.onLog ?? (() => {});
  const t0 = performance.now();
  hooks.onProgress?.({ phase: 'Loading model', done: 0, total: 1 });
  const model = await openClassifier(config.model, { ep: config.ep, threads: config.threads }, { allowNonFiniteWeights: config.allowNonFiniteWeights });
  try {
    if (model.session.fallbackReason) log(model.session.fallbackReason);
    log(`Model ${config.model}: input ${model.input} [${model.sampleDims}], ${model.numClasses} classes, on ${model.session.provider}`);
    const data = await prepareData(config, model);
    log(`Data ${config.data}: ${data.count} samples, sha256 ${data.description.sha256.slice(0, 12)}…`);
    // Loaded before any attack runs, so that a bad unknown set fails at once.
    const unknown = config.unknown ? await prepareUnknown(config, model) : undefined;
    if (unknown) log(`Unknown inputs ${unknown.description.path}: ${unknown.count} samples`);
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
    if (config.attacks) planWork(config, model, data.count, cleanSeconds, work, log);
    const result: RunResult = {
      schemaVersion: RUN_RESULT_SCHEMA_VERSION,
      tool: { name: 'robustness-lab', version: TOOL_VERSION },
      createdAt: new Date().toISOString(),
      ...(config.experiment && { experiment: config.experiment }),
      model: {
        path: config.model,
        sha256: model.loaded.sha256,
        input: model.input,
        output: model.output,
        logits: model.logits,
        inputShape: model.graph.inputs[0].shape,
        opset: model.graph.opset,
      },
      dataset: data.description,
      seed: config.seed,
      runtime: {
        executionProvider: model.session.provider,
        requested: config.ep,
        fallbackReason: model.session.fallbackReason,
        threads: config.threads,
        batchSize: model.fixedBatch ?? config.batchSize,
      },
      timings: { loadSeconds: (tLoaded - t0) / 1000, cleanSeconds, totalSeconds: 0, cleanImagesPerSecond: data.count / Math.max(cleanSeconds, 1e-9) },
      clean: accuracyAndConfusion(predictions, data.labels, model.numClasses),
      ...(config.attacks && { attackPlan: config.attacks }),
    };
    if (config.isometry) {
      hooks.onProgress?.({ phase: 'Isometry per layer', done: 0, total: 1 });
      result.isometry = await measureIsometry(
        { model, x: data.x, labels: data.labels, count: data.count },
        { ...config.isometry, seed: config.isometry.seed ?? config.seed },
        {
          batchSize: config.batchSize,
          threads: config.threads,
          ep: config.ep,
          signal: hooks.signal,
          onLog: log,
          onBatch: (done, total) => hooks.onProgress?.({ phase: 'Isometry per layer', done, total }),
        },
      );
      log(`Isometry at ${result.isometry.layers.length} insertion points in ${result.isometry.seconds.toFixed(1)} s`);
    }
    const classifier = onnxClassifier(model, { ep: config.ep, threads: config.threads });
    let defended: DefendedClassifier | undefined;
    try {
      // Before any attack runs. A sweep's defense goes at each of its layers instead of its own.
      const sweepLayers = config.sweep ? sweepLayerChoices(model.graph, config.sweep.layers) : undefined;
      if (config.sweep && !config.defense)
        throw new UserError('A layer sweep needs a defense to insert at each layer.', 'Add --defense lesci --reference <images>.');
      if (config.defense && !sweepLayers) checkLayer(model.graph, config.defense.layer);
      if (config.attacks) {
        const examples: ExampleImage[] = [];
        const adversarialPredictions = new Map<AttackResult, Int32Array>();
        const lanes = await startModelLanes(model, laneChoiceFor(config, model, data.count, result, log));
        try {
          result.attacks = await runAttackPlan(
            classifier,
            data,
            config.attacks,
            'whitebox',
            {
              seed: config.seed,
              batchSize: model.fixedBatch ?? config.batchSize,
              target: 'baseline',
              lanes: lanes?.lanes,
              examples: { count: EXAMPLES_PER_RUN, into: examples, onlyEps: Math.max(...config.attacks.eps) },
              predictionsInto: adversarialPredictions,
            },
            hooks,
          );
        } finally {
          await lanes?.release();
        }
        result.worstCase = unionWorstCases(result.attacks, correctFlags(predictions, data.labels));
        result.perClass = perClassAccuracy(result.attacks, data.labels, predictions, model.numClasses);
        const confusion = adversarialConfusion(result.attacks, adversarialPredictions, data.labels, predictions, model.numClasses);
        if (confusion) result.adversarialConfusion = confusion;
        hooks.onProgress?.({ phase: 'Checks on the undefended model', done: 0, total: 1 });
        result.checks = [
          await forwardChecks(classifier, data, 'baseline', model.fixedBatch ?? config.batchSize),
          ...(await classifierChecks(classifier, data, 'baseline', 'whitebox', {
            seed: config.seed,
            batchSize: model.fixedBatch ?? config.batchSize,
            trueGradient: true,
            signal: hooks.signal,
          })),
          ...resultChecks(result.attacks, 'baseline', { count: data.count, cleanAccuracy: result.clean.accuracy }),
        ];
        result.examples = examples;
      }
      if (sweepLayers) await runSweep(config, model, classifier, data, result, hooks, sweepLayers);
      else if (config.defense) defended = await runDefense(config, model, classifier, data, result, hooks);
      if (config.fooling) await runFooling(config, classifier, defended, result, hooks);
      if (unknown) await runOpenSet(config, model, unknown, data, logits, defended, result, hooks);
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

/**
 * The defended half of an evaluation: fit (or reuse) the defense, measure the defended model on
 * clean data, attack it under every threat model, and reduce it all to the worst case per epsilon
 * and a verdict against the undefended baseline.
 */
import { ATTACKS, parseAttackList, type AttackName } from '../../attacks/registry';
import { softmaxRows } from '../../attacks/fooling';
import { thresholdTable } from '../../defenses/dae';
import { defaultCacheDir, fitDefense } from '../../defenses/fit';
import { referenceActivations, type ReferenceActivations } from '../../defenses/activations';
import type { AdaptiveContext } from '../../defenses/spec';
import { adaptiveVariantThreats, DefendedClassifier, threatClassifier } from '../../defenses/threats';
import type { OnnxClassifier } from '../../runtime/onnx-classifier';
import { defenseParams, THREAT_MODELS, threatModelOf, type AttackPlan, type EvaluationConfig, type ThreatModel } from '../../../protocol/experiment';
import type { AttackResult, CheckResult, DefenseResult, RunResult, WorstCase } from '../../../protocol/run-result';
import { throwIfCancelled, type RunHooks } from '../context';
import { prepareData, type PreparedData } from '../data';
import { accuracyAndConfusion, correctFlags } from '../metrics';
import { argmaxRows, defendedParts, type ClassifierModel } from '../model-session';
import { adversarialConfusion, BROKEN_MARGIN, perClassAccuracy, unionWorstCases } from '../worst-case';
import { classifierChecks, forwardChecks, resultChecks } from './checks';
import { EXAMPLES_PER_THREAT, laneChoiceFor, plannedWork, runAttacks, startLanes } from './attacks';

/** The paper's thresholds on the top scaled probability (dAE). */
const DEFAULT_THRESHOLDS = [0, 0.9, 0.99];
/** Square Attack's budget when the gradient-free threat is asked for but no gradient-free attack is listed. */
const IMPLIED_SQUARE_QUERIES = 500;

/** Scores, predictions and acceptance of the defended model over a batch set. */
async function defendedOutputs(defended: DefendedClassifier, x: Float32Array, count: number, batchSize: number) {
  const classes = defended.numClasses;
  const d = defended.sampleDims.reduce((a, b) => a * b, 1);
  const scores = new Float32Array(count * classes);
  const accepted = defended.defended.accepted ? new Uint8Array(count) : undefined;
  const projected = defended.defended.projected ? new Uint8Array(count) : undefined;
  for (let start = 0; start < count; start += batchSize) {
    const n = Math.min(batchSize, count - start);
    const out = await defended.run(x.subarray(start * d, (start + n) * d), n);
    scores.set(out[defended.defended.scores].data as Float32Array, start * classes);
    if (accepted) accepted.set(Array.from(out[defended.defended.accepted!].data as ArrayLike<number | boolean>, Number), start);
    if (projected) projected.set(Array.from(out[defended.defended.projected!].data as ArrayLike<number | boolean>, Number), start);
  }
  return { scores, predictions: argmaxRows(scores, classes), accepted, projected };
}

const share = (flags: Uint8Array) => flags.reduce((a, b) => a + b, 0) / Math.max(flags.length, 1);

function rejectionStats(predictions: Int32Array, labels: Int32Array, accepted: Uint8Array) {
  let acceptedCount = 0,
    acceptedCorrect = 0;
  for (let i = 0; i < labels.length; i++) {
    if (!accepted[i]) continue;
    acceptedCount++;
    if (predictions[i] === labels[i]) acceptedCorrect++;
  }
  return {
    rejectionRate: 1 - acceptedCount / Math.max(labels.length, 1),
    acceptedAccuracy: acceptedCount ? acceptedCorrect / acceptedCount : null,
    accuracyOverAll: acceptedCorrect / Math.max(labels.length, 1),
  };
}

export async function runDefense(
  config: EvaluationConfig,
  model: ClassifierModel,
  undefended: OnnxClassifier,
  data: PreparedData,
  result: RunResult,
  hooks: RunHooks,
): Promise<DefendedClassifier> {
  const plan = config.defense!;
  const log = hooks.onLog ?? (() => {});
  const batchSize = model.fixedBatch ?? config.batchSize;
  hooks.onProgress?.({ phase: 'Loading the reference set', done: 0, total: 1 });
  const reference = await prepareData(
    {
      data: plan.reference,
      labels: plan.referenceLabels,
      limit: plan.referenceLimit,
      preprocessing: config.preprocessing,
      maxDecompressedBytes: config.maxDecompressedBytes,
      allowNonFinite: config.allowNonFinite,
    },
    model,
  );
  hooks.onProgress?.({ phase: `Fitting the ${plan.kind} defense at ${plan.layer}`, done: 0, total: 1 });
  const fit = await fitDefense(plan, {
    loaded: model.loaded,
    graph: model.graph,
    reference: { x: reference.x, labels: reference.labels, count: reference.count, sha256: reference.description.sha256 },
    seed: config.seed,
    cacheDir: config.cacheDir ?? defaultCacheDir(config.model),
    threads: config.threads,
    batchSize,
    signal: hooks.signal,
    log,
    onProgress: (done, total) => hooks.onProgress?.({ phase: `Fitting the ${plan.kind} defense at ${plan.layer}: epoch`, done, total }),
  });
  throwIfCancelled(hooks.signal);
  const defended = new DefendedClassifier(defendedParts(model, fit.stage, { ep: config.ep, threads: config.threads }, undefended));

  hooks.onProgress?.({ phase: 'Clean accuracy of the defended model', done: 0, total: data.count });
  const clean = await defendedOutputs(defended, data.x, data.count, batchSize);
  const cleanStats = accuracyAndConfusion(clean.predictions, data.labels, model.numClasses);
  const section: DefenseResult = {
    kind: plan.kind,
    layer: plan.layer,
    placement: fit.stage.placement,
    scores: fit.stage.scores,
    params: fit.stage.params,
    reference: { path: plan.reference, labelsPath: plan.referenceLabels, count: reference.count, sha256: reference.description.sha256 },
    fitSeconds: fit.fitSeconds,
    cached: fit.cached,
    clean: { accuracy: cleanStats.accuracy, baselineAccuracy: result.clean.accuracy, confusion: cleanStats.confusion },
    threats: {},
    worstCase: [],
    verdict: 'not attacked',
  };
  if (clean.projected) section.clean.projectionRate = share(clean.projected);
  if (clean.accepted) Object.assign(section.clean, rejectionStats(clean.predictions, data.labels, clean.accepted));
  const thresholds = (defenseParams(plan).thresholds as number[] | undefined) ?? DEFAULT_THRESHOLDS;
  if (fit.stage.scores === 'probabilities') {
    const baselineScores = softmaxRows(await undefended.logits(data.x, data.count), model.numClasses);
    section.thresholds = { baseline: thresholdTable(baselineScores, data.labels, thresholds), defended: thresholdTable(clean.scores, data.labels, thresholds) };
  }
  log(
    `Defended clean accuracy ${(100 * section.clean.accuracy).toFixed(2)}% (baseline ${(100 * result.clean.accuracy).toFixed(2)}%)${section.clean.projectionRate !== undefined ? `, projection rate ${(100 * section.clean.projectionRate).toFixed(1)}%` : ''}`,
  );

  if (config.attacks) {
    const names = parseAttackList(config.attacks.names.join(','));
    const threats = plan.threats ?? [...THREAT_MODELS];
    // The adaptive threat model runs the defense's main adaptive attack and its variants.
    const runThreats: (ThreatModel | `adaptive/${string}`)[] = threats.flatMap((t) =>
      t === 'adaptive' ? ['adaptive' as const, ...adaptiveVariantThreats(fit.stage)] : [t],
    );
    const defendedEntries: AttackResult[] = [];
    const adversarialPredictions = new Map<AttackResult, Int32Array>();
    const checks: CheckResult[] = [await forwardChecks(defended, data, 'defended', batchSize)];
    let ownActivations: Promise<ReferenceActivations> | undefined;
    const adaptiveContext: AdaptiveContext = {
      threads: config.threads,
      attackerActivations: () =>
        (ownActivations ??= referenceActivations({ loaded: model.loaded, graph: model.graph }, plan.layer, data.x, data.count, data.labels, {
          batchSize,
          threads: config.threads,
          ep: 'cpu',
        })),
    };
    // The adaptive variants' work was not known before the fit.
    hooks.work?.plan(
      defendedWork(
        config.attacks,
        data.count,
        runThreats.filter((t) => t.startsWith('adaptive/')),
      ),
    );
    // A lane opens the defended model (to judge) and a gradient model as large again at most.
    const lanes = laneChoiceFor(config, model, data.count, result, log, () => 3 * defended.judge().model.length);
    for (const threat of runThreats) {
      const attacks = attacksFor(threatModelOf(threat) as ThreatModel, names);
      if (attacks.length === 0) continue;
      const plan_ = threatPlan(threat, config.attacks, names);
      if (threat === 'gradient-free' && !names.some((n) => ATTACKS[n].gradientFree))
        log(`The gradient-free threat model: no gradient-free attack was listed, so Square Attack runs (${plan_.queries} queries).`);
      const classifier = threatClassifier(defended, threat, adaptiveContext);
      section.threats[threat] = classifier.surrogate;
      let workers: Awaited<ReturnType<typeof startLanes>>;
      try {
        if (threat !== 'gradient-free' && threat !== 'transfer') {
          hooks.onProgress?.({ phase: `Checks under ${threat}`, done: 0, total: 1 });
          checks.push(
            ...(await classifierChecks(classifier, data, 'defended', threat, {
              seed: config.seed,
              batchSize,
              trueGradient: threat === 'direct',
              signal: hooks.signal,
            })),
          );
        }
        // Threats whose gradient is one ONNX model's (transfer, adaptive surrogates, gradient-free) run in lanes.
        if (classifier.laneInit) workers = await startLanes(classifier.laneInit, lanes);
        defendedEntries.push(
          ...(await runAttacks(
            classifier,
            data,
            plan_,
            attacks,
            threat,
            {
              seed: config.seed,
              batchSize,
              lanes: workers?.lanes,
              target: 'defended',
              // A few fooled samples per threat model, from its strongest attack at the largest eps.
              examples: {
                count: EXAMPLES_PER_THREAT,
                into: (result.examples ??= []),
                onlyEps: Math.max(...config.attacks.eps),
                cleanPredictions: clean.predictions,
                strongestOnly: true,
              },
              predictionsInto: adversarialPredictions,
              inspect:
                clean.accepted || clean.projected || fit.stage.scores === 'probabilities'
                  ? async (entry, adversarial) => {
                      const out = await defendedOutputs(defended, adversarial, data.count, batchSize);
                      if (out.accepted) entry.rejection = rejectionStats(out.predictions, data.labels, out.accepted);
                      if (out.projected) entry.projectionRate = share(out.projected);
                      if (fit.stage.scores === 'probabilities') entry.thresholds = thresholdTable(out.scores, data.labels, thresholds);
                    }
                  : undefined,
            },
            hooks,
          )),
        );
      } finally {
        await workers?.release();
        await classifier.release();
      }
    }
    result.attacks = [...(result.attacks ?? []), ...defendedEntries];
    section.worstCase = unionWorstCases(defendedEntries, correctFlags(clean.predictions, data.labels), result.worstCase);
    const confusion = adversarialConfusion(defendedEntries, adversarialPredictions, data.labels, clean.predictions, model.numClasses);
    if (confusion) section.adversarialConfusion = confusion;
    checks.push(...resultChecks(defendedEntries, 'defended', { count: data.count, cleanAccuracy: section.clean.accuracy }));
    result.checks = [...(result.checks ?? []), ...checks];
    Object.assign(section, verdict(section.worstCase, checks, threats));
  }
  section.perClass = perClassAccuracy(result.attacks?.filter((a) => a.target === 'defended') ?? [], data.labels, clean.predictions, model.numClasses);
  result.defense = section;
  return defended;
}

/** The plan a threat model's attacks run with: the gradient-free threat implies Square when no gradient-free attack is listed. */
function threatPlan(threat: string, plan: AttackPlan, names: AttackName[]): AttackPlan {
  return threat === 'gradient-free' && !names.some((n) => ATTACKS[n].gradientFree) ? { ...plan, queries: plan.queries ?? IMPLIED_SQUARE_QUERIES } : plan;
}

/** The work (gradient evaluations, an upper bound) of attacking the defended model under `threats`. */
export function defendedWork(plan: AttackPlan, samples: number, threats: readonly string[]): number {
  const names = parseAttackList(plan.names.join(','));
  return threats.reduce((sum, t) => sum + plannedWork(threatPlan(t, plan, names), attacksFor(threatModelOf(t) as ThreatModel, names), samples), 0);
}

/** Gradient attacks run under the gradient threat models; gradient-free ones under 'gradient-free'. */
function attacksFor(threat: ThreatModel, names: AttackName[]): AttackName[] {
  if (threat !== 'gradient-free') return names.filter((n) => !ATTACKS[n].gradientFree);
  const free = names.filter((n) => ATTACKS[n].gradientFree);
  return free.length ? free : ['square'];
}

/** Checks on a non-adaptive gradient threat that a working adaptive attack makes moot. */
const COVERED_BY_ADAPTIVE = new Set(['zero-gradient', 'unbounded', 'flat-curve']);

/**
 * The verdict. Broken epsilons are conclusive (an attack did get through). Otherwise "holds" needs
 * an adaptive attack that knows the defense, no fired check, and a worst case better than the
 * baseline's at every epsilon; anything less is "inconclusive", with the reasons.
 */
export function verdict(worst: WorstCase[], checks: readonly CheckResult[], threats: readonly string[]): Pick<DefenseResult, 'verdict' | 'verdictReasons'> {
  const judged = worst.filter((w) => w.eps > 0 && w.baselineAccuracy !== undefined);
  if (judged.length === 0)
    return { verdict: 'not attacked', verdictReasons: ['The undefended model was not attacked at the same epsilons, so there is nothing to compare with.'] };
  const broken = judged.filter((w) => w.broken);
  if (broken.length) {
    const reasons = [
      `At eps ${broken.map((w) => w.eps).join(', ')} the defended worst case is no better than the undefended model's (within ${100 * BROKEN_MARGIN} point).`,
    ];
    return { verdict: broken.length === judged.length ? 'broken' : 'partial', verdictReasons: reasons };
  }
  const reasons: string[] = [];
  const notes: string[] = [];
  if (!threats.includes('adaptive')) reasons.push('No adaptive attack (one that knows the defense) ran: --threat adaptive.');
  // A masked gradient under direct or BPDA is what adaptive attacks exist for: it is covered when
  // the adaptive attack itself works (its unbounded run reaches ~0%).
  // An adaptive variant that knows less (e.g. not the private data) may fail where another works.
  const working = checks.find((c) => c.id === 'unbounded' && threatModelOf(c.threat) === 'adaptive' && c.target === 'defended' && !c.fired);
  for (const c of checks.filter((c) => c.fired && c.target === 'defended')) {
    const coverable = c.threat === 'direct' || c.threat === 'bpda' || (threatModelOf(c.threat) === 'adaptive' && c.threat !== working?.threat);
    if (working && COVERED_BY_ADAPTIVE.has(c.id) && coverable)
      notes.push(`${c.message} Covered: the adaptive attack under ${working.threat} works on this defense (unbounded, it leaves about 0%).`);
    else reasons.push(c.message);
  }
  if (reasons.length) return { verdict: 'inconclusive', verdictReasons: [...reasons, ...notes] };
  return {
    verdict: 'holds',
    verdictReasons: [
      'Better than the undefended model at every epsilon under every attack and threat model that ran, adaptive included, and no uncovered check fired. This is no proof: a stronger attack may exist.',
      ...notes,
    ],
  };
}

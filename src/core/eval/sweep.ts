/**
 * The layer sweep (LESCI paper, section 4: "the location of the LESCI layer(s) in the network is a
 * hyperparameter that balances accuracy (which increases when located late in the network) and
 * robustness (which increases when located early in the network)"). One defense plan, inserted at
 * each chosen insertion point in turn, each evaluated by the same defense stage as a single
 * evaluation (stages/defense.ts: fit or cached fit, clean pass, every threat model with the
 * adaptive one and its variants, checks, per-sample union worst case, verdict) against the one
 * baseline that runEvaluation attacked once. Per layer: clean accuracy, projection rate, the worst
 * case per epsilon, the verdict and the layer's isometry; then the Pareto front of clean accuracy
 * against the worst case at the largest epsilon.
 */
import { measureIsometry } from '../analysis/isometry';
import { isometryLayers } from '../analysis/isometry';
import { UserError } from '../errors';
import type { ModelGraph } from '../model/graph';
import type { OnnxClassifier } from '../runtime/onnx-classifier';
import { DEFAULT_ISOMETRY_PAIRS, defenseParams, type EvaluationConfig } from '../../protocol/experiment';
import type { IsometryResult, RunResult, SweepLayer, SweepResult, WorstCase } from '../../protocol/run-result';
import { throwIfCancelled, type RunHooks } from './context';
import type { PreparedData } from './data';
import type { ClassifierModel } from './model-session';
import { runDefense } from './stages/defense';
import { paretoFront } from './stages/pareto';

export { paretoFront } from './stages/pareto';

/** An insertion point of the sweep, in graph order. */
export interface SweepLayerChoice {
  tensor: string;
  layer: string;
  op: string;
  /** 1-based node position; 0 for the model input. */
  depth: number;
}

/**
 * The insertion points a sweep visits: every one after the input (`layers` absent or empty), or
 * those named (insertion tensors or the nodes producing them; the model input too, where it is an
 * insertion point), in graph order, each once. Throws a UserError naming a bad one and listing the
 * valid ones.
 */
export function sweepLayerChoices(graph: ModelGraph, layers?: readonly string[]): SweepLayerChoice[] {
  const inputs = graph.inputs.filter((i) => graph.insertionTensors.includes(i.name)).map((i) => i.name);
  const named = (layers ?? []).map((l) => l.trim());
  if (named.some((l) => l === ''))
    throw new UserError(
      `The sweep's layers must be insertion tensors, got an empty name in [${named.join(', ')}].`,
      'robustness-lab inspect <model> lists them.',
    );
  const wantsInput = named.filter((l) => inputs.includes(l));
  const rest = named.filter((l) => !inputs.includes(l));
  const after = named.length === 0 || rest.length > 0 ? isometryLayers(graph, rest.length ? rest : undefined) : [];
  return [...[...new Set(wantsInput)].map((tensor) => ({ tensor, layer: '', op: 'input', depth: 0 })), ...after];
}

/** The robustness objective of the front: the largest epsilon of the plan's norm. */
function paretoTarget(config: EvaluationConfig): SweepResult['paretoAt'] {
  const eps = config.attacks?.eps ?? [];
  return eps.length ? { norm: config.attacks!.norm, eps: Math.max(...eps) } : null;
}

const worstAt = (worst: readonly WorstCase[], norm: string, eps: number) => worst.find((w) => w.norm === norm && w.eps === eps)?.accuracy ?? NaN;

/**
 * Marks the front in place: `pareto` against the worst case at `at` (clean accuracy alone when
 * nothing was attacked), `paretoEps` for each attacked epsilon of that norm.
 */
export function markPareto(layers: SweepLayer[], at: SweepResult['paretoAt'], epsilons: readonly number[]): void {
  const main = paretoFront(layers.map((l) => (at ? [l.cleanAccuracy, worstAt(l.worstCase, at.norm, at.eps)] : [l.cleanAccuracy])));
  layers.forEach((l, i) => {
    l.pareto = main[i];
    l.paretoEps = [];
  });
  if (!at) return;
  for (const eps of [...new Set(epsilons)].sort((a, b) => a - b)) {
    const front = paretoFront(layers.map((l) => [l.cleanAccuracy, worstAt(l.worstCase, at.norm, eps)]));
    layers.forEach((l, i) => front[i] && l.paretoEps.push(eps));
  }
}

/**
 * Runs the sweep after runEvaluation's baseline: `result` holds the baseline's attacks, worst case
 * and checks, which every layer's defense stage compares with; they are left as they are, and the
 * layers go into `result.sweep` (and the isometry of the layers into `result.isometry` unless the
 * run measured it already).
 */
export async function runSweep(
  config: EvaluationConfig,
  model: ClassifierModel,
  undefended: OnnxClassifier,
  data: PreparedData,
  result: RunResult,
  hooks: RunHooks,
  layers: readonly SweepLayerChoice[],
): Promise<void> {
  const plan = config.defense;
  if (!plan) throw new UserError('A layer sweep needs a defense to insert.', 'Add --defense lesci (and its reference set).');
  const log = hooks.onLog ?? (() => {});
  const t0 = performance.now();
  const pairs = config.sweep?.pairs ?? DEFAULT_ISOMETRY_PAIRS;

  const isometry = await sweepIsometry(config, model, data, result, hooks, layers, pairs);
  const baseAttacks = result.attacks?.length ?? 0;
  const baseChecks = result.checks?.length ?? 0;
  const entries: SweepLayer[] = [];
  let reference: SweepResult['reference'] | undefined;
  for (const [i, choice] of layers.entries()) {
    throwIfCancelled(hooks.signal);
    const prefix = `Layer ${i + 1}/${layers.length}: ${choice.tensor}`;
    hooks.onProgress?.({ phase: prefix, done: i, total: layers.length });
    log(`── ${prefix} (${choice.op}, depth ${choice.depth}) ──`);
    const tLayer = performance.now();
    // A copy of the result per layer: the defense stage appends its attacks, checks and examples
    // to it and sets `defense`; the baseline's stay shared and untouched.
    const own: RunResult = {
      ...result,
      runtime: { ...result.runtime },
      attacks: result.attacks && [...result.attacks],
      checks: result.checks && [...result.checks],
      examples: [],
      defense: undefined,
    };
    const layerHooks: RunHooks = { ...hooks, onProgress: (p) => hooks.onProgress?.({ ...p, phase: `${prefix}: ${p.phase}` }) };
    const defended = await runDefense({ ...config, defense: { ...plan, layer: choice.tensor } }, model, undefended, data, own, layerHooks);
    await defended.release();
    const section = own.defense!;
    reference ??= section.reference;
    const iso = isometry?.layers.find((l) => l.tensor === choice.tensor);
    entries.push({
      ...choice,
      cleanAccuracy: section.clean.accuracy,
      ...(section.clean.projectionRate !== undefined && { projectionRate: section.clean.projectionRate }),
      ...(section.clean.rejectionRate !== undefined && { rejectionRate: section.clean.rejectionRate }),
      worstCase: section.worstCase,
      verdict: section.verdict,
      ...(section.verdictReasons && { verdictReasons: section.verdictReasons }),
      isometry: iso
        ? {
            withinPearson: iso.within.pearson,
            withinSpearman: iso.within.spearman,
            withinDistortion: iso.within.distortion,
            betweenPearson: iso.between.pearson,
          }
        : null,
      placement: section.placement,
      threats: section.threats,
      fitSeconds: section.fitSeconds,
      cached: section.cached,
      seconds: (performance.now() - tLayer) / 1000,
      attacks: (own.attacks ?? []).slice(baseAttacks).map((a) => ({
        attack: a.attack,
        threat: a.threat,
        norm: a.norm,
        eps: a.eps,
        accuracy: a.accuracy,
        ...(a.projectionRate !== undefined && { projectionRate: a.projectionRate }),
        seconds: a.seconds,
      })),
      checks: (own.checks ?? []).slice(baseChecks).filter((c) => c.fired),
      pareto: false,
      paretoEps: [],
    });
    const worst = section.worstCase.map((w) => `${(100 * w.accuracy).toFixed(1)}% at ${w.eps}`).join(', ');
    log(`${prefix}: clean ${(100 * section.clean.accuracy).toFixed(2)}%, worst case ${worst || '–'}, verdict ${section.verdict}`);
  }
  hooks.onProgress?.({ phase: `Layer ${layers.length}/${layers.length}: done`, done: layers.length, total: layers.length });
  const at = paretoTarget(config);
  markPareto(
    entries,
    at,
    (config.attacks?.eps ?? []).filter((e) => e > 0),
  );
  result.sweep = {
    kind: plan.kind,
    params: entries.length ? { ...defenseParams(plan) } : {},
    reference: reference ?? { path: plan.reference, labelsPath: plan.referenceLabels, count: 0, sha256: '' },
    requested: config.sweep?.layers?.length ? [...config.sweep.layers] : 'all',
    paretoAt: at,
    isometryPairs: pairs,
    layers: entries,
    seconds: (performance.now() - t0) / 1000,
  };
}

/** The isometry of the sweep's layers after the input: the run's own when it measured them with the same pairs, else measured here. */
async function sweepIsometry(
  config: EvaluationConfig,
  model: ClassifierModel,
  data: PreparedData,
  result: RunResult,
  hooks: RunHooks,
  layers: readonly SweepLayerChoice[],
  pairs: number,
): Promise<IsometryResult | undefined> {
  const tensors = layers.filter((l) => l.depth > 0).map((l) => l.tensor);
  if (tensors.length === 0) return undefined;
  const have = result.isometry;
  if (have && have.pairsRequested === pairs && tensors.every((t) => have.layers.some((l) => l.tensor === t))) return have;
  hooks.onProgress?.({ phase: 'Isometry of the layers', done: 0, total: 1 });
  const measured = await measureIsometry(
    { model, x: data.x, labels: data.labels, count: data.count },
    { pairs, layers: tensors, seed: config.isometry?.seed ?? config.seed },
    {
      batchSize: config.batchSize,
      threads: config.threads,
      ep: config.ep,
      signal: hooks.signal,
      onLog: hooks.onLog,
      onBatch: (done, total) => hooks.onProgress?.({ phase: 'Isometry of the layers', done, total }),
    },
  );
  result.isometry ??= measured;
  return measured;
}

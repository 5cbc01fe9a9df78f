import { parseAttackList } from '../../core/attacks/run';
import { UserError } from '../../core/errors';
import { runEvaluation } from '../../core/eval/evaluate';
import { DEFAULT_CONFIG, THREAT_MODELS, type AttackPlan, type DefensePlan, type EvaluationConfig, type FoolingPlan, type ThreatModel } from '../../protocol/experiment';
import type { RunResult } from '../../protocol/run-result';
import { integer, number, numberList, oneOf, optionalInteger, parse, required, str, type Options, type Values } from '../args';
import { percent, table } from '../table';

export const EVALUATE_USAGE = `robustness-lab evaluate --model <model.onnx> --data <dataset> [--labels <file>] [--limit N]
                        [--batch B] [--threads T] [--lanes L] [--ep auto|cpu|cuda] [--seed S]
                        [--mean m[,m,m]] [--std s[,s,s]] [--scale k] [--out result.json] [--json]
                        [--attack fgsm,bim,pgd,mifgsm,spsa,square --eps e1,e2,... [--norm linf|l2]
                         [--steps N] [--step-size A] [--restarts R] [--no-random-start] [--queries Q]
                         [--loss ce|cw] [--targeted]]
                        [--defense lesci|dae|retrieval --layer <tensor> --reference <images> [--reference-labels <file>]
                         [--reference-limit N] [--threat transfer,bpda,direct,gradient-free] [--cache-dir D] [defense options]]
                        [--fool [--fool-targets 0,1,..] [--fool-seeds S] [--fool-steps N] [--fool-thresholds 0.9,0.99]]

Defense options:
  LESCI:     --mode vq|vote  --k 10  --t-projection 0.5  --pca 64 (0 = off)  --distance cosine|l2  --reject
  dAE:       --hidden 256  --sigma 0.25  --epochs 20  --alpha a  --beta 1  --thresholds 0,0.9,0.99
  retrieval: --head tail|paper  --neighbours 10  --projection-dims 64  --distance l2|cosine
             --search exact|lsh  --lsh-tables 8  --lsh-bits K  --lsh-probes 8`;

export const EVALUATE_OPTIONS: Options = {
  model: { type: 'string' },
  data: { type: 'string' },
  labels: { type: 'string' },
  limit: { type: 'string' },
  batch: { type: 'string' },
  threads: { type: 'string' },
  lanes: { type: 'string' },
  ep: { type: 'string' },
  seed: { type: 'string' },
  mean: { type: 'string' },
  std: { type: 'string' },
  scale: { type: 'string' },
  out: { type: 'string' },
  json: { type: 'boolean' },
  attack: { type: 'string' },
  eps: { type: 'string' },
  norm: { type: 'string' },
  steps: { type: 'string' },
  'step-size': { type: 'string' },
  restarts: { type: 'string' },
  'no-random-start': { type: 'boolean' },
  queries: { type: 'string' },
  loss: { type: 'string' },
  targeted: { type: 'boolean' },
};

/** Flags that describe a defense fit (shared by evaluate and export). */
export const DEFENSE_OPTIONS: Options = {
  defense: { type: 'string' },
  layer: { type: 'string' },
  reference: { type: 'string' },
  'reference-labels': { type: 'string' },
  'reference-limit': { type: 'string' },
  'defense-seed': { type: 'string' },
  'cache-dir': { type: 'string' },
  mode: { type: 'string' },
  k: { type: 'string' },
  't-projection': { type: 'string' },
  pca: { type: 'string' },
  distance: { type: 'string' },
  reject: { type: 'boolean' },
  hidden: { type: 'string' },
  sigma: { type: 'string' },
  epochs: { type: 'string' },
  alpha: { type: 'string' },
  beta: { type: 'string' },
  thresholds: { type: 'string' },
  head: { type: 'string' },
  neighbours: { type: 'string' },
  'projection-dims': { type: 'string' },
  search: { type: 'string' },
  'lsh-tables': { type: 'string' },
  'lsh-bits': { type: 'string' },
  'lsh-probes': { type: 'string' },
  threat: { type: 'string' },
};

const FOOLING_OPTIONS: Options = {
  fool: { type: 'boolean' },
  'fool-targets': { type: 'string' },
  'fool-seeds': { type: 'string' },
  'fool-steps': { type: 'string' },
  'fool-thresholds': { type: 'string' },
};

const ATTACK_FLAGS = ['eps', 'norm', 'steps', 'step-size', 'restarts', 'no-random-start', 'queries', 'loss', 'targeted'];

export function evaluationConfigFromFlags(values: Values): EvaluationConfig {
  return {
    model: required(values, 'model', '<model.onnx>'),
    data: required(values, 'data', '<dataset> (IDX, .npy, .npz or an image folder)'),
    labels: str(values, 'labels'),
    limit: optionalInteger(values, 'limit', 1),
    batchSize: integer(values, 'batch', DEFAULT_CONFIG.batchSize, 1),
    threads: integer(values, 'threads', DEFAULT_CONFIG.threads, 0),
    lanes: integer(values, 'lanes', 1, 1),
    ep: oneOf(values, 'ep', ['auto', 'cpu', 'cuda'] as const, DEFAULT_CONFIG.ep),
    seed: integer(values, 'seed', DEFAULT_CONFIG.seed, 0),
    preprocessing: { scale: number(values, 'scale'), mean: numberList(values, 'mean'), std: numberList(values, 'std') },
    attacks: attackPlanFromFlags(values),
    defense: defensePlanFromFlags(values),
    cacheDir: str(values, 'cache-dir'),
    fooling: foolingPlanFromFlags(values),
    out: str(values, 'out'),
  };
}

const DEFENSE_FLAGS: Record<DefensePlan['kind'], string[]> = {
  lesci: ['mode', 'k', 't-projection', 'pca', 'distance', 'reject'],
  dae: ['hidden', 'sigma', 'epochs', 'alpha', 'beta', 'thresholds'],
  retrieval: ['head', 'neighbours', 'projection-dims', 'distance', 'search', 'lsh-tables', 'lsh-bits', 'lsh-probes'],
};

export function defensePlanFromFlags(values: Values): DefensePlan | undefined {
  const kind = str(values, 'defense');
  const own = new Set(Object.values(DEFENSE_FLAGS).flat());
  if (!kind) {
    const stray = [...own, 'layer', 'reference', 'reference-labels', 'reference-limit', 'threat'].find((f) => values[f] !== undefined);
    if (stray) throw new UserError(`--${stray} only applies together with --defense.`, 'Add --defense lesci|dae|retrieval --layer <tensor> --reference <images>.');
    return undefined;
  }
  const k = oneOf(values, 'defense', ['lesci', 'dae', 'retrieval'] as const, 'lesci');
  const foreign = [...own].filter((f) => !DEFENSE_FLAGS[k].includes(f) && values[f] !== undefined);
  if (foreign.length) throw new UserError(`--${foreign[0]} is not an option of the ${k} defense.`, `The ${k} options are: ${DEFENSE_FLAGS[k].map((f) => `--${f}`).join(' ')}`);
  const threats = str(values, 'threat')?.split(',').map((t) => t.trim()).filter(Boolean);
  const badThreat = threats?.find((t) => !(THREAT_MODELS as readonly string[]).includes(t));
  if (badThreat) throw new UserError(`Unknown threat model '${badThreat}'.`, `Valid threat models: ${THREAT_MODELS.join(', ')}.`);
  const plan: DefensePlan = {
    kind: k,
    layer: required(values, 'layer', '<tensor>: the insertion point the defense goes after (robustness-lab inspect lists them)'),
    reference: required(values, 'reference', '<images>: the reference set the defense is fitted on'),
    referenceLabels: str(values, 'reference-labels'),
    referenceLimit: optionalInteger(values, 'reference-limit', 1),
    seed: optionalInteger(values, 'defense-seed', 0),
    threats: threats as ThreatModel[] | undefined,
  };
  if (k === 'lesci') {
    plan.lesci = {
      mode: str(values, 'mode') === undefined ? undefined : oneOf(values, 'mode', ['vq', 'vote'] as const, 'vq'),
      k: optionalInteger(values, 'k', 1), tProjection: number(values, 't-projection'), pcaDims: optionalInteger(values, 'pca', 0),
      distance: str(values, 'distance') === undefined ? undefined : oneOf(values, 'distance', ['cosine', 'l2'] as const, 'cosine'),
      reject: values.reject ? true : undefined,
    };
  } else if (k === 'dae') {
    plan.dae = {
      hidden: optionalInteger(values, 'hidden', 1), sigma: number(values, 'sigma'), epochs: optionalInteger(values, 'epochs', 1),
      alpha: number(values, 'alpha'), beta: number(values, 'beta'), thresholds: numberList(values, 'thresholds'),
    };
  } else {
    const lsh = { tables: optionalInteger(values, 'lsh-tables', 1), bits: optionalInteger(values, 'lsh-bits', 1), probes: optionalInteger(values, 'lsh-probes', 0) };
    plan.retrieval = {
      head: str(values, 'head') === undefined ? undefined : oneOf(values, 'head', ['tail', 'paper'] as const, 'tail'),
      neighbours: optionalInteger(values, 'neighbours', 1), projectionDims: optionalInteger(values, 'projection-dims', 0),
      distance: str(values, 'distance') === undefined ? undefined : oneOf(values, 'distance', ['cosine', 'l2'] as const, 'l2'),
      search: str(values, 'search') === undefined ? undefined : oneOf(values, 'search', ['exact', 'lsh'] as const, 'exact'),
      lsh: Object.values(lsh).some((v) => v !== undefined) ? lsh : undefined,
    };
  }
  return dropUndefined(plan);
}

/** Undefined options are left out, so that cache keys and result files only hold what was set. */
function dropUndefined<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function foolingPlanFromFlags(values: Values): FoolingPlan | undefined {
  const flags = ['fool-targets', 'fool-seeds', 'fool-steps', 'fool-thresholds'];
  if (!values.fool) {
    const stray = flags.find((f) => values[f] !== undefined);
    if (stray) throw new UserError(`--${stray} only applies together with --fool.`);
    return undefined;
  }
  return dropUndefined({
    targets: numberList(values, 'fool-targets'), seeds: optionalInteger(values, 'fool-seeds', 1),
    maxSteps: optionalInteger(values, 'fool-steps', 1), thresholds: numberList(values, 'fool-thresholds'),
  });
}

function attackPlanFromFlags(values: Values): AttackPlan | undefined {
  if (!str(values, 'attack')) {
    const stray = ATTACK_FLAGS.find((f) => values[f] !== undefined);
    if (stray) throw new UserError(`--${stray} only applies together with --attack.`, 'Add e.g. --attack fgsm,pgd --eps 0.01,0.03');
    return undefined;
  }
  const eps = numberList(values, 'eps');
  if (!eps) throw new UserError('--attack needs --eps with one or more epsilons, e.g. --eps 0.01,0.02,0.05.');
  const stepSize = number(values, 'step-size');
  if (stepSize !== undefined && !(stepSize > 0)) throw new UserError(`--step-size must be a positive number, got '${stepSize}'.`);
  return {
    names: parseAttackList(str(values, 'attack')!),
    eps,
    norm: oneOf(values, 'norm', ['linf', 'l2'] as const, 'linf'),
    loss: str(values, 'loss') === undefined ? undefined : oneOf(values, 'loss', ['ce', 'cw'] as const, 'ce'),
    stepSize,
    steps: optionalInteger(values, 'steps', 1),
    restarts: optionalInteger(values, 'restarts', 1),
    queries: optionalInteger(values, 'queries', 1),
    randomStart: values['no-random-start'] ? false : undefined,
    targeted: values.targeted ? true : undefined,
  };
}

export function printRunResult(r: RunResult): void {
  console.log(
    table(
      ['model', 'dataset', 'samples', 'clean accuracy', 'images/s', 'provider'],
      [[r.model.path, r.dataset.path, r.clean.count, percent(r.clean.accuracy), Math.round(r.timings.cleanImagesPerSecond).toLocaleString('en-US'), r.runtime.executionProvider]],
      [false, false, true, true, true, false],
    ),
  );
  const d = r.defense;
  if (d) {
    const extra = [
      d.clean.projectionRate !== undefined ? `projection rate ${percent(d.clean.projectionRate)}` : '',
      d.clean.rejectionRate !== undefined ? `rejection rate ${percent(d.clean.rejectionRate)}` : '',
    ].filter(Boolean).join(', ');
    console.log(`\nDefense: ${d.kind} after '${d.layer}' (${d.placement}), fitted on ${d.reference.count} reference images in ${d.fitSeconds.toFixed(1)} s${d.cached ? ' (cached)' : ''}`);
    console.log(`  clean accuracy ${percent(d.clean.accuracy)} (baseline ${percent(d.clean.baselineAccuracy)})${extra ? `, ${extra}` : ''}`);
    console.log(`  parameters: ${JSON.stringify(d.params)}`);
  }
  if (r.attacks?.length) {
    console.log('');
    console.log(
      table(
        ['model', 'attack', 'threat', 'norm', 'eps', 'robust accuracy', 'success rate', 'mean ‖δ‖', 'max ‖δ‖', 'gradients', 'queries', 'seconds'],
        r.attacks.map((a) => [a.target, a.attack, a.threat, a.norm, a.eps, percent(a.accuracy), percent(a.successRate), a.meanPerturbation.toFixed(4), a.maxPerturbation.toFixed(4), a.gradientEvaluations, a.queries, a.seconds.toFixed(1)]),
        [false, false, false, false, true, true, true, true, true, true, true, true],
      ),
    );
  }
  if (d?.worstCase.length) {
    console.log(`\nWorst case over the threat models (verdict: ${d.verdict}):`);
    console.log(table(
      ['norm', 'eps', 'defended', 'by', 'baseline', 'broken'],
      d.worstCase.map((w) => [w.norm, w.eps, percent(w.accuracy), `${w.attack} / ${w.threat}`, w.baselineAccuracy === undefined ? '-' : percent(w.baselineAccuracy), w.broken ? 'yes' : 'no']),
      [false, true, true, false, true, false],
    ));
  }
  if (d?.thresholds) {
    console.log('\nClean accuracy on accepted inputs / rejection rate, by threshold on the top (scaled) probability:');
    console.log(table(
      ['threshold', 'baseline', 'dAE'],
      d.thresholds.defended.map((row, i) => {
        const b = d.thresholds!.baseline[i];
        const cell = (t: typeof row) => `${t.acceptedAccuracy === null ? '-' : percent(t.acceptedAccuracy)} / ${percent(t.rejectionRate)}`;
        return [percent(row.threshold), cell(b), cell(row)];
      }),
      [true, true, true],
    ));
  }
  if (r.fooling) {
    console.log('\nFooling generator (share of target/seed runs reaching the confidence; mean steps of the successful ones):');
    console.log(table(
      ['threshold', 'baseline', ...(r.fooling.defended ? ['dAE-scaled'] : [])],
      r.fooling.baseline.map((b, i) => {
        const cell = (f: typeof b) => `${percent(f.foolingRate)} (${f.averageSteps === null ? '-' : f.averageSteps.toFixed(1)} steps)`;
        return [percent(b.threshold), cell(b), ...(r.fooling!.defended ? [cell(r.fooling!.defended[i])] : [])];
      }),
      [true, true, true],
    ));
  }
}

export async function evaluateCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...EVALUATE_OPTIONS, ...DEFENSE_OPTIONS, ...FOOLING_OPTIONS }, 'evaluate');
  if (values.help) {
    console.log(`Usage: ${EVALUATE_USAGE}`);
    return 0;
  }
  const config = evaluationConfigFromFlags(values);
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  const result = await runEvaluation(config, { signal: controller.signal, onLog: (line) => console.error(line) });
  if (values.json) console.log(JSON.stringify(result, null, 2));
  else {
    printRunResult(result);
    if (config.out) console.log(`\nResult written to ${config.out}`);
  }
  return 0;
}

import { parseEpsList } from '../../protocol/eps';
import { ATTACK_NAMES, ATTACK_REGISTRY, parseAttackList } from '../../core/attacks/registry';
import { STRENGTHS, type Strength } from '../../core/attacks/strength';
import { DEFENSE_KINDS, DEFENSE_REGISTRY } from '../../core/defenses/registry';
import { paramProblem, setParamValue } from '../../protocol/params';
import { UserError } from '../../core/errors';
import { runEvaluation } from '../../core/eval/evaluate';
import {
  DEFAULT_CONFIG,
  THREAT_MODELS,
  type AttackPlan,
  type DefensePlan,
  type EvaluationConfig,
  type FoolingPlan,
  type ThreatModel,
  type UnknownPlan,
} from '../../protocol/experiment';
import type { RunResult } from '../../protocol/run-result';
import {
  cliSignal,
  integer,
  number,
  numberList,
  oneOf,
  optionalInteger,
  parse,
  required,
  SAFETY_OPTIONS,
  SAFETY_USAGE,
  safetyFromFlags,
  seed,
  lanesFlag,
  str,
  type Options,
  type Values,
} from '../args';
import { checkWritableOut } from '../../core/fs-atomic';
import { renderText } from '../../report/text';

export const EVALUATE_USAGE = `robustness-lab evaluate --model <model.onnx> --data <dataset> [--labels <file>] [--limit N]
                        [--batch B] [--threads T] [--lanes auto|L] [--ep auto|cpu|cuda] [--seed S]
                        [--mean m[,m,m]] [--std s[,s,s]] [--scale k] [--out result.json] [--json] [--verbose]
                        ${SAFETY_USAGE}
                        [--attack ${ATTACK_NAMES.join(',')} --eps e1,e2,... [--norm linf|l2]
                         [--steps N] [--step-size A] [--restarts R] [--no-random-start] [--queries Q]
                         [--loss ce|cw] [--targeted] | --strength ${Object.keys(STRENGTHS).join('|')} --eps e1,...]
                        [--defense ${DEFENSE_KINDS.join('|')} --layer <tensor> --reference <images> [--reference-labels <file>]
                         [--reference-limit N] [--threat ${THREAT_MODELS.join(',')}] [--cache-dir D] [defense options]]
                        [--fool [--fool-targets 0,1,..] [--fool-seeds S] [--fool-steps N] [--fool-thresholds 0.9,0.99]]
                        [--unknown <images> [--unknown-labels <file>] [--unknown-limit N] [--unknown-thresholds 0,0.5,0.9,0.99]]

Attacks (defaults):
${ATTACK_REGISTRY.map(
  (a) =>
    `  ${a.name.padEnd(9)} ${a.title}; ${Object.entries(a.defaults)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
).join('\n')}

Strength presets (--strength, instead of or beside --attack; flags given override the preset):
${Object.entries(STRENGTHS)
  .map(([k, v]) => `  ${k.padEnd(9)} ${v.description}`)
  .join('\n')}

Defense options (defaults):
${DEFENSE_REGISTRY.map((d) => `  ${`${d.title}:`.padEnd(11)}${d.params.map((p) => `--${p.flag}${p.type === 'boolean' ? '' : ` ${p.type === 'enum' ? p.values!.join('|') : String(p.default ?? p.defaultText ?? '')}`}`).join('  ')}`).join('\n')}`;

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
  strength: { type: 'string' },
};

/** The flags of every defense's parameters, from the registry (a flag two defenses share appears once). */
const DEFENSE_PARAM_FLAGS = [...new Set(DEFENSE_REGISTRY.flatMap((d) => d.params.map((p) => p.flag)))];

/** Flags that describe a defense fit (shared by evaluate and export). */
export const DEFENSE_OPTIONS: Options = {
  defense: { type: 'string' },
  layer: { type: 'string' },
  reference: { type: 'string' },
  'reference-labels': { type: 'string' },
  'reference-limit': { type: 'string' },
  'defense-seed': { type: 'string' },
  'cache-dir': { type: 'string' },
  threat: { type: 'string' },
  ...Object.fromEntries(
    DEFENSE_PARAM_FLAGS.map((flag) => [
      flag,
      { type: DEFENSE_REGISTRY.flatMap((d) => d.params).find((p) => p.flag === flag)!.type === 'boolean' ? 'boolean' : 'string' },
    ]),
  ),
};

const FOOLING_OPTIONS: Options = {
  fool: { type: 'boolean' },
  'fool-targets': { type: 'string' },
  'fool-seeds': { type: 'string' },
  'fool-steps': { type: 'string' },
  'fool-thresholds': { type: 'string' },
};

/** Open-set recognition: images of classes the model never learnt. */
const UNKNOWN_OPTIONS: Options = {
  unknown: { type: 'string' },
  'unknown-labels': { type: 'string' },
  'unknown-limit': { type: 'string' },
  'unknown-thresholds': { type: 'string' },
};

const ATTACK_FLAGS = ['eps', 'norm', 'steps', 'step-size', 'restarts', 'no-random-start', 'queries', 'loss', 'targeted'];
const STRENGTH_NAMES = Object.keys(STRENGTHS) as Strength[];

export function evaluationConfigFromFlags(values: Values): EvaluationConfig {
  return {
    model: required(values, 'model', '<model.onnx>'),
    data: required(values, 'data', '<dataset> (IDX, .npy, .npz or an image folder)'),
    labels: str(values, 'labels'),
    limit: optionalInteger(values, 'limit', 1),
    batchSize: integer(values, 'batch', DEFAULT_CONFIG.batchSize, 1),
    threads: integer(values, 'threads', DEFAULT_CONFIG.threads, 0),
    lanes: lanesFlag(values),
    ep: oneOf(values, 'ep', ['auto', 'cpu', 'cuda'] as const, DEFAULT_CONFIG.ep),
    seed: seed(values, 'seed', DEFAULT_CONFIG.seed),
    preprocessing: { scale: number(values, 'scale'), mean: numberList(values, 'mean'), std: numberList(values, 'std') },
    attacks: attackPlanFromFlags(values),
    defense: defensePlanFromFlags(values),
    cacheDir: str(values, 'cache-dir'),
    fooling: foolingPlanFromFlags(values),
    unknown: unknownPlanFromFlags(values),
    out: str(values, 'out'),
    ...safetyFromFlags(values),
  };
}

export function defensePlanFromFlags(values: Values): DefensePlan | undefined {
  const kind = str(values, 'defense');
  if (!kind) {
    const stray = [...DEFENSE_PARAM_FLAGS, 'layer', 'reference', 'reference-labels', 'reference-limit', 'threat'].find((f) => values[f] !== undefined);
    if (stray)
      throw new UserError(
        `--${stray} only applies together with --defense.`,
        `Add --defense ${DEFENSE_KINDS.join('|')} --layer <tensor> --reference <images>.`,
      );
    return undefined;
  }
  const spec = DEFENSE_REGISTRY.find((d) => d.kind === kind.toLowerCase());
  if (!spec) throw new UserError(`--defense must be one of ${DEFENSE_KINDS.join(', ')}, got '${kind}'.`);
  const own = spec.params.map((p) => p.flag);
  const foreign = DEFENSE_PARAM_FLAGS.filter((f) => !own.includes(f) && values[f] !== undefined);
  if (foreign.length)
    throw new UserError(`--${foreign[0]} is not an option of the ${spec.kind} defense.`, `The ${spec.kind} options are: ${own.map((f) => `--${f}`).join(' ')}`);
  const threats = str(values, 'threat')
    ?.split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  const badThreat = threats?.find((t) => !(THREAT_MODELS as readonly string[]).includes(t));
  if (badThreat) throw new UserError(`Unknown threat model '${badThreat}'.`, `Valid threat models: ${THREAT_MODELS.join(', ')}.`);
  const params: Record<string, unknown> = {};
  for (const p of spec.params) {
    const raw = values[p.flag];
    if (raw === undefined) continue;
    const value =
      p.type === 'boolean'
        ? true
        : p.type === 'integer' || p.type === 'number'
          ? Number(raw)
          : p.type === 'numbers'
            ? String(raw)
                .split(',')
                .map((v) => (v.trim() === '' ? NaN : Number(v)))
            : raw;
    const problem = paramProblem(p, value);
    if (problem) throw new UserError(`--${p.flag} ${problem}, got '${String(raw)}'.`, p.description);
    setParamValue(params, p.key, value);
  }
  return dropUndefined({
    kind: spec.kind,
    layer: required(values, 'layer', '<tensor>: the insertion point the defense goes after (robustness-lab inspect lists them)'),
    reference: required(values, 'reference', '<images>: the reference set the defense is fitted on'),
    referenceLabels: str(values, 'reference-labels'),
    referenceLimit: optionalInteger(values, 'reference-limit', 1),
    seed: optionalInteger(values, 'defense-seed', 0),
    threats: threats as ThreatModel[] | undefined,
    ...(Object.keys(params).length ? { [spec.kind]: params } : {}),
  });
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
    targets: numberList(values, 'fool-targets'),
    seeds: optionalInteger(values, 'fool-seeds', 1),
    maxSteps: optionalInteger(values, 'fool-steps', 1),
    thresholds: numberList(values, 'fool-thresholds'),
  });
}

function unknownPlanFromFlags(values: Values): UnknownPlan | undefined {
  const data = str(values, 'unknown');
  if (data === undefined) {
    const stray = ['unknown-labels', 'unknown-limit', 'unknown-thresholds'].find((f) => values[f] !== undefined);
    if (stray) throw new UserError(`--${stray} only applies together with --unknown.`, 'Add --unknown <images of classes the model never learnt>.');
    return undefined;
  }
  if (!data) throw new UserError('--unknown needs a dataset: images of classes the model never learnt (IDX, .npy, .npz or an image folder).');
  const thresholds = numberList(values, 'unknown-thresholds');
  const bad = thresholds?.find((t) => !(t >= 0 && t <= 1));
  if (bad !== undefined)
    throw new UserError(`--unknown-thresholds must lie from 0 to 1 (thresholds on a probability), got ${bad}.`, 'e.g. --unknown-thresholds 0.5,0.9,0.99');
  return dropUndefined({ data, labels: str(values, 'unknown-labels'), limit: optionalInteger(values, 'unknown-limit', 1), thresholds });
}

function attackPlanFromFlags(values: Values): AttackPlan | undefined {
  if (!str(values, 'attack') && !str(values, 'strength')) {
    const stray = ATTACK_FLAGS.find((f) => values[f] !== undefined);
    if (stray)
      throw new UserError(
        `--${stray} only applies together with --attack or --strength.`,
        'Add e.g. --attack fgsm,pgd --eps 0.01,0.03, or --strength quick --eps 0.03',
      );
    return undefined;
  }
  const epsText = str(values, 'eps');
  if (epsText === undefined)
    throw new UserError(`--${str(values, 'attack') ? 'attack' : 'strength'} needs --eps with one or more epsilons, e.g. --eps 0.01,0.02,0.05.`);
  // Fractions of the pixel range are accepted (--eps 8/255); the range check needs the model, so the engine does it.
  const parsedEps = parseEpsList(epsText);
  if ('problem' in parsedEps) throw new UserError(`--eps ${parsedEps.problem}`, 'e.g. --eps 0.01,0.03 or --eps 2/255,8/255');
  const eps = parsedEps.values;
  const stepSize = number(values, 'step-size');
  if (stepSize !== undefined && !(stepSize > 0)) throw new UserError(`--step-size must be a positive number, got '${stepSize}'.`);
  return {
    names: str(values, 'attack') ? parseAttackList(str(values, 'attack')!) : [],
    strength: str(values, 'strength') === undefined ? undefined : oneOf(values, 'strength', STRENGTH_NAMES, 'quick'),
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
  console.log(renderText(r));
}

export async function evaluateCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...EVALUATE_OPTIONS, ...DEFENSE_OPTIONS, ...FOOLING_OPTIONS, ...UNKNOWN_OPTIONS, ...SAFETY_OPTIONS }, 'evaluate');
  if (values.help) {
    console.log(`Usage: ${EVALUATE_USAGE}`);
    return 0;
  }
  return runAndPrint(evaluationConfigFromFlags(values), values.json === true);
}

/**
 * What evaluate, run, isometry and sweep share: the run (logged to stderr, cancelled by Ctrl+C),
 * then the RunResult as JSON or as text, and where it was written.
 */
export async function runAndPrint(config: EvaluationConfig, json: boolean): Promise<number> {
  if (config.out) checkWritableOut(config.out); // before the run, not after it
  const result = await runEvaluation(config, { signal: cliSignal(), onLog: (line) => console.error(line) });
  if (json) console.log(JSON.stringify(result, null, 2));
  else {
    printRunResult(result);
    if (config.out) console.log(`\nResult written to ${config.out}`);
  }
  return 0;
}

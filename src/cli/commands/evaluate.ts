import { parseAttackList } from '../../core/attacks/run';
import { UserError } from '../../core/errors';
import { runEvaluation } from '../../core/eval/evaluate';
import { DEFAULT_CONFIG, type AttackPlan, type EvaluationConfig } from '../../protocol/experiment';
import type { RunResult } from '../../protocol/run-result';
import { integer, number, numberList, oneOf, optionalInteger, parse, required, str, type Options, type Values } from '../args';
import { percent, table } from '../table';

export const EVALUATE_USAGE = `robustness-lab evaluate --model <model.onnx> --data <dataset> [--labels <file>] [--limit N]
                        [--batch B] [--threads T] [--ep auto|cpu|cuda] [--seed S]
                        [--mean m[,m,m]] [--std s[,s,s]] [--scale k] [--out result.json] [--json]
                        [--attack fgsm,bim,pgd,mifgsm,spsa,square --eps e1,e2,... [--norm linf|l2]
                         [--steps N] [--step-size A] [--restarts R] [--no-random-start] [--queries Q]
                         [--loss ce|cw] [--targeted]]`;

export const EVALUATE_OPTIONS: Options = {
  model: { type: 'string' },
  data: { type: 'string' },
  labels: { type: 'string' },
  limit: { type: 'string' },
  batch: { type: 'string' },
  threads: { type: 'string' },
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

const ATTACK_FLAGS = ['eps', 'norm', 'steps', 'step-size', 'restarts', 'no-random-start', 'queries', 'loss', 'targeted'];

export function evaluationConfigFromFlags(values: Values): EvaluationConfig {
  return {
    model: required(values, 'model', '<model.onnx>'),
    data: required(values, 'data', '<dataset> (IDX, .npy, .npz or an image folder)'),
    labels: str(values, 'labels'),
    limit: optionalInteger(values, 'limit', 1),
    batchSize: integer(values, 'batch', DEFAULT_CONFIG.batchSize, 1),
    threads: integer(values, 'threads', DEFAULT_CONFIG.threads, 0),
    ep: oneOf(values, 'ep', ['auto', 'cpu', 'cuda'] as const, DEFAULT_CONFIG.ep),
    seed: integer(values, 'seed', DEFAULT_CONFIG.seed, 0),
    preprocessing: { scale: number(values, 'scale'), mean: numberList(values, 'mean'), std: numberList(values, 'std') },
    attacks: attackPlanFromFlags(values),
    out: str(values, 'out'),
  };
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
  if (r.attacks?.length) {
    console.log('');
    console.log(
      table(
        ['attack', 'threat', 'norm', 'eps', 'robust accuracy', 'success rate', 'mean ‖δ‖', 'max ‖δ‖', 'gradients', 'queries', 'seconds'],
        r.attacks.map((a) => [a.attack, a.threat, a.norm, a.eps, percent(a.accuracy), percent(a.successRate), a.meanPerturbation.toFixed(4), a.maxPerturbation.toFixed(4), a.gradientEvaluations, a.queries, a.seconds.toFixed(1)]),
        [false, false, false, true, true, true, true, true, true, true, true],
      ),
    );
  }
}

export async function evaluateCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, EVALUATE_OPTIONS, 'evaluate');
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

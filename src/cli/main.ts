/**
 * The command-line front end: parses flags into the same configs the extension uses, calls the
 * engine, prints tables. No logic of its own beyond presentation.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UserError } from '../core/errors';
import { CancelledError, runEvaluation } from '../core/eval/evaluate';
import { inspectModel } from '../core/eval/model-session';
import type { ModelGraph } from '../core/model/graph';
import { TOOL_VERSION } from '../core/version';
import { parseAttackList } from '../core/attacks/run';
import { DEFAULT_CONFIG, type AttackPlan, type EvaluationConfig } from '../protocol/experiment';
import type { RunResult } from '../protocol/run-result';
import { percent, table } from './table';

const USAGE = `robustness-lab ${TOOL_VERSION}: adversarial robustness of ONNX image classifiers

Usage:
  robustness-lab inspect <model.onnx> [--json]
  robustness-lab evaluate --model <model.onnx> --data <dataset> [--labels <file>] [--limit N]
                          [--batch B] [--threads T] [--ep auto|cpu|cuda] [--seed S]
                          [--mean m[,m,m]] [--std s[,s,s]] [--scale k] [--out result.json] [--json]
                          [--attack fgsm,bim,pgd,mifgsm,spsa,square --eps e1,e2,... [--norm linf|l2]
                           [--steps N] [--step-size A] [--restarts R] [--no-random-start] [--queries Q]
                           [--loss ce|cw] [--targeted]]

Datasets: IDX (raw or .gz), .npy, .npz, or a folder with one sub-folder of PNG/JPEG images per class.
Run 'robustness-lab <command> --help' for the flags of one command.`;

type Options = NonNullable<ParseArgsConfig['options']>;

const EVALUATE_OPTIONS: Options = {
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
  help: { type: 'boolean' },
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

function parse(argv: string[], options: Options, command: string) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UserError(`${command}: ${(e as Error).message}`, `Run 'robustness-lab ${command} --help'.`);
  }
}

function integer(value: string | undefined, flag: string, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UserError(`--${flag} must be an integer ≥ ${min}, got '${value}'.`);
  return n;
}

function numberList(value: string | undefined, flag: string): number[] | undefined {
  if (value === undefined) return undefined;
  const list = value.split(',').map(Number);
  if (list.some((v) => !Number.isFinite(v))) throw new UserError(`--${flag} must be a comma-separated list of numbers, got '${value}'.`);
  return list;
}

export function evaluationConfigFromFlags(values: Record<string, unknown>): EvaluationConfig {
  const str = (k: string) => values[k] as string | undefined;
  if (!str('model')) throw new UserError('evaluate needs --model <model.onnx>.');
  if (!str('data')) throw new UserError('evaluate needs --data <dataset> (IDX, .npy, .npz or an image folder).');
  const ep = str('ep') ?? DEFAULT_CONFIG.ep;
  if (ep !== 'auto' && ep !== 'cpu' && ep !== 'cuda') throw new UserError(`--ep must be auto, cpu or cuda, got '${ep}'.`);
  const scale = str('scale') === undefined ? undefined : Number(str('scale'));
  if (scale !== undefined && !Number.isFinite(scale)) throw new UserError(`--scale must be a number, got '${str('scale')}'.`);
  return {
    model: str('model')!,
    data: str('data')!,
    labels: str('labels'),
    limit: values.limit === undefined ? undefined : integer(str('limit'), 'limit', 0, 1),
    batchSize: integer(str('batch'), 'batch', DEFAULT_CONFIG.batchSize, 1),
    threads: integer(str('threads'), 'threads', DEFAULT_CONFIG.threads, 0),
    ep,
    seed: integer(str('seed'), 'seed', DEFAULT_CONFIG.seed, 0),
    preprocessing: { scale, mean: numberList(str('mean'), 'mean'), std: numberList(str('std'), 'std') },
    attacks: attackPlanFromFlags(values),
    out: str('out'),
  };
}

function attackPlanFromFlags(values: Record<string, unknown>): AttackPlan | undefined {
  const str = (k: string) => values[k] as string | undefined;
  const attackFlags = ['eps', 'norm', 'steps', 'step-size', 'restarts', 'no-random-start', 'queries', 'loss', 'targeted'];
  if (!str('attack')) {
    const stray = attackFlags.find((f) => values[f] !== undefined);
    if (stray) throw new UserError(`--${stray} only applies together with --attack.`, 'Add e.g. --attack fgsm,pgd --eps 0.01,0.03');
    return undefined;
  }
  const names = parseAttackList(str('attack')!);
  const eps = numberList(str('eps'), 'eps');
  if (!eps) throw new UserError('--attack needs --eps with one or more epsilons, e.g. --eps 0.01,0.02,0.05.');
  const norm = str('norm') ?? 'linf';
  if (norm !== 'linf' && norm !== 'l2') throw new UserError(`--norm must be linf or l2, got '${norm}'.`);
  const loss = str('loss');
  if (loss !== undefined && loss !== 'ce' && loss !== 'cw') throw new UserError(`--loss must be ce or cw, got '${loss}'.`);
  const stepSize = str('step-size') === undefined ? undefined : Number(str('step-size'));
  if (stepSize !== undefined && !(stepSize > 0)) throw new UserError(`--step-size must be a positive number, got '${str('step-size')}'.`);
  return {
    names, eps, norm, loss, stepSize,
    steps: values.steps === undefined ? undefined : integer(str('steps'), 'steps', 0, 1),
    restarts: values.restarts === undefined ? undefined : integer(str('restarts'), 'restarts', 0, 1),
    queries: values.queries === undefined ? undefined : integer(str('queries'), 'queries', 0, 1),
    randomStart: values['no-random-start'] ? false : undefined,
    targeted: values.targeted ? true : undefined,
  };
}

function shapeText(shape: (number | string)[] | undefined): string {
  return shape ? `[${shape.join(', ')}]` : '?';
}

export function inspectJson(graph: ModelGraph) {
  return {
    inputs: graph.inputs,
    outputs: graph.outputs,
    layers: graph.layers.map((l) => ({ name: l.name, op: l.op, outputs: l.outputs, shape: l.shape ?? null, params: l.params, insertionPoint: l.insertionPoint })),
  };
}

function printInspect(graph: ModelGraph): void {
  console.log(`${graph.path}  (opset ${graph.opset}${graph.producer ? `, ${graph.producer}` : ''}, ${graph.totalParams.toLocaleString('en-US')} parameters)`);
  console.log('\nInputs:');
  for (const i of graph.inputs) console.log(`  ${i.name}  ${i.elemType} ${shapeText(i.shape)}`);
  console.log('Outputs:');
  for (const o of graph.outputs) console.log(`  ${o.name}  ${o.elemType} ${shapeText(o.shape)}`);
  console.log('\nLayers (✓ = insertion point: a defense can go right after this layer):\n');
  console.log(
    table(
      ['#', 'layer', 'op', 'output', 'shape', 'params', 'insert'],
      graph.layers.map((l) => [l.index, l.name, l.op, l.outputs.join(', '), shapeText(l.shape), l.params.toLocaleString('en-US'), l.insertionPoint ? '✓' : '']),
      [true, false, false, false, false, true, false],
    ),
  );
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

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'inspect': {
      const { values, positionals } = parse(rest, { json: { type: 'boolean' }, threads: { type: 'string' }, help: { type: 'boolean' } }, 'inspect');
      if (values.help || positionals.length !== 1) {
        console.log('Usage: robustness-lab inspect <model.onnx> [--json] [--threads T]');
        return values.help ? 0 : 2;
      }
      const { graph } = await inspectModel(positionals[0], integer(values.threads as string | undefined, 'threads', 1, 0));
      if (values.json) console.log(JSON.stringify(inspectJson(graph), null, 2));
      else printInspect(graph);
      return 0;
    }
    case 'evaluate': {
      const { values } = parse(rest, EVALUATE_OPTIONS, 'evaluate');
      if (values.help) {
        console.log(USAGE);
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
    case 'version':
    case '--version':
      console.log(TOOL_VERSION);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return command ? 0 : 2;
    default:
      console.error(`Unknown command '${command}'.\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof UserError || e instanceof CancelledError) {
      console.error(`error: ${e.message}`);
      process.exitCode = e instanceof CancelledError ? 130 : 2;
    } else {
      console.error(e);
      process.exitCode = 1;
    }
  },
);

/**
 * `robustness-lab isometry`: input against activation distances at every insertion point
 * (isometric-representations paper). An evaluation with the isometry section and no attacks, so
 * `--out` writes an ordinary RunResult.
 */
import { DEFAULT_CONFIG, DEFAULT_ISOMETRY_PAIRS, type EvaluationConfig } from '../../protocol/experiment';
import {
  integer,
  layersFlag,
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
  str,
  type Values,
} from '../args';
import { runAndPrint } from './evaluate';

export const ISOMETRY_USAGE = `robustness-lab isometry --model <model.onnx> --data <dataset> [--labels <file>] [--limit N]
                        [--pairs N] [--seed S] [--layers all|T1,T2,...] [--out result.json] [--json]
                        [--batch B] [--threads T] [--ep auto|cpu|cuda] [--mean m[,m,m]] [--std s[,s,s]] [--scale k]
                        ${SAFETY_USAGE}`;

const HELP = `Usage: ${ISOMETRY_USAGE}

For every insertion point T (or those --layers names: tensors, or the nodes producing them), over
--pairs within-class and --pairs between-class pairs drawn from the data (seeded, with replacement;
default ${DEFAULT_ISOMETRY_PAIRS} each): Pearson r and Spearman ρ between the input distances ‖x_i − x_j‖ and the
activation distances ‖z_i − z_j‖, the least-squares scale s of ‖z_i − z_j‖ ≈ s·‖x_i − x_j‖ and the
relative distortion mean((s·dx − dz)²) / mean(dz²) (0: distances kept up to scale; 1: not at all).`;

const OPTIONS = {
  model: { type: 'string' },
  data: { type: 'string' },
  labels: { type: 'string' },
  limit: { type: 'string' },
  pairs: { type: 'string' },
  seed: { type: 'string' },
  layers: { type: 'string' },
  out: { type: 'string' },
  json: { type: 'boolean' },
  batch: { type: 'string' },
  threads: { type: 'string' },
  ep: { type: 'string' },
  mean: { type: 'string' },
  std: { type: 'string' },
  scale: { type: 'string' },
  ...SAFETY_OPTIONS,
} as const;

export function isometryConfigFromFlags(values: Values): EvaluationConfig {
  return {
    model: required(values, 'model', '<model.onnx>'),
    data: required(values, 'data', '<dataset> (IDX, .npy, .npz or an image folder): the pairs are drawn from it'),
    labels: str(values, 'labels'),
    limit: optionalInteger(values, 'limit', 2),
    batchSize: integer(values, 'batch', DEFAULT_CONFIG.batchSize, 1),
    threads: integer(values, 'threads', DEFAULT_CONFIG.threads, 0),
    ep: oneOf(values, 'ep', ['auto', 'cpu', 'cuda'] as const, DEFAULT_CONFIG.ep),
    seed: seed(values, 'seed', DEFAULT_CONFIG.seed),
    preprocessing: { scale: number(values, 'scale'), mean: numberList(values, 'mean'), std: numberList(values, 'std') },
    isometry: { pairs: integer(values, 'pairs', DEFAULT_ISOMETRY_PAIRS, 1, 10_000_000), layers: layersFlag(values) },
    out: str(values, 'out'),
    ...safetyFromFlags(values),
  };
}

export async function isometryCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, OPTIONS, 'isometry');
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  return runAndPrint(isometryConfigFromFlags(values), values.json === true);
}

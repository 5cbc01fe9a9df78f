/**
 * `robustness-lab run exp.rlab.json`: runs an experiment file exactly as the extension does (the
 * same parser, checks and defaults), with the runtime settings from flags instead of VS Code settings.
 */
import { readFileSync } from 'node:fs';
import { UserError } from '../../core/errors';
import { DEFAULT_CONFIG, type EvaluationConfig } from '../../protocol/experiment';
import { ExperimentFileError, experimentToConfig, parseExperiment } from '../../protocol/experiment-file';
import { integer, lanesFlag, oneOf, optionalInteger, parse, SAFETY_OPTIONS, SAFETY_USAGE, safetyFromFlags, str, type Options } from '../args';
import { runAndPrint } from './evaluate';

export const RUN_USAGE = `robustness-lab run <experiment.rlab.json> [--out result.json] [--json] [--limit N] [--seed S]
                        [--batch B] [--threads T] [--lanes auto|L] [--ep auto|cpu|cuda] [--cache-dir D]
                        ${SAFETY_USAGE}`;

const RUN_OPTIONS: Options = {
  out: { type: 'string' },
  json: { type: 'boolean' },
  limit: { type: 'string' },
  seed: { type: 'string' },
  batch: { type: 'string' },
  threads: { type: 'string' },
  lanes: { type: 'string' },
  ep: { type: 'string' },
  'cache-dir': { type: 'string' },
  ...SAFETY_OPTIONS,
};

export async function runCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, RUN_OPTIONS, 'run');
  if (values.help) {
    console.log(`Usage: ${RUN_USAGE}\n\nPaths in the experiment file are relative to the file. --limit and --seed override the file's.`);
    return 0;
  }
  if (positionals.length !== 1) throw new UserError(`run takes one experiment file, got ${positionals.length}.`, `Usage: ${RUN_USAGE}`);
  const file = positionals[0];
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError(
      `Cannot read the experiment file '${file}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}.`,
      'Check the path; experiment files end in .rlab.json.',
    );
  }
  let experiment;
  try {
    experiment = experimentToConfig(parseExperiment(text, file), file);
  } catch (e) {
    if (e instanceof ExperimentFileError) throw new UserError(e.message, 'Fix the file; its JSON schema is media/experiment.schema.json.');
    throw e;
  }
  const config: EvaluationConfig = {
    ...experiment,
    limit: optionalInteger(values, 'limit', 1) ?? experiment.limit,
    seed: optionalInteger(values, 'seed', 0) ?? experiment.seed ?? DEFAULT_CONFIG.seed,
    batchSize: integer(values, 'batch', DEFAULT_CONFIG.batchSize, 1),
    threads: integer(values, 'threads', DEFAULT_CONFIG.threads, 0),
    lanes: lanesFlag(values),
    ep: oneOf(values, 'ep', ['auto', 'cpu', 'cuda'] as const, DEFAULT_CONFIG.ep),
    cacheDir: str(values, 'cache-dir'),
    out: str(values, 'out'),
    ...safetyFromFlags(values),
  };
  return runAndPrint(config, values.json === true);
}

/**
 * `robustness-lab sweep`: one defense at several insertion points (LESCI paper, section 4), each
 * evaluated as `evaluate --defense … --layer T` would, against one baseline attacked once; a table
 * of clean accuracy, projection rate, worst case per epsilon, isometry and verdict per layer, with
 * the Pareto front of clean against robust accuracy marked. The flags are evaluate's (built by the
 * same functions), with --layers instead of --layer.
 */
import { UserError } from '../../core/errors';
import { DEFENSE_KINDS } from '../../core/defenses/registry';
import { DEFAULT_ISOMETRY_PAIRS, THREAT_MODELS, type EvaluationConfig } from '../../protocol/experiment';
import { integer, layersFlag, parse, SAFETY_OPTIONS, SAFETY_USAGE, str, type Values } from '../args';
import { DEFENSE_OPTIONS, EVALUATE_OPTIONS, evaluationConfigFromFlags, runAndPrint } from './evaluate';

export const SWEEP_USAGE = `robustness-lab sweep --model <model.onnx> --data <dataset> [--labels <file>] [--limit N]
                        --defense ${DEFENSE_KINDS.join('|')} --reference <images> [--reference-labels <file>] [--reference-limit N]
                        [--layers all|T1,T2,...] [defense options] [--threat ${THREAT_MODELS.join(',')}] [--cache-dir D]
                        --eps e1,e2,... [--strength quick|standard|thorough | --attack a1,a2 [attack options]]
                        [--pairs N] [--seed S] [--out result.json] [--json]
                        [--batch B] [--threads T] [--lanes auto|L] [--ep auto|cpu|cuda] [--mean m[,m,m]] [--std s[,s,s]] [--scale k]
                        ${SAFETY_USAGE}`;

const HELP = `Usage: ${SWEEP_USAGE}

The defense goes after each insertion point of --layers in turn (default all: every insertion
point after the input; or tensors, or the nodes producing them), is fitted there on the reference
set (fits are cached, keyed by the layer), and is attacked under every threat model (--threat,
default all, the adaptive one and its variants included) with the same attacks, checks and
per-sample union worst case as 'robustness-lab evaluate'. The undefended model is attacked once.
Without --attack or --strength the sweep runs --strength quick.

Per layer: clean accuracy of the defended model, projection rate (LESCI vote), the worst case per
epsilon, the verdict, the within-class Pearson r of input and activation distances over --pairs
pairs (default ${DEFAULT_ISOMETRY_PAIRS}; see 'robustness-lab isometry'), and whether the layer is on the
Pareto front of (clean accuracy, worst case at the largest epsilon): no other layer is at least as
good in both and better in one. The defense and attack flags are those of 'robustness-lab evaluate --help'.`;

const OPTIONS = {
  ...EVALUATE_OPTIONS,
  ...DEFENSE_OPTIONS,
  ...SAFETY_OPTIONS,
  layers: { type: 'string' },
  pairs: { type: 'string' },
} as const;

export function sweepConfigFromFlags(values: Values): EvaluationConfig {
  if (values.layer !== undefined)
    throw new UserError(
      `--layer names one insertion point; a sweep takes --layers all|T1,T2,… (got --layer '${String(values.layer)}').`,
      "For one layer, use 'robustness-lab evaluate --layer …'.",
    );
  if (!str(values, 'defense'))
    throw new UserError('sweep needs --defense: the defense to insert at each layer.', `Add --defense ${DEFENSE_KINDS.join('|')} --reference <images>.`);
  if (str(values, 'eps') === undefined)
    throw new UserError(
      'sweep attacks the defense at every layer and needs --eps with one or more epsilons.',
      'e.g. --eps 0.02,0.05 (with --strength quick, the default, or --attack …).',
    );
  const layers = layersFlag(values);
  // The defense flags go through evaluate's parser; its --layer is then set per layer by the sweep.
  const withDefaults: Values = {
    ...values,
    layer: layers?.[0] ?? 'each insertion point',
    ...(str(values, 'attack') === undefined && str(values, 'strength') === undefined && { strength: 'quick' }),
  };
  const config = evaluationConfigFromFlags(withDefaults);
  return { ...config, sweep: { ...(layers && { layers }), pairs: integer(values, 'pairs', DEFAULT_ISOMETRY_PAIRS, 1, 10_000_000) } };
}

export async function sweepCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, OPTIONS, 'sweep');
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  return runAndPrint(sweepConfigFromFlags(values), values.json === true);
}

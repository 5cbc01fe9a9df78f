import { UserError } from '../../core/errors';
import { exportDefended } from '../../core/eval/export';
import { DEFAULT_CONFIG } from '../../protocol/experiment';
import { checkWritableOut } from '../../core/fs-atomic';
import { cliSignal, integer, number, numberList, parse, required, str } from '../args';
import { DEFENSE_OPTIONS, defensePlanFromFlags } from './evaluate';

export const EXPORT_USAGE = `robustness-lab export --model <model.onnx> --defense lesci|dae|retrieval --layer <tensor> --reference <images>
                        [--reference-labels <file>] [--reference-limit N] [defense options] -o <defended.onnx>`;

export async function exportCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      ...DEFENSE_OPTIONS,
      model: { type: 'string' },
      out: { type: 'string', short: 'o' },
      seed: { type: 'string' },
      threads: { type: 'string' },
      batch: { type: 'string' },
      scale: { type: 'string' },
      mean: { type: 'string' },
      std: { type: 'string' },
    },
    'export',
  );
  if (values.help) {
    console.log(`Usage: ${EXPORT_USAGE}\n\nThe defense options are those of 'robustness-lab evaluate --help'.`);
    return 0;
  }
  if (values.threat !== undefined) throw new UserError('--threat applies to evaluate, not to export.');
  const defense = defensePlanFromFlags(values);
  if (!defense) throw new UserError('export needs --defense lesci|dae|retrieval with --layer and --reference.');
  const out = checkWritableOut(required(values, 'out', '(-o) <defended.onnx>'), '-o');
  const result = await exportDefended(
    {
      model: required(values, 'model', '<model.onnx>'),
      defense,
      out,
      seed: integer(values, 'seed', DEFAULT_CONFIG.seed, 0),
      threads: integer(values, 'threads', DEFAULT_CONFIG.threads, 0),
      batchSize: integer(values, 'batch', DEFAULT_CONFIG.batchSize, 1),
      cacheDir: str(values, 'cache-dir'),
      preprocessing: { scale: number(values, 'scale'), mean: numberList(values, 'mean'), std: numberList(values, 'std') },
    },
    { onLog: (line) => console.error(line), signal: cliSignal() },
  );
  console.log(`Wrote ${result.out} (${(result.bytes / 1024).toFixed(0)} KiB): ${defense.kind} after '${defense.layer}', outputs ${result.outputs.join(', ')}.`);
  return 0;
}

import { checkWritableOut } from '../../core/fs-atomic';
import { createHash } from 'node:crypto';
import { loadLabelFile } from '../../core/data/labels';
import { encodeNpyFloat32 } from '../../core/data/npy';
import { UserError } from '../../core/errors';
import { writeFileAtomic } from '../../core/fs-atomic';
import { loadInputTensor } from '../../core/data/tensor-file';
import type { GradientTarget } from '../../core/onnx/autodiff';
import { computeGradient } from '../../core/runtime/compute-gradient';
import { gradcheck } from '../../core/runtime/gradcheck';
import { inspectModel } from '../../core/eval/model-session';
import { sizeOf } from '../../core/tensor';
import { integer, number, oneOf, parse, required, str } from '../args';
import { table } from '../table';

export const GRADIENT_USAGE = `robustness-lab gradient --model <model.onnx> --input <x.npy|x.pb> [--labels <y.npy|idx|txt> [--loss ce-sum|ce-mean|cw] | --cotangent <dy.npy>]
                        --out <g.npy> [--ep auto|cpu|cuda] [--threads T]`;
export const GRADCHECK_USAGE =
  'robustness-lab gradcheck <model.onnx> [--input x.npy|tensor.pb] [--samples K] [--seed S] [--step h] [--tolerance t] [--threads T]';

export async function gradientCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      model: { type: 'string' },
      input: { type: 'string' },
      labels: { type: 'string' },
      cotangent: { type: 'string' },
      loss: { type: 'string' },
      out: { type: 'string' },
      ep: { type: 'string' },
      threads: { type: 'string' },
    },
    'gradient',
  );
  if (values.help) {
    console.log(`Usage: ${GRADIENT_USAGE}`);
    return 0;
  }
  const model = required(values, 'model', '<model.onnx>');
  const out = checkWritableOut(required(values, 'out', '<g.npy> for the gradient'));
  const x = loadInputTensor(required(values, 'input', '<x.npy|x.pb>: the input batch'));
  const labelsPath = str(values, 'labels');
  const cotangentPath = str(values, 'cotangent');
  if (!!labelsPath === !!cotangentPath) {
    throw new UserError('gradient needs exactly one of --labels (the gradient of a loss) or --cotangent (a vector-Jacobian product).');
  }
  let target: GradientTarget;
  let labels: Int32Array | undefined;
  let cotangent: Float32Array | undefined;
  if (labelsPath) {
    target = { kind: 'loss', loss: oneOf(values, 'loss', ['ce-sum', 'ce-mean', 'cw'] as const, 'ce-sum') };
    labels = await loadLabelFile(labelsPath, createHash('sha256'));
  } else {
    if (values.loss !== undefined) throw new UserError('--loss applies to --labels, not to --cotangent.');
    target = { kind: 'vjp' };
    cotangent = loadInputTensor(cotangentPath!).data;
  }
  const grad = await computeGradient(model, x, target, {
    labels,
    cotangent,
    ep: oneOf(values, 'ep', ['auto', 'cpu', 'cuda'] as const, 'cpu'),
    threads: integer(values, 'threads', 0),
  });
  writeFileAtomic(out, encodeNpyFloat32(grad, x.dims));
  let norm = 0;
  for (const g of grad) norm += g * g;
  console.log(
    `Wrote the ${target.kind === 'loss' ? `${target.loss} ` : 'vjp '}input gradient [${x.dims.join(', ')}] to ${out} (L2 norm ${Math.sqrt(norm).toPrecision(6)}).`,
  );
  return 0;
}

export async function gradcheckCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      input: { type: 'string' },
      samples: { type: 'string' },
      seed: { type: 'string' },
      step: { type: 'string' },
      tolerance: { type: 'string' },
      threads: { type: 'string' },
    },
    'gradcheck',
  );
  if (values.help || positionals.length !== 1) {
    console.log(`Usage: ${GRADCHECK_USAGE}`);
    return values.help ? 0 : 2;
  }
  const { loaded, graph } = await inspectModel(positionals[0]);
  let input: Float32Array | undefined;
  const inputPath = str(values, 'input');
  if (inputPath) {
    const t = loadInputTensor(inputPath);
    const expected = graph.inputs[0].shape.map((d, i) => (typeof d === 'number' && d > 0 ? d : t.dims[i]));
    if (t.dims.length !== expected.length || sizeOf(t.dims) !== sizeOf(expected)) {
      throw new UserError(`${inputPath} has shape [${t.dims.join(', ')}]; input '${graph.inputs[0].name}' wants [${graph.inputs[0].shape.join(', ')}].`);
    }
    input = t.data;
  }
  const result = await gradcheck(loaded.model, graph.shapes, {
    input,
    samples: integer(values, 'samples', 20, 1),
    seed: integer(values, 'seed', 0, 0),
    eps: number(values, 'step'),
    tolerance: number(values, 'tolerance'),
    threads: integer(values, 'threads', 1, 0),
  });
  console.log(
    table(
      ['input', 'coordinates', 'skipped (kinks)', 'median rel. error', 'worst rel. error'],
      result.perInput.map((p) => [p.input, p.checked, p.skipped, p.medianRelativeError.toExponential(2), p.worstRelativeError.toExponential(2)]),
      [false, true, true, true, true],
    ),
  );
  console.log(
    `\n${result.ok ? 'OK' : 'FAILED'}: median relative error ${result.ok ? '≤' : '>'} ${result.tolerance} (central differences, step ${result.eps} × max|x|).`,
  );
  return result.ok ? 0 : 1;
}

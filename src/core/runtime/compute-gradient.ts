/** One-shot input gradient of a model file (the CLI's `gradient` command). */
import * as ort from 'onnxruntime-node';
import { UserError } from '../errors';
import { inferShapes } from './shapes';
import { createSession, type ProviderChoice } from './session';
import { loadModel } from '../model/load';
import { encodeModel } from '../onnx/proto';
import { buildGradientModel } from '../onnx/autodiff/build';
import type { GradientTarget } from '../onnx/autodiff/types';

export interface ComputeGradientOptions {
  /** Class indices, one per sample (loss targets). */
  labels?: Int32Array;
  /** dy, shaped like the output (vjp target). */
  cotangent?: Float32Array;
  ep?: ProviderChoice;
  threads?: number;
}

export async function computeGradient(
  modelPath: string,
  x: { data: Float32Array; dims: number[] },
  target: GradientTarget,
  options: ComputeGradientOptions = {},
): Promise<Float32Array> {
  const loaded = loadModel(modelPath);
  const shapes = await inferShapes(loaded, options.threads ?? 1);
  const gm = buildGradientModel(loaded.model, shapes, target);
  const session = await createSession(encodeModel(gm.model), { ep: options.ep ?? 'cpu', threads: options.threads });
  try {
    const feeds: Record<string, ort.Tensor> = { [gm.input]: new ort.Tensor('float32', x.data, x.dims) };
    if (target.kind === 'vjp') {
      if (!options.cotangent) throw new UserError('The vjp gradient needs a cotangent dy shaped like the output.');
      const outDims = shapes.get(gm.output)!.map((d) => (typeof d === 'number' ? d : x.dims[0]));
      feeds[gm.cotangent!] = new ort.Tensor('float32', options.cotangent, outDims);
    } else {
      if (!options.labels) throw new UserError(`The ${target.loss} gradient needs one label per sample.`, 'Pass the labels (class indices).');
      if (options.labels.length !== x.dims[0]) throw new UserError(`${options.labels.length} labels for a batch of ${x.dims[0]} samples.`);
      feeds[gm.labels!] = new ort.Tensor(
        'int64',
        BigInt64Array.from(options.labels, (v) => BigInt(v)),
        [options.labels.length],
      );
    }
    const out = await session.run(feeds, [gm.grad]);
    return out[gm.grad].data as Float32Array;
  } finally {
    await session.release();
  }
}

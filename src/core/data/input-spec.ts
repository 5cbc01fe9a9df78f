/** Reading the image layout and size from a model's input shape. */
import { UserError } from '../errors';
import { CHANNEL_COUNTS } from './images';
import type { InputSpec } from './types';
const isChannelDim = (d: number | string): boolean => typeof d === 'number' && CHANNEL_COUNTS.includes(d);

/**
 * [N, C, H, W] when dim 1 is 1/3/4 (ONNX's usual layout, also when dim 3 is too), else [N, H, W, C] when dim 3 is.
 * The batch dim may be symbolic or -1; channels and spatial dims must be concrete.
 */
export function inferInputSpec(dims: readonly (number | string)[]): InputSpec {
  const shown = `[${dims.join(', ')}]`;
  if (dims.length !== 4) {
    throw new UserError(
      `Model input has shape ${shown} (rank ${dims.length}); expected a rank-4 image input like [N, 3, 224, 224] or [N, 224, 224, 3].`,
      'Only image classifiers with one 4-D image input are supported.',
    );
  }
  const spec: InputSpec | undefined = isChannelDim(dims[1])
    ? { layout: 'NCHW', channels: dims[1] as number, height: concrete(dims[2], 'height', shown), width: concrete(dims[3], 'width', shown) }
    : isChannelDim(dims[3])
      ? { layout: 'NHWC', channels: dims[3] as number, height: concrete(dims[1], 'height', shown), width: concrete(dims[2], 'width', shown) }
      : undefined;
  if (!spec) {
    throw new UserError(
      `Model input has shape ${shown}; expected 1, 3 or 4 channels in dim 1 (NCHW) or dim 3 (NHWC), found ${dims[1]} and ${dims[3]}.`,
      'The model does not look like an image classifier; export it with a fixed channel dimension.',
    );
  }
  return spec;
}

function concrete(d: number | string, name: string, shown: string): number {
  if (typeof d === 'number' && Number.isInteger(d) && d > 0) return d;
  throw new UserError(
    `Model input has shape ${shown}; its ${name} is ${typeof d === 'string' ? `symbolic ('${d}')` : d}, expected a fixed positive size.`,
    'Export the model with a fixed input size (only the batch dimension may be dynamic).',
  );
}

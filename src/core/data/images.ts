/** Interpreting a decoded array as a batch of images. */
import { UserError } from '../errors';
import type { NdArray } from './ndarray';
import type { Layout } from './types';

export interface ImageArray {
  pixels: Uint8Array | Float32Array;
  layout: Layout;
  count: number;
  height: number;
  width: number;
  channels: number;
}

export const CHANNEL_COUNTS = [1, 3, 4];

/** Auto-detection: a trailing 1/3/4 dim means NHWC unless dim 1 also looks like channels (ONNX favours NCHW). */
export function guessLayout(shape: readonly number[]): Layout {
  return CHANNEL_COUNTS.includes(shape[3]) && !CHANNEL_COUNTS.includes(shape[1]) ? 'NHWC' : 'NCHW';
}

/** `where` names the file (and array) for error messages. */
export function toImages(arr: NdArray, layout: Layout | 'auto', where: string): ImageArray {
  const { shape } = arr;
  if (shape.length !== 3 && shape.length !== 4) {
    throw new UserError(
      `${where} has shape [${shape.join(', ')}]; expected images of shape (N, H, W), (N, H, W, C) or (N, C, H, W).`,
      shape.length === 2 ? 'Flattened images must be reshaped, e.g. array.reshape(-1, 28, 28), before saving.' : undefined,
    );
  }
  if (shape.includes(0)) throw new UserError(`${where} has shape [${shape.join(', ')}]; expected at least one non-empty image.`);
  const pixels = imagePixels(arr, where);
  if (shape.length === 3) {
    const [count, height, width] = shape;
    return { pixels, layout: 'NHWC', count, height, width, channels: 1 };
  }
  const resolved = layout === 'auto' ? guessLayout(shape) : layout;
  const [count, a, b, c] = shape;
  return resolved === 'NHWC'
    ? { pixels, layout: resolved, count, height: a, width: b, channels: c }
    : { pixels, layout: resolved, count, channels: a, height: b, width: c };
}

function imagePixels(arr: NdArray, where: string): Uint8Array | Float32Array {
  if (arr.data instanceof Uint8Array || arr.data instanceof Float32Array) return arr.data;
  throw new UserError(
    `${where} holds ${arr.dtype} values; expected uint8 (0..255) or float32/float64 images.`,
    'Convert the images with array.astype(numpy.uint8) or array.astype(numpy.float32).',
  );
}

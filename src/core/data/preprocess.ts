/** Turning a loaded image set into the float tensor a model input expects. */
import { UserError } from '../errors';
import { resizeBilinear } from './resize';
import type { InputSpec, PreprocessOptions, RawImageSet } from './types';

type ChannelConverter = (hwc: Float32Array, pixels: number) => Float32Array;

/**
 * Per sample: layout → channel conversion → bilinear resize → (x*scale - mean[c]) / std[c] → target layout.
 * Returns count*C*H*W values in `target.layout`.
 */
export function preprocess(raw: RawImageSet, target: InputSpec, opts: PreprocessOptions = {}): Float32Array {
  const { channels, height, width } = target;
  const normalize = normalizer(raw, target, opts);
  const convert = channelConverter(raw.channels, channels, raw.info.path);
  const size = channels * height * width;
  const out = allocate(raw.count, size, raw.info.path);
  for (let n = 0; n < raw.count; n++) {
    let img = convert(sampleHWC(raw, n), raw.height * raw.width);
    if (raw.height !== height || raw.width !== width) img = resizeBilinear(img, raw.height, raw.width, channels, height, width);
    normalize(img);
    writeSample(img, out.subarray(n * size, (n + 1) * size), target);
  }
  return out;
}

/** Largest float32 array this tool allocates for a dataset: 4 GiB. */
const MAX_ELEMENTS = 2 ** 30;

/** The output array, or a UserError saying how much was asked for (never a bare RangeError). */
function allocate(count: number, size: number, path: string): Float32Array {
  const n = count * size;
  const tooMuch = () =>
    new UserError(
      `${path}: ${count} samples of ${size} values each need ${((n * 4) / 1024 ** 3).toFixed(1)} GiB as float32, more than can be held at once.`,
      'Evaluate fewer samples (--limit), or a model with a smaller input.',
    );
  if (!Number.isSafeInteger(n) || n > MAX_ELEMENTS) throw tooMuch();
  try {
    return new Float32Array(n);
  } catch (e) {
    if (e instanceof RangeError) throw tooMuch();
    throw e;
  }
}

/** Sample `n` as interleaved H×W×C floats, whatever the stored layout. */
function sampleHWC(raw: RawImageSet, n: number): Float32Array {
  const { height, width, channels } = raw;
  const plane = height * width;
  const start = n * plane * channels;
  const src = raw.pixels.subarray(start, start + plane * channels);
  if (raw.layout === 'NHWC' || channels === 1) return Float32Array.from(src);
  const out = new Float32Array(plane * channels);
  for (let c = 0; c < channels; c++) for (let p = 0; p < plane; p++) out[p * channels + c] = src[c * plane + p];
  return out;
}

function writeSample(hwc: Float32Array, dst: Float32Array, target: InputSpec): void {
  const { channels } = target;
  if (target.layout === 'NHWC' || channels === 1) return dst.set(hwc);
  const plane = target.height * target.width;
  for (let c = 0; c < channels; c++) for (let p = 0; p < plane; p++) dst[c * plane + p] = hwc[p * channels + c];
}

function channelConverter(from: number, to: number, path: string): ChannelConverter {
  if (from === to) return (hwc) => hwc;
  if (from === 1 && to === 3) return (hwc, pixels) => mapPixels(hwc, pixels, 1, 3, (s, i, d, o) => d.fill(s[i], o, o + 3));
  // ITU-R BT.601 luma, the weights PIL and torchvision use for RGB → L.
  if (from === 3 && to === 1)
    return (hwc, pixels) =>
      mapPixels(hwc, pixels, 3, 1, (s, i, d, o) => {
        d[o] = 0.299 * s[i] + 0.587 * s[i + 1] + 0.114 * s[i + 2];
      });
  if (from === 4 && to === 3) return (hwc, pixels) => mapPixels(hwc, pixels, 4, 3, (s, i, d, o) => d.set(s.subarray(i, i + 3), o));
  throw new UserError(
    `${path} has ${from} channel(s) but the model input expects ${to}; supported conversions are 1→3, 3→1 and 4→3.`,
    'Use a dataset whose images match the model input (gray for 1 channel, RGB for 3).',
  );
}

function mapPixels(
  src: Float32Array,
  pixels: number,
  from: number,
  to: number,
  fn: (src: Float32Array, i: number, dst: Float32Array, o: number) => void,
): Float32Array {
  const dst = new Float32Array(pixels * to);
  for (let p = 0; p < pixels; p++) fn(src, p * from, dst, p * to);
  return dst;
}

/** Validates the options and returns an in-place (x*scale - mean[c]) / std[c] over an H×W×C image. */
function normalizer(raw: RawImageSet, target: InputSpec, opts: PreprocessOptions): (hwc: Float32Array) => void {
  const scale = opts.scale ?? (raw.pixels instanceof Uint8Array ? 1 / 255 : 1);
  if (!Number.isFinite(scale)) throw new UserError(`Preprocessing scale must be a finite number; found ${scale}.`);
  const mean = perChannel(opts.mean, 0, 'mean', target.channels);
  const std = perChannel(opts.std, 1, 'std', target.channels);
  if (std.some((s) => s === 0 || !Number.isFinite(s))) {
    throw new UserError(`Preprocessing std must be finite and non-zero; found [${std.join(', ')}].`);
  }
  const C = target.channels;
  return (hwc) => {
    for (let i = 0; i < hwc.length; i++) hwc[i] = (hwc[i] * scale - mean[i % C]) / std[i % C];
  };
}

function perChannel(values: number[] | undefined, fallback: number, name: string, channels: number): number[] {
  if (values === undefined) return new Array<number>(channels).fill(fallback);
  if (values.length === 1) return new Array<number>(channels).fill(values[0]);
  if (values.length !== channels) {
    throw new UserError(
      `Preprocessing ${name} has ${values.length} values but the model input has ${channels} channel(s); expected 1 or ${channels} values.`,
      `Give one ${name} per input channel, e.g. ImageNet uses 3 values for RGB.`,
    );
  }
  if (values.some((v) => !Number.isFinite(v))) throw new UserError(`Preprocessing ${name} must be finite numbers; found [${values.join(', ')}].`);
  return values;
}

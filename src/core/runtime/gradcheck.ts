/**
 * gradcheck: compares the generated vjp with central finite differences of the forward model,
 * both run in onnxruntime (float32). For a random cotangent dy, f(x) = <dy, y(x)> is accumulated
 * in float64; on K random coordinates i, n_i = (f(x + h·eᵢ) − f(x − h·eᵢ)) / (x⁺ᵢ − x⁻ᵢ) (the float32
 * step actually taken) is compared with the vjp's a_i.
 *
 * What is honest for float32 (measured on resnet18 / mobilenet_v2 / squeezenet1_1 against PyTorch):
 *  - h = eps·max|x| with eps = 1e-3: smaller steps drown in the rounding of f (every output moves),
 *    larger ones cross more ReLU/max kinks.
 *  - A coordinate whose step crosses a kink is detected by its second difference
 *    |f⁺ − 2f⁰ + f⁻| / 2h exceeding 4× the median over the checked coordinates, and skipped.
 *  - error_i = |a − n| / max(|a|, |n|, floor), floor = max(1% of the gradient's RMS, 3× that median
 *    second difference, i.e. the finite differences' own noise level).
 *  - Deep float32 networks still show single coordinates at 0.3-0.5 from rounding alone, while a
 *    wrong gradient (30% off: median ≈ 0.23) moves the typical error: `ok` is median error ≤
 *    tolerance (default 0.15; correct deep models measured 0.02-0.08); the worst error is reported
 *    too. Small models give errors ~1e-5.
 */
import * as ort from 'onnxruntime-node';
import { UserError } from '../errors';
import type { Dim } from './shapes';
import { Rng } from '../random';
import { createSession, type Session } from './session';
import { dataInputs } from '../onnx/graph-utils';
import { decodeModel, encodeModel, DataType, type ModelProto } from '../onnx/proto';
import { buildGradientModel } from '../onnx/autodiff/build';

export interface GradcheckOptions {
  /** Values of the input (of the first float input when the model has several); seeded uniform [0, 1) when absent. */
  input?: Float32Array;
  /** Number of random coordinates checked per input. */
  samples: number;
  seed: number;
  /** Relative finite-difference step: h = eps · max|x| (default 1e-3). */
  eps?: number;
  /** Largest acceptable median relative error (default 0.15). */
  tolerance?: number;
  output?: string;
  threads?: number;
}

export interface GradcheckInput {
  input: string;
  worstRelativeError: number;
  medianRelativeError: number;
  /** Coordinates compared. */
  checked: number;
  /** Coordinates skipped because the step crossed a kink (ReLU, max, clip). */
  skipped: number;
}

export interface GradcheckResult {
  perInput: GradcheckInput[];
  ok: boolean;
  tolerance: number;
  eps: number;
}

type Feeds = Map<string, { data: Float32Array; dims: number[] }>;

const BATCH_ELEMENTS = 1 << 22;

export async function gradcheck(modelOrBytes: Uint8Array | ModelProto, shapes: Map<string, Dim[]>, options: GradcheckOptions): Promise<GradcheckResult> {
  const model = modelOrBytes instanceof Uint8Array ? decodeModel(modelOrBytes) : modelOrBytes;
  const eps = options.eps ?? 1e-3;
  const tolerance = options.tolerance ?? 0.15;
  const rng = new Rng(options.seed);
  const inputs = dataInputs(model.graph!);
  if (inputs.some((v) => (v.type?.tensorType?.elemType ?? DataType.FLOAT) !== DataType.FLOAT)) {
    throw new UserError('gradcheck supports models whose inputs are all float32.');
  }
  const output = options.output ?? model.graph!.output![0].name!;

  // Concrete values for every input; a symbolic batch dim takes the given input's batch (or 2).
  const firstDims = shapes.get(inputs[0].name!) ?? [];
  const perSample = firstDims.slice(1).reduce<number>((a, d) => a * (typeof d === 'number' ? d : 1), 1);
  const batch = typeof firstDims[0] === 'number' ? firstDims[0] : options.input ? options.input.length / perSample : 2;
  const feeds: Feeds = new Map();
  for (const [k, v] of inputs.entries()) {
    const dims = (shapes.get(v.name!) ?? []).map((d) => (typeof d === 'number' ? d : batch));
    const size = dims.reduce((a, b) => a * b, 1);
    const data = k === 0 && options.input ? options.input : rng.fork(`input/${v.name}`).uniform(new Float32Array(size));
    if (data.length !== size) throw new UserError(`The gradcheck input has ${data.length} values; input '${v.name}' needs [${dims.join(', ')}] = ${size}.`);
    feeds.set(v.name!, { data, dims });
  }
  const stackable = inputs.every((v) => typeof shapes.get(v.name!)?.[0] === 'string');

  const forward = await createSession(encodeModel(model), { ep: 'cpu', threads: options.threads });
  try {
    const base = await runForward(forward, feeds, output);
    const dy = rng.fork('cotangent').normals(new Float32Array(base.data.length));
    const perInput: GradcheckInput[] = [];
    for (const v of inputs) {
      const analytic = await vjp(model, shapes, v.name!, output, feeds, dy, base.dims, options.threads);
      perInput.push(
        await compareWithFiniteDifferences(forward, {
          feeds,
          input: v.name!,
          output,
          dy,
          analytic,
          stackable,
          eps,
          samples: options.samples,
          rng: rng.fork(`coords/${v.name}`),
        }),
      );
    }
    return { perInput, ok: perInput.every((p) => p.medianRelativeError <= tolerance), tolerance, eps };
  } finally {
    await forward.release();
  }
}

export interface ComparisonSetup {
  feeds: Feeds;
  input: string;
  output: string;
  dy: Float32Array;
  /** The gradient under test, d<dy, y>/d input. */
  analytic: Float32Array;
  /** Perturbed copies may be stacked along a symbolic batch dim. */
  stackable: boolean;
  eps: number;
  samples: number;
  rng: Rng;
}

/** The coordinate-wise comparison (exported for the tests of the checker itself). */
export async function compareWithFiniteDifferences(forward: Session, s: ComparisonSetup): Promise<GradcheckInput> {
  const x = s.feeds.get(s.input)!;
  let sq = 0;
  for (const a of s.analytic) sq += a * a;
  const rms = Math.sqrt(sq / s.analytic.length);
  let maxAbs = 0;
  for (const xi of x.data) maxAbs = Math.max(maxAbs, Math.abs(xi));
  const h = s.eps * (maxAbs > 0 ? maxAbs : 1);
  const coords = pickCoordinates(s.rng, x.data.length, s.samples);
  const f0 = dot(s.dy, (await runForward(forward, s.feeds, s.output)).data, 0, s.dy.length);
  const { central, curvature } = await finiteDifferences(forward, s, coords, h, f0);
  const sorted = [...curvature].sort((p, q) => p - q);
  const noise = sorted[Math.floor(sorted.length / 2)] ?? 0;
  const floor = Math.max(1e-30, 0.01 * rms, 3 * noise);
  const errors: number[] = [];
  coords.forEach((i, k) => {
    if (curvature[k] > 4 * noise && curvature[k] > 1e-6 * rms) return; // a kink inside [x - h, x + h]
    const a = s.analytic[i],
      n = central[k];
    errors.push(Math.abs(a - n) / Math.max(Math.abs(a), Math.abs(n), floor));
  });
  errors.sort((p, q) => p - q);
  return {
    input: s.input,
    worstRelativeError: errors.length ? errors[errors.length - 1] : 0,
    medianRelativeError: errors.length ? errors[Math.floor(errors.length / 2)] : 0,
    checked: errors.length,
    skipped: coords.length - errors.length,
  };
}

function pickCoordinates(rng: Rng, n: number, k: number): number[] {
  if (k >= n) return Array.from({ length: n }, (_, i) => i);
  const chosen = new Set<number>();
  while (chosen.size < k) chosen.add(rng.int(n));
  return [...chosen];
}

function dot(dy: Float32Array, y: Float32Array, offset: number, n: number): number {
  let s = 0;
  for (let j = 0; j < n; j++) s += dy[j] * y[offset + j];
  return s;
}

async function runForward(session: Session, feeds: Feeds, output: string) {
  const out = await session.run(Object.fromEntries([...feeds].map(([k, v]) => [k, new ort.Tensor('float32', v.data, v.dims)])), [output]);
  return { data: out[output].data as Float32Array, dims: out[output].dims as number[] };
}

async function vjp(
  model: ModelProto,
  shapes: Map<string, Dim[]>,
  input: string,
  output: string,
  feeds: Feeds,
  dy: Float32Array,
  outDims: number[],
  threads?: number,
): Promise<Float32Array> {
  const gm = buildGradientModel(model, shapes, { kind: 'vjp' }, { input, output });
  const session = await createSession(encodeModel(gm.model), { ep: 'cpu', threads });
  try {
    const all = Object.fromEntries([...feeds].map(([k, v]) => [k, new ort.Tensor('float32', v.data, v.dims)]));
    all[gm.cotangent!] = new ort.Tensor('float32', dy, outDims);
    const out = await session.run(all, [gm.grad]);
    return out[gm.grad].data as Float32Array;
  } finally {
    await session.release();
  }
}

/** Central differences and second differences of <dy, y> on `coords`; perturbed copies are stacked along a symbolic batch dim. */
async function finiteDifferences(
  session: Session,
  s: ComparisonSetup,
  coords: number[],
  h: number,
  f0: number,
): Promise<{ central: number[]; curvature: number[] }> {
  const x = s.feeds.get(s.input)!;
  const size = x.data.length;
  const chunk = s.stackable ? Math.max(1, Math.floor(BATCH_ELEMENTS / (2 * size))) : 1;
  const central: number[] = [];
  const curvature: number[] = [];
  for (let start = 0; start < coords.length; start += chunk) {
    const part = coords.slice(start, start + chunk);
    const copies = 2 * part.length;
    const steps: number[] = [];
    const stacked: Feeds = new Map();
    for (const [k, v] of s.feeds) {
      const data = new Float32Array(v.data.length * copies);
      for (let c = 0; c < copies; c++) data.set(v.data, c * v.data.length);
      if (k === s.input) {
        part.forEach((i, j) => {
          const plus = Math.fround(x.data[i] + h),
            minus = Math.fround(x.data[i] - h);
          data[2 * j * size + i] = plus;
          data[(2 * j + 1) * size + i] = minus;
          steps.push(plus - minus);
        });
      }
      stacked.set(k, { data, dims: [v.dims[0] * copies, ...v.dims.slice(1)] });
    }
    const values: Float32Array[] = [];
    if (s.stackable) values.push((await runForward(session, stacked, s.output)).data);
    else {
      for (let c = 0; c < copies; c++) {
        const one = new Map(
          [...stacked].map(([k, v]) => {
            const n = v.data.length / copies;
            return [k, { data: v.data.subarray(c * n, (c + 1) * n), dims: s.feeds.get(k)!.dims }] as const;
          }),
        );
        values.push((await runForward(session, one, s.output)).data);
      }
    }
    const all = values.length === 1 ? values[0] : concat(values);
    const per = all.length / copies;
    part.forEach((_, j) => {
      const fp = dot(s.dy, all, 2 * j * per, per),
        fm = dot(s.dy, all, (2 * j + 1) * per, per);
      central.push((fp - fm) / steps[j]);
      curvature.push(Math.abs(fp - 2 * f0 + fm) / steps[j]);
    });
  }
  return { central, curvature };
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * An onnxruntime classifier as attacks see it: logits from the forward session, input gradients
 * from a generated forward+backward model, and the fused L∞ step (the same model with BIM/PGD's
 * projected sign step appended). One session per loss kind and use, built on first use.
 */
import { UserError } from '../errors';
import * as ort from 'onnxruntime-node';
import type { Classifier, LinfStep, LossKind } from '../attacks/types';
import type { Dim } from './shapes';
import { buildGradientModel, type GradientModel } from '../onnx/autodiff';
import { lossNeedsTargets } from '../onnx/autodiff/loss';
import { withLinfStep, type LinfStepModel } from '../onnx/autodiff/step';
import { encodeModel, opsetVersion, type ModelProto } from '../onnx/proto';
import { createSession, type Session, type SessionOptions } from './session';

export interface OnnxClassifierParts {
  model: ModelProto;
  shapes: Map<string, Dim[]>;
  session: Session;
  input: string;
  output: string;
  sampleDims: readonly number[];
  numClasses: number;
  sessionOptions: SessionOptions;
  /** The batch size the model requires, when its batch dimension is fixed. */
  fixedBatch?: number;
}

export class OnnxClassifier implements Classifier {
  readonly numClasses: number;
  readonly sampleDims: readonly number[];
  /** Samples × gradient calls and samples × forward calls, for the attack bookkeeping. */
  gradientEvaluations = 0;
  forwardEvaluations = 0;
  /** Generated sessions by loss: the loss gradient alone, and with the fused L∞ step appended. */
  private readonly gradientSessions = new Map<LossKind, Promise<{ session: Session; g: GradientModel }>>();
  private readonly stepSessions = new Map<LossKind, Promise<{ session: Session; g: LinfStepModel }>>();
  readonly linfStep?: Classifier['linfStep'];

  constructor(private readonly parts: OnnxClassifierParts) {
    this.numClasses = parts.numClasses;
    this.sampleDims = parts.sampleDims;
    // The fused step needs Sign (opset 9); the generated model's opset is never below the model's.
    if (opsetVersion(parts.model) >= 9) this.linfStep = (x, x0, n, labels, loss, step) => this.fusedLinfStep(x, x0, n, labels, loss, step);
  }

  async logits(x: Float32Array, n: number): Promise<Float32Array> {
    this.forwardEvaluations += n;
    const { data, rows } = this.padded(x, n);
    const out = await this.parts.session.run({ [this.parts.input]: new ort.Tensor('float32', data, [rows, ...this.sampleDims]) }, [this.parts.output]);
    return (out[this.parts.output].data as Float32Array).subarray(0, n * this.numClasses);
  }

  /** Pads a batch with zero samples up to a fixed batch size (their outputs are dropped). */
  private padded(x: Float32Array, n: number): { data: Float32Array; rows: number } {
    const fixed = this.parts.fixedBatch;
    if (!fixed || fixed === n) return { data: x, rows: n };
    if (n > fixed) throw new Error(`batch of ${n} for a model with fixed batch ${fixed}`);
    const data = new Float32Array(fixed * (x.length / n));
    data.set(x);
    return { data, rows: fixed };
  }

  async lossGradient(
    x: Float32Array,
    n: number,
    labels: Int32Array,
    loss: LossKind,
    targets?: Int32Array,
  ): Promise<{ grad: Float32Array; logits: Float32Array }> {
    if (lossNeedsTargets(loss) && targets?.length !== n) {
      throw new Error(`the ${loss} loss needs one target label per sample (${targets?.length ?? 0} for ${n} samples)`);
    }
    let built;
    try {
      built = await this.session(this.gradientSessions, loss, (m) => m);
    } catch (e) {
      if (!isPiecewiseConstant(e)) throw e;
      // The output is piecewise constant in the input (it goes through a Cast to an integer, a
      // Round, an argmin...): its true gradient is zero everywhere. Attacks get that zero and
      // cannot move, and the evaluation's zero-gradient check reports the masked gradient.
      this.gradientEvaluations += n;
      return { grad: new Float32Array(x.length), logits: await this.logits(x, n) };
    }
    const { session, g } = built;
    this.gradientEvaluations += n;
    const feeds = this.lossFeeds(g, x, n, labels);
    if (g.targets) feeds[g.targets] = this.int64Feed(targets!, n);
    const out = await session.run(feeds, [g.grad, g.output]);
    return { grad: (out[g.grad].data as Float32Array).subarray(0, x.length), logits: (out[g.output].data as Float32Array).subarray(0, n * this.numClasses) };
  }

  private async fusedLinfStep(
    x: Float32Array,
    x0: Float32Array,
    n: number,
    labels: Int32Array,
    loss: LossKind,
    step: LinfStep,
  ): Promise<{ next: Float32Array; logits: Float32Array }> {
    try {
      return await this.fusedLinfStepOrThrow(x, x0, n, labels, loss, step);
    } catch (e) {
      if (!isPiecewiseConstant(e)) throw e;
      // A zero gradient: sign(0) = 0, so the step leaves x where it is.
      this.gradientEvaluations += n;
      return { next: Float32Array.from(x), logits: await this.logits(x, n) };
    }
  }

  private async fusedLinfStepOrThrow(x: Float32Array, x0: Float32Array, n: number, labels: Int32Array, loss: LossKind, step: LinfStep) {
    if (lossNeedsTargets(loss)) throw new Error(`the fused L∞ step takes no target labels: the ${loss} loss needs lossGradient`);
    const { session, g } = await this.session(this.stepSessions, loss, (m) => {
      const stepModel = withLinfStep(m, this.parts.shapes.get(this.parts.input) ?? ['N', ...this.sampleDims]);
      if (!stepModel) throw new Error('the fused L∞ step needs opset 9');
      return stepModel;
    });
    this.gradientEvaluations += n;
    const scalar = (v: number) => new ort.Tensor('float32', Float32Array.of(v), []);
    const { data, rows } = this.padded(x0, n);
    const feeds = {
      ...this.lossFeeds(g, x, n, labels),
      [g.x0]: new ort.Tensor('float32', data, [rows, ...this.sampleDims]),
      [g.alpha]: scalar(step.alpha),
      [g.eps]: scalar(step.eps),
      [g.lo]: scalar(step.range[0]),
      [g.hi]: scalar(step.range[1]),
    };
    const out = await session.run(feeds, [g.next, g.output]);
    return { next: (out[g.next].data as Float32Array).subarray(0, x.length), logits: (out[g.output].data as Float32Array).subarray(0, n * this.numClasses) };
  }

  /** The input and int64 label feeds of a loss model, padded to the fixed batch if there is one. */
  private lossFeeds(g: GradientModel, x: Float32Array, n: number, labels: Int32Array): Record<string, ort.Tensor> {
    const { data, rows } = this.padded(x, n);
    return { [this.parts.input]: new ort.Tensor('float32', data, [rows, ...this.sampleDims]), [g.labels!]: this.int64Feed(labels, n) };
  }

  /** n class indices as an int64 tensor, zero-padded to the fixed batch if there is one. */
  private int64Feed(values: Int32Array, n: number): ort.Tensor {
    const rows = this.parts.fixedBatch ?? n;
    const out = new BigInt64Array(rows);
    for (let i = 0; i < n; i++) out[i] = BigInt(values[i]);
    return new ort.Tensor('int64', out, [rows]);
  }

  /** The generated session for `loss` in `cache`, built on first use. */
  private session<M extends GradientModel>(cache: Map<LossKind, Promise<{ session: Session; g: M }>>, loss: LossKind, extend: (g: GradientModel) => M) {
    let pending = cache.get(loss);
    if (!pending) {
      pending = (async () => {
        const built = buildGradientModel(this.parts.model, this.parts.shapes, { kind: 'loss', loss }, { input: this.parts.input, output: this.parts.output });
        const g = extend(built);
        return { session: await createSession(encodeModel(g.model), this.parts.sessionOptions), g };
      })();
      cache.set(loss, pending);
    }
    return pending;
  }

  async release(): Promise<void> {
    for (const cache of [this.gradientSessions, this.stepSessions]) {
      // A session whose build failed (e.g. an op without a gradient rule) has nothing to release.
      for (const p of cache.values()) await (await p.catch(() => undefined))?.session.release();
      cache.clear();
    }
  }
}

/** The autodiff's refusal for an output with no differentiable path from the input. */
function isPiecewiseConstant(e: unknown): boolean {
  return e instanceof UserError && /does not depend differentiably/.test(e.message);
}

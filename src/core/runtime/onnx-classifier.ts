/**
 * An onnxruntime classifier as attacks see it: logits from the forward session and input gradients
 * from a generated forward+backward model, one session per loss kind, built on first use.
 */
import * as ort from 'onnxruntime-node';
import type { Classifier, LossKind } from '../attacks/types';
import type { Dim } from '../model/shapes';
import { buildGradientModel } from '../onnx/autodiff';
import { encodeModel, type ModelProto } from '../onnx/proto';
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
  private readonly gradientSessions = new Map<LossKind, Promise<{ session: Session; grad: string; labels: string; output: string }>>();

  constructor(private readonly parts: OnnxClassifierParts) {
    this.numClasses = parts.numClasses;
    this.sampleDims = parts.sampleDims;
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

  async lossGradient(x: Float32Array, n: number, labels: Int32Array, loss: LossKind): Promise<{ grad: Float32Array; logits: Float32Array }> {
    const g = await this.gradientSession(loss);
    this.gradientEvaluations += n;
    const { data, rows } = this.padded(x, n);
    const labels64 = new BigInt64Array(rows);
    labels.forEach((v, i) => (labels64[i] = BigInt(v)));
    const feeds = {
      [this.parts.input]: new ort.Tensor('float32', data, [rows, ...this.sampleDims]),
      [g.labels]: new ort.Tensor('int64', labels64, [rows]),
    };
    const out = await g.session.run(feeds, [g.grad, g.output]);
    return { grad: (out[g.grad].data as Float32Array).subarray(0, x.length), logits: (out[g.output].data as Float32Array).subarray(0, n * this.numClasses) };
  }

  private gradientSession(loss: LossKind) {
    let pending = this.gradientSessions.get(loss);
    if (!pending) {
      pending = (async () => {
        const g = buildGradientModel(this.parts.model, this.parts.shapes, { kind: 'loss', loss }, { input: this.parts.input, output: this.parts.output });
        const session = await createSession(encodeModel(g.model), this.parts.sessionOptions);
        return { session, grad: g.grad, labels: g.labels!, output: g.output };
      })();
      this.gradientSessions.set(loss, pending);
    }
    return pending;
  }

  async release(): Promise<void> {
    for (const p of this.gradientSessions.values()) await (await p).session.release();
    this.gradientSessions.clear();
  }
}

/**
 * Training small networks on onnxruntime: the fused training step (onnx/autodiff/train-step.ts)
 * run once per mini-batch, with the parameters and optimizer state kept in typed arrays between
 * steps, on the CPU or the CUDA provider (runtime/session.ts).
 *
 * Randomness comes from one seeded Rng, each use on its own fork so that none depends on another:
 * `shuffle/<epoch>` orders the samples of each epoch, `noise` feeds the input corruption (one
 * stream across all batches), `validation-split` picks a held-out split. Mini-batches take the
 * samples in that order; the last one of an epoch is smaller when the batch size does not divide
 * the sample count. The loss of an epoch is the mean of the batch losses weighted by their sizes.
 *
 * Early stopping watches the held-out loss (computed without corruption): after `patience` epochs
 * without an improvement of at least `minDelta` the fit stops, and with `restoreBest` (the default)
 * the parameters of the best epoch are put back. Cancellation: the AbortSignal is checked before
 * every batch and the fit rejects with CancelledError (core/cancel.ts).
 *
 * The fitted artifact is an ONNX graph: `model()` is the forward model with the trained weights
 * as its initializers.
 */
import * as ort from 'onnxruntime-node';
import { throwIfCancelled } from '../cancel';
import { UserError } from '../errors';
import { inferShapes, type Dim } from '../runtime/shapes';
import {
  buildLossModel,
  buildTrainStep,
  trainableInitializers,
  withParams,
  type LossModel,
  type Optimizer,
  type TrainStepModel,
} from '../onnx/autodiff/train-step';
import { AUX_INPUT_BASE, type TrainingLoss } from '../onnx/autodiff/train-loss';
import { encodeModel, type ModelProto } from '../onnx/proto';
import { Rng } from '../random';
import { createSession, type Provider, type Session, type SessionOptions } from '../runtime/session';
import { initialValues } from './init';

export interface TrainSet {
  /** n samples of the batch input, flat. */
  x: Float32Array;
  /** mse: n samples of the output's size (default: x itself, an autoencoder); softmax-ce: n class indices. */
  target?: Float32Array | Int32Array;
  n: number;
  /**
   * Losses with a per-sample auxiliary input (softmax-ce-isometric: the flattened network inputs x,
   * inputSize values a sample): n rows, gathered in the same order as the batch.
   */
  aux?: Float32Array;
}

export interface TrainerOptions {
  /** The forward model: one float batch input with a symbolic batch dimension, the trainable weights as initializers. */
  model: ModelProto;
  /** From inferShapes (computed when absent). */
  shapes?: Map<string, Dim[]>;
  /** Trainable initializers. Default: trainableInitializers(model). */
  params?: readonly string[];
  input?: string;
  output?: string;
  loss: TrainingLoss;
  optimizer: Optimizer;
  /** Replace the initializers' values with seeded Glorot-uniform weights (init.ts). Default: keep them. */
  init?: { kind: 'glorot-uniform'; seed: number | Rng };
  /** onnxruntime session options (execution provider, threads). Default: CPU, one thread per core. */
  session?: SessionOptions;
}

export interface EpochReport {
  epoch: number;
  /** Mean training loss of the epoch (on the corrupted inputs, when corrupting). */
  loss: number;
  /** Held-out loss after the epoch. */
  validationLoss?: number;
  learningRate: number;
  steps: number;
  seconds: number;
}

export interface FitOptions {
  data: TrainSet;
  epochs: number;
  batchSize: number;
  /** A number, or a schedule: epoch (0-based) → learning rate. */
  learningRate: number | ((epoch: number) => number);
  /** Seed (or stream) of shuffling, corruption and the validation split. Default 0. */
  rng?: number | Rng;
  /** Default true. */
  shuffle?: boolean;
  /** Corrupts a gathered batch of inputs in place (rows × sample size values), e.g. Gaussian noise for a denoising autoencoder. */
  corrupt?: (x: Float32Array, rows: number, rng: Rng) => void;
  /** Held-out data, or the fraction of `data` to hold out (a seeded split). */
  validation?: TrainSet | { fraction: number };
  /** Needs validation. */
  earlyStopping?: { patience: number; minDelta?: number; restoreBest?: boolean };
  signal?: AbortSignal;
  /** Named in the CancelledError message ("Training the dAE was cancelled."). Default 'Training'. */
  what?: string;
  onEpoch?: (report: EpochReport) => void;
}

export interface FitResult {
  /** The loss curve: mean training loss per epoch, and the held-out loss per epoch when validating. */
  history: { loss: number[]; validationLoss: number[] };
  /** Epochs run (fewer than asked when stopped early). */
  epochs: number;
  /** The epoch whose parameters the trainer holds at the end (the best one after restoreBest). */
  bestEpoch: number;
  stoppedEarly: boolean;
  steps: number;
  seconds: number;
}

export class Trainer {
  private params = new Map<string, Float32Array>();
  private state = new Map<string, Float32Array>();
  /** The arrays the next step writes into, by parameter or state name. */
  private readonly spare = new Map<string, Float32Array>();
  private steps = 0;
  private evalModel?: LossModel;
  private evalSession?: Session;
  private readonly sampleDims: number[];
  private readonly sampleSize: number;
  private readonly targetSize: number;
  /** The loss's auxiliary per-sample input, when it has one (train-loss.ts AUX_INPUT_BASE). */
  private readonly aux?: { name: string; size: number };

  private constructor(
    readonly step: TrainStepModel,
    private readonly session: Session,
    private readonly forward: ModelProto,
    private readonly shapes: Map<string, Dim[]>,
    private readonly options: TrainerOptions,
  ) {
    for (const p of step.params) this.params.set(p.name, Float32Array.from(p.init));
    this.resetOptimizer();
    this.sampleDims = step.inputDims.slice(1).map((d) => {
      if (typeof d !== 'number') throw new UserError(`Training needs static sample dimensions; input '${step.input}' has [${step.inputDims.join(', ')}].`);
      return d;
    });
    this.sampleSize = this.sampleDims.reduce((a, b) => a * b, 1);
    const out = step.outputDims.slice(1);
    this.targetSize = step.targetType === 'int64' ? 1 : out.every((d): d is number => typeof d === 'number') ? out.reduce((a, b) => a * b, 1) : NaN;
    if (options.loss.kind === 'softmax-ce-isometric') {
      const taken = new Set([step.input, step.target, step.learningRate, step.step, ...step.params.map((p) => p.name), ...step.state.map((s) => s.name)]);
      const name = (step.model.graph?.input ?? []).map((v) => v.name ?? '').find((n) => !taken.has(n) && n.includes(AUX_INPUT_BASE));
      if (!name) throw new Error('the isometric training step has no auxiliary input');
      this.aux = { name, size: options.loss.inputSize };
    }
  }

  static async create(options: TrainerOptions): Promise<Trainer> {
    const shapes = options.shapes ?? (await inferShapes({ path: '<memory>', sha256: '', model: options.model, bytes: encodeModel(options.model) }));
    const params = options.params ?? trainableInitializers(options.model);
    let forward = options.model;
    if (options.init) {
      const rng = typeof options.init.seed === 'number' ? new Rng(options.init.seed) : options.init.seed;
      forward = withParams(forward, initialValues(forward, params, rng.fork('init')));
    }
    const step = buildTrainStep(forward, shapes, { params, input: options.input, output: options.output, loss: options.loss, optimizer: options.optimizer });
    if (typeof step.inputDims[0] === 'number') {
      throw new UserError(
        `Training needs a model whose batch dimension is symbolic (mini-batches vary in size); input '${step.input}' is [${step.inputDims.join(', ')}].`,
      );
    }
    const session = await createSession(encodeModel(step.model), options.session ?? { ep: 'cpu' });
    return new Trainer(step, session, forward, shapes, options);
  }

  /** The execution provider that runs the steps, and why it differs from the one asked for. */
  get provider(): Provider {
    return this.session.provider;
  }

  get fallbackReason(): string | undefined {
    return this.session.fallbackReason;
  }

  /** Steps taken so far (the optimizer's t). */
  get stepCount(): number {
    return this.steps;
  }

  /** The current parameter values: the trainer's own arrays, valid until the next step (copy to keep them). */
  parameters(): ReadonlyMap<string, Float32Array> {
    return this.params;
  }

  /** The optimizer state by slot name (TrainStepModel.state says which parameter and role each is). */
  optimizerState(): ReadonlyMap<string, Float32Array> {
    return this.state;
  }

  setParameters(values: ReadonlyMap<string, Float32Array>): void {
    for (const p of this.step.params) {
      const v = values.get(p.name);
      if (!v) continue;
      if (v.length !== p.init.length) throw new RangeError(`setParameters: '${p.name}' needs ${p.init.length} values, got ${v.length}`);
      this.params.set(p.name, Float32Array.from(v));
    }
  }

  /** Zeros the optimizer state and the step count. */
  resetOptimizer(): void {
    this.steps = 0;
    for (const s of this.step.state) this.state.set(s.name, new Float32Array(s.dims.reduce((a, b) => a * b, 1)));
  }

  /** The forward model with the current parameters as its initializers. */
  model(): ModelProto {
    return withParams(this.forward, this.params);
  }

  /**
   * One optimizer step on one batch of `rows` samples; returns the batch loss. The updated
   * parameters and state are written by onnxruntime into a second set of arrays (pre-allocated
   * outputs), which then become the current ones: no allocation per step.
   */
  async trainBatch(x: Float32Array, target: Float32Array | BigInt64Array, rows: number, learningRate: number, aux?: Float32Array): Promise<number> {
    const s = this.step;
    const feeds: Record<string, ort.Tensor> = {
      [s.input]: new ort.Tensor('float32', x, [rows, ...this.sampleDims]),
      [s.target]: target instanceof BigInt64Array ? new ort.Tensor('int64', target, [rows]) : new ort.Tensor('float32', target, [rows, ...this.targetDims()]),
      [s.learningRate]: new ort.Tensor('float32', Float32Array.of(learningRate), []),
      [s.step]: new ort.Tensor('float32', Float32Array.of(this.steps + 1), []),
    };
    if (this.aux) {
      if (!aux || aux.length !== rows * this.aux.size)
        throw new UserError(`Training data: the ${this.options.loss.kind} loss needs ${rows} auxiliary rows of ${this.aux.size} values.`);
      feeds[this.aux.name] = new ort.Tensor('float32', aux, [rows, this.aux.size]);
    }
    const fetches: Record<string, ort.Tensor | null> = { [s.loss]: null };
    const slots = [
      ...s.params.map((p) => ({ from: p.name, to: p.next, dims: p.dims, map: this.params })),
      ...s.state.map((st) => ({ from: st.name, to: st.next, dims: st.dims, map: this.state })),
    ];
    for (const slot of slots) {
      const current = slot.map.get(slot.from)!;
      let spare = this.spare.get(slot.from);
      if (!spare || spare.length !== current.length || spare === current) this.spare.set(slot.from, (spare = new Float32Array(current.length)));
      feeds[slot.from] = new ort.Tensor('float32', current, slot.dims);
      fetches[slot.to] = new ort.Tensor('float32', spare, slot.dims);
    }
    const out = await this.session.ort.run(feeds, fetches);
    for (const slot of slots) {
      const next = this.spare.get(slot.from)!;
      this.spare.set(slot.from, slot.map.get(slot.from)!);
      slot.map.set(slot.from, next);
    }
    this.steps++;
    return (out[s.loss].data as Float32Array)[0];
  }

  private targetDims(): number[] {
    return this.step.outputDims.slice(1) as number[];
  }

  /**
   * The mean loss of the current parameters on a data set (no corruption, no update), in batches
   * weighted by their sizes. Batches stay small because onnxruntime's float32 means over a whole
   * large batch drift (1024 × 784 values: 2e-5 relative; 256 rows: 2e-6).
   */
  async evaluate(set: TrainSet, batchSize = 256): Promise<number> {
    if (this.aux) throw new UserError(`Evaluating the ${this.options.loss.kind} loss on a data set is not supported.`, 'Train without validation data.');
    if (!this.evalModel) {
      this.evalModel = buildLossModel(this.forward, this.shapes, {
        params: this.step.params.map((p) => p.name),
        loss: this.options.loss,
        input: this.step.input,
        output: this.options.output,
      });
      this.evalSession = await createSession(encodeModel(this.evalModel.model), this.options.session ?? { ep: 'cpu' });
    }
    const { x, target } = this.checkSet(set);
    let sum = 0;
    for (let start = 0; start < set.n; start += batchSize) {
      const m = Math.min(batchSize, set.n - start);
      const feeds: Record<string, ort.Tensor> = {
        [this.evalModel.input]: new ort.Tensor('float32', x.subarray(start * this.sampleSize, (start + m) * this.sampleSize), [m, ...this.sampleDims]),
        [this.evalModel.target]:
          target instanceof BigInt64Array
            ? new ort.Tensor('int64', target.subarray(start, start + m), [m])
            : new ort.Tensor('float32', target.subarray(start * this.targetSize, (start + m) * this.targetSize), [m, ...this.targetDims()]),
      };
      for (const p of this.step.params) feeds[p.name] = new ort.Tensor('float32', this.params.get(p.name)!, p.dims);
      const out = await this.evalSession!.run(feeds, [this.evalModel.loss]);
      sum += (out[this.evalModel.loss].data as Float32Array)[0] * m;
    }
    return sum / set.n;
  }

  private checkSet(set: TrainSet): { x: Float32Array; target: Float32Array | BigInt64Array } {
    if (!(set.n >= 1) || set.x.length !== set.n * this.sampleSize) {
      throw new UserError(`Training data: ${set.x.length} values for ${set.n} samples of [${this.sampleDims.join(', ')}].`);
    }
    if (this.step.targetType === 'int64') {
      if (!(set.target instanceof Int32Array) || set.target.length !== set.n)
        throw new UserError(`Training data: the ${this.options.loss.kind} loss needs ${set.n} integer labels.`);
      return { x: set.x, target: BigInt64Array.from(set.target, (v) => BigInt(v)) };
    }
    const target = set.target ?? set.x;
    if (!(target instanceof Float32Array) || target.length !== set.n * this.targetSize) {
      throw new UserError(`Training data: the ${this.options.loss.kind} loss needs ${set.n} float targets of ${this.targetSize} values (the output's size).`);
    }
    return { x: set.x, target };
  }

  /** Mini-batch training for `epochs` epochs (or until early stopping). */
  async fit(options: FitOptions): Promise<FitResult> {
    const t0 = performance.now();
    const rng = options.rng instanceof Rng ? options.rng : new Rng(options.rng ?? 0);
    if (!Number.isInteger(options.epochs) || options.epochs < 0) throw new UserError(`Invalid epoch count ${options.epochs}.`);
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) throw new UserError(`Invalid batch size ${options.batchSize}.`);
    let train = options.data;
    let validation: TrainSet | undefined;
    if (options.validation && 'fraction' in options.validation) {
      [train, validation] = splitSet(
        options.data,
        options.validation.fraction,
        this.sampleSize,
        this.step.targetType === 'int64' ? 1 : this.targetSize,
        rng.fork('validation-split'),
      );
    } else validation = options.validation;
    if (options.earlyStopping && !validation) throw new UserError('Early stopping needs held-out data (validation).');
    const { x, target } = this.checkSet(train);
    if (validation) this.checkSet(validation);
    const aux = this.aux;
    if (aux && (!train.aux || train.aux.length !== train.n * aux.size)) {
      throw new UserError(`Training data: the ${this.options.loss.kind} loss needs ${train.n} auxiliary rows of ${aux.size} values.`);
    }
    const auxBatch = aux ? new Float32Array(Math.min(options.batchSize, train.n) * aux.size) : undefined;
    const n = train.n;
    const s = this.sampleSize;
    const ts = this.step.targetType === 'int64' ? 1 : this.targetSize;
    const batch = Math.min(options.batchSize, n);
    const xb = new Float32Array(batch * s);
    const tb = target instanceof BigInt64Array ? new BigInt64Array(batch) : new Float32Array(batch * ts);
    const noise = rng.fork('noise');
    const what = options.what ?? 'Training';
    const history = { loss: [] as number[], validationLoss: [] as number[] };
    const stop = options.earlyStopping;
    let best = Infinity;
    let bestEpoch = -1;
    let bestParams: Map<string, Float32Array> | undefined;
    let stale = 0;
    let stoppedEarly = false;
    let epoch = 0;
    const stepsBefore = this.steps;
    for (; epoch < options.epochs; epoch++) {
      const e0 = performance.now();
      const order = options.shuffle === false ? Int32Array.from({ length: n }, (_, i) => i) : permutation(n, rng.fork(`shuffle/${epoch}`));
      const lr = typeof options.learningRate === 'function' ? options.learningRate(epoch) : options.learningRate;
      if (!(lr >= 0) || !Number.isFinite(lr)) throw new UserError(`Invalid learning rate ${lr} at epoch ${epoch}.`);
      let sum = 0;
      let steps = 0;
      for (let start = 0; start < n; start += batch) {
        throwIfCancelled(options.signal, what);
        const m = Math.min(batch, n - start);
        for (let r = 0; r < m; r++) {
          const i = order[start + r];
          xb.set(x.subarray(i * s, (i + 1) * s), r * s);
          if (tb instanceof BigInt64Array) tb[r] = (target as BigInt64Array)[i];
          else tb.set((target as Float32Array).subarray(i * ts, (i + 1) * ts), r * ts);
          if (auxBatch) auxBatch.set(train.aux!.subarray(i * aux!.size, (i + 1) * aux!.size), r * aux!.size);
        }
        const xs = xb.subarray(0, m * s);
        options.corrupt?.(xs, m, noise);
        const loss = await this.trainBatch(xs, tb.subarray(0, m * ts), m, lr, auxBatch?.subarray(0, m * aux!.size));
        if (!Number.isFinite(loss)) throw new UserError(`Training diverged: the loss is ${loss} at epoch ${epoch}.`, 'Lower the learning rate.');
        sum += loss * m;
        steps++;
        // Lets an AbortSignal (or anything else waiting) through between batches.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      history.loss.push(sum / n);
      let validationLoss: number | undefined;
      if (validation) {
        throwIfCancelled(options.signal, what);
        validationLoss = await this.evaluate(validation);
        history.validationLoss.push(validationLoss);
      }
      options.onEpoch?.({ epoch, loss: sum / n, validationLoss, learningRate: lr, steps, seconds: (performance.now() - e0) / 1000 });
      if (stop && validationLoss !== undefined) {
        if (validationLoss < best - (stop.minDelta ?? 0)) {
          best = validationLoss;
          bestEpoch = epoch;
          stale = 0;
          if (stop.restoreBest !== false) bestParams = new Map([...this.params].map(([k, v]) => [k, Float32Array.from(v)]));
        } else if (++stale >= stop.patience) {
          stoppedEarly = true;
          epoch++;
          break;
        }
      }
    }
    if (stoppedEarly && bestParams) this.params = bestParams;
    return {
      history,
      epochs: epoch,
      bestEpoch: stoppedEarly && bestParams ? bestEpoch : epoch - 1,
      stoppedEarly,
      steps: this.steps - stepsBefore,
      seconds: (performance.now() - t0) / 1000,
    };
  }

  async release(): Promise<void> {
    await this.session.release();
    await this.evalSession?.release();
  }
}

/** Creates a trainer, fits, returns the fitted forward model and the loss curve, releases the sessions. */
export async function trainModel(
  options: TrainerOptions & FitOptions,
): Promise<FitResult & { model: ModelProto; params: ReadonlyMap<string, Float32Array>; provider: Provider; fallbackReason?: string }> {
  const trainer = await Trainer.create(options);
  try {
    const result = await trainer.fit(options);
    return { ...result, model: trainer.model(), params: trainer.parameters(), provider: trainer.provider, fallbackReason: trainer.fallbackReason };
  } finally {
    await trainer.release();
  }
}

/** A seeded random permutation of 0 … n−1 (Fisher–Yates). */
export function permutation(n: number, rng: Rng): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/** A seeded split: the samples at the last ⌈fraction·n⌉ positions of a permutation are held out. */
function splitSet(set: TrainSet, fraction: number, sampleSize: number, targetSize: number, rng: Rng): [TrainSet, TrainSet] {
  if (!(fraction > 0 && fraction < 1)) throw new UserError(`Invalid validation fraction ${fraction}.`, 'A number in (0, 1).');
  const held = Math.ceil(fraction * set.n);
  if (held >= set.n) throw new UserError(`A validation fraction of ${fraction} leaves no training data of ${set.n} samples.`);
  const order = permutation(set.n, rng);
  const take = (idx: Int32Array): TrainSet => {
    const x = new Float32Array(idx.length * sampleSize);
    idx.forEach((i, r) => x.set(set.x.subarray(i * sampleSize, (i + 1) * sampleSize), r * sampleSize));
    let target: TrainSet['target'];
    if (set.target instanceof Int32Array) target = Int32Array.from(idx, (i) => set.target![i]);
    else if (set.target) {
      const t = new Float32Array(idx.length * targetSize);
      idx.forEach((i, r) => t.set((set.target as Float32Array).subarray(i * targetSize, (i + 1) * targetSize), r * targetSize));
      target = t;
    }
    return { x, target, n: idx.length };
  };
  return [take(order.subarray(0, set.n - held)), take(order.subarray(set.n - held))];
}

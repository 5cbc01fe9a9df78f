/**
 * Reference activations for the LESCI and retrieval defenses: the activation at an insertion
 * point T of every reference image (the head of the cut model run on onnxruntime), with the
 * images' labels and the full model's predictions (LESCI keeps only correctly classified samples).
 *
 * Also `runStageBySessions`: a defense stage composed with the cut model by running three
 * sessions (head → defense → tail, or head → tail → defense). It is the reference composition the
 * tests use; the single-model composition lives with the pipeline.
 */
import * as ort from 'onnxruntime-node';
import { UserError } from '../errors';
import { argmaxRows } from '../tensor';
import { modelInput } from '../model/graph';
import type { ModelGraph } from '../model/graph';
import { cutModel } from '../onnx/cut';
import type { LoadedModel } from '../model/load';
import { encodeModel, opsetVersion } from '../onnx/proto';
import { createSession, runBatched, type ProviderChoice, type Session } from '../runtime/session';
import { DEFENSE_IO, type DefenseStage } from './types';

export interface InspectedModel {
  loaded: LoadedModel;
  graph: ModelGraph;
}

export interface ReferenceActivations {
  /** The tensor T. */
  layer: string;
  /** Shape of T without the batch dimension. */
  dims: number[];
  /** Values per sample (product of dims). */
  size: number;
  n: number;
  /** [n, size] activations at T. */
  activations: Float32Array;
  /** The images' labels. */
  labels: Int32Array;
  /** The full model's predictions (argmax of its output). */
  predictions: Int32Array;
  numClasses: number;
  /** The model's default-domain opset (defense graphs use at least this). */
  opset: number;
}

export interface RunOptions {
  batchSize?: number;
  threads?: number;
  ep?: ProviderChoice;
}

/** Activations at `layer` of `count` images, labels and the full model's predictions. */
export async function referenceActivations(
  model: InspectedModel,
  layer: string,
  images: Float32Array,
  count: number,
  labels: ArrayLike<number>,
  options: RunOptions = {},
): Promise<ReferenceActivations> {
  if (labels.length < count) throw new UserError(`Reference set: ${count} images but only ${labels.length} labels.`);
  const { loaded, graph } = model;
  const input = modelInput(graph);
  const batchSize = options.batchSize ?? 100;
  const cut = cutModel(loaded.model, layer, graph.shapes);
  const head = await createSession(encodeModel(cut.head), { ep: options.ep ?? 'cpu', threads: options.threads });
  const full = await createSession(loaded.bytes, { ep: options.ep ?? 'cpu', threads: options.threads });
  try {
    const feed = { name: input.name, data: images, count, sampleDims: input.sampleDims, fixedBatch: input.fixedBatch };
    const act = await runBatched(head, feed, head.outputNames[0], batchSize);
    const logits = await runBatched(full, feed, full.outputNames[0], batchSize);
    const numClasses = logits.sampleSize;
    const predictions = argmaxRows(logits.data, numClasses);
    const shape = graph.shapes.get(layer);
    const dims = shape && shape.slice(1).every((d) => typeof d === 'number') ? (shape.slice(1) as number[]) : [act.sampleSize];
    if (dims.reduce((a, b) => a * b, 1) !== act.sampleSize)
      throw new Error(`activation size ${act.sampleSize} does not match the shape of '${layer}' [${dims.join(', ')}]`);
    return {
      layer,
      dims,
      size: act.sampleSize,
      n: count,
      activations: act.data,
      labels: Int32Array.from({ length: count }, (_, i) => labels[i]),
      predictions,
      numClasses,
      opset: Math.max(13, opsetVersion(loaded.model)),
    };
  } finally {
    await head.release();
    await full.release();
  }
}

/** A subset of reference activations (rows `keep`, in that order). */
export function selectReference(ref: ReferenceActivations, keep: ArrayLike<number>): ReferenceActivations {
  const m = keep.length;
  const activations = new Float32Array(m * ref.size);
  for (let i = 0; i < m; i++) activations.set(ref.activations.subarray(keep[i] * ref.size, (keep[i] + 1) * ref.size), i * ref.size);
  return {
    ...ref,
    n: m,
    activations,
    labels: Int32Array.from({ length: m }, (_, i) => ref.labels[keep[i]]),
    predictions: Int32Array.from({ length: m }, (_, i) => ref.predictions[keep[i]]),
  };
}

export interface StageRun {
  /** [count, C] the pipeline's class scores. */
  scores: Float32Array;
  classes: number;
  /** The undefended model's logits for the same images (the tail on the undefended activation). */
  logits: Float32Array;
  /** Activations at T: undefended, and (before-tail) defended. */
  activation: Float32Array;
  defendedActivation?: Float32Array;
  accepted?: Uint8Array;
  projected?: Uint8Array;
}

/**
 * Sessions of the cut model at a layer, to run defense stages on by composition of sessions.
 * `release()` when done.
 */
export class CutRunner {
  private constructor(
    readonly layer: string,
    readonly dims: number[],
    private readonly input: ReturnType<typeof modelInput>,
    private readonly head: Session,
    private readonly tail: Session,
    private readonly options: RunOptions,
  ) {}

  static async create(model: InspectedModel, layer: string, options: RunOptions = {}): Promise<CutRunner> {
    const input = modelInput(model.graph);
    const cut = cutModel(model.loaded.model, layer, model.graph.shapes);
    const so = { ep: options.ep ?? ('cpu' as const), threads: options.threads };
    const head = await createSession(encodeModel(cut.head), so);
    const tail = await createSession(encodeModel(cut.tail), so);
    const shape = model.graph.shapes.get(layer);
    const dims = shape ? (shape.slice(1) as number[]) : [];
    return new CutRunner(layer, dims, input, head, tail, options);
  }

  /** Activations at T of `count` images. */
  async activations(images: Float32Array, count: number): Promise<Float32Array> {
    const { data } = await runBatched(
      this.head,
      { name: this.input.name, data: images, count, sampleDims: this.input.sampleDims, fixedBatch: this.input.fixedBatch },
      this.head.outputNames[0],
      this.options.batchSize ?? 100,
    );
    return data;
  }

  /** The tail on `count` activations at T. */
  async tailLogits(activations: Float32Array, count: number): Promise<Float32Array> {
    const { data } = await runBatched(
      this.tail,
      { name: this.tail.inputNames[0], data: activations, count, sampleDims: this.dims },
      this.tail.outputNames[0],
      this.options.batchSize ?? 100,
    );
    return data;
  }

  /** The defended pipeline on activations at T (head already run): defense and tail by sessions. */
  async runStage(stage: DefenseStage, activation: Float32Array, count: number): Promise<StageRun> {
    if (stage.layer !== this.layer) throw new Error(`stage sits on '${stage.layer}', runner on '${this.layer}'`);
    const defense = await createSession(encodeModel(stage.model), { ep: this.options.ep ?? 'cpu', threads: this.options.threads });
    try {
      const size = this.dims.reduce((a, b) => a * b, 1);
      const logits = await this.tailLogits(activation, count);
      const classes = logits.length / count;
      const b = this.options.batchSize ?? 100;
      const wanted = defense.outputNames;
      const scores = new Float32Array(count * classes);
      const accepted = wanted.includes(DEFENSE_IO.accepted) ? new Uint8Array(count) : undefined;
      const projected = wanted.includes(DEFENSE_IO.projected) ? new Uint8Array(count) : undefined;
      const defended = stage.placement === 'before-tail' ? new Float32Array(count * size) : undefined;
      for (let s = 0; s < count; s += b) {
        const m = Math.min(b, count - s);
        const feeds: Record<string, ort.Tensor> = {
          [DEFENSE_IO.activation]: new ort.Tensor('float32', activation.slice(s * size, (s + m) * size), [m, ...this.dims]),
        };
        if (defense.inputNames.includes(DEFENSE_IO.logits))
          feeds[DEFENSE_IO.logits] = new ort.Tensor('float32', logits.slice(s * classes, (s + m) * classes), [m, classes]);
        const out = await defense.run(feeds, wanted);
        if (stage.placement === 'before-tail') {
          defended!.set(out[DEFENSE_IO.activationOut].data as Float32Array, s * size);
        } else {
          scores.set(out[DEFENSE_IO.scores].data as Float32Array, s * classes);
        }
        if (accepted)
          accepted.set(
            Uint8Array.from(out[DEFENSE_IO.accepted].data as ArrayLike<number>, (v) => (v ? 1 : 0)),
            s,
          );
        if (projected)
          projected.set(
            Uint8Array.from(out[DEFENSE_IO.projected].data as ArrayLike<number>, (v) => (v ? 1 : 0)),
            s,
          );
      }
      if (defended) scores.set(await this.tailLogits(defended, count));
      return { scores, classes, logits, activation, defendedActivation: defended, accepted, projected };
    } finally {
      await defense.release();
    }
  }

  async release(): Promise<void> {
    await this.head.release();
    await this.tail.release();
  }
}

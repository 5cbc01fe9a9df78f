/**
 * The defended classifier under each threat model, as the attacks see it (Classifier):
 * - transfer: gradients of the undefended model, predictions of the defended one.
 * - bpda: the defense's backward pass replaced by the identity (Athalye et al. 2018): the tail's
 *   loss gradient at the defended activation, pulled back through the head. For defenses placed
 *   after the tail the identity surrogate removes the defense, so bpda equals transfer there.
 * - direct: the true gradient of the single defended ONNX model (zero through an argmin or a
 *   vote, through the attention weights for retrieval, through the confidence c for the dAE).
 * - gradient-free: no gradient at all; SPSA and Square Attack query the defended model.
 */
import * as ort from 'onnxruntime-node';
import type { Classifier, LossKind } from '../attacks/types';
import { UserError } from '../errors';
import { inferShapes, type Dim } from '../runtime/shapes';
import { buildGradientModel } from '../onnx/autodiff';
import { GraphBuilder } from '../onnx/builder';
import { cutModel, tensorValueInfo } from '../onnx/cut';
import { sha256Hex } from '../model/load';
import { encodeModel, type ModelProto } from '../onnx/proto';
import type { LaneInit } from '../runtime/lanes';
import { OnnxClassifier } from '../runtime/onnx-classifier';
import { createSession, type Session, type SessionOptions } from '../runtime/session';
import type { ThreatModel } from '../../protocol/experiment';
import { composeDefended, type DefendedModel } from './compose';
import { defenseSpec } from './registry';
import type { AdaptiveContext } from './spec';
import { DEFENSE_IO, type DefenseStage } from './types';

export interface DefendedParts {
  /** The undefended model and its shapes. */
  model: ModelProto;
  shapes: Map<string, Dim[]>;
  input: string;
  sampleDims: readonly number[];
  numClasses: number;
  stage: DefenseStage;
  sessionOptions: SessionOptions;
  /** The undefended classifier (transfer gradients). */
  undefended: OnnxClassifier;
  /** The undefended model's logits tensor. */
  output: string;
  /** The batch size the model requires, when its batch dimension is fixed (no lanes then). */
  fixedBatch?: number;
}

/** Smallest probability taken to the log, so that log(c · softmax) stays finite. */
const PROBABILITY_FLOOR = 1e-30;

/** Forward passes of the defended model: class scores as logits, plus acceptance where the defense rejects. */
export class DefendedClassifier implements Classifier {
  readonly numClasses: number;
  readonly sampleDims: readonly number[];
  readonly defended: DefendedModel;
  private sessionPromise?: Promise<Session>;

  constructor(readonly parts: DefendedParts) {
    this.numClasses = parts.numClasses;
    this.sampleDims = parts.sampleDims;
    this.defended = composeDefended(parts.model, parts.stage, { exposeActivation: true });
  }

  session(): Promise<Session> {
    this.sessionPromise ??= createSession(encodeModel(this.defended.model), this.parts.sessionOptions);
    return this.sessionPromise;
  }

  /** Runs the defended model; `scores` as the defense outputs them (logits or probabilities). */
  async run(x: Float32Array, n: number, extra: string[] = []): Promise<Record<string, ort.Tensor>> {
    const s = await this.session();
    const fetches = [this.defended.scores, ...[this.defended.accepted, this.defended.projected].filter((o): o is string => !!o), ...extra];
    return s.run({ [this.parts.input]: new ort.Tensor('float32', x, [n, ...this.sampleDims]) }, fetches);
  }

  /** Scores as logits: the dAE's probabilities go through a log (same argmax, margins in log space). */
  toLogits(scores: Float32Array): Float32Array {
    if (this.parts.stage.scores === 'logits') return scores;
    return scores.map((p) => Math.log(Math.max(p, PROBABILITY_FLOOR)));
  }

  async logits(x: Float32Array, n: number): Promise<Float32Array> {
    const out = await this.run(x, n);
    return this.toLogits(out[this.defended.scores].data as Float32Array);
  }

  /** Acceptance (1 accepted, 0 rejected) where the defense rejects, else undefined. */
  async accepted(x: Float32Array, n: number): Promise<Uint8Array | undefined> {
    if (!this.defended.accepted) return undefined;
    const out = await this.run(x, n);
    return Uint8Array.from(out[this.defended.accepted].data as ArrayLike<number | boolean>, Number);
  }

  async release(): Promise<void> {
    if (this.sessionPromise) await (await this.sessionPromise).release();
  }

  private judgeBytes?: Uint8Array;

  /**
   * The defended model with logits as its only output, for lane workers that judge an attack's
   * success (the dAE's probabilities go through the same log as toLogits).
   */
  judge(): { model: Uint8Array; output: string } {
    const output = 'judge_logits';
    if (!this.judgeBytes) {
      const g = this.defended.model.graph!;
      const b = new GraphBuilder('judge/');
      if (this.parts.stage.scores === 'logits') b.node('Identity', [this.defended.scores], {}, [output]);
      else b.node('Log', [b.op('Max', [this.defended.scores, b.scalar(PROBABILITY_FLOOR, 'floor')])], {}, [output]);
      this.judgeBytes = encodeModel({
        ...this.defended.model,
        graph: { ...g, node: [...(g.node ?? []), ...b.nodes], initializer: [...(g.initializer ?? []), ...b.initializers], output: [{ name: output }] },
      });
    }
    return { model: this.judgeBytes, output };
  }

  /** What a lane needs to run `gradientModel`'s gradient and judge on this defended model. */
  laneInit(gradientModel: { bytes: Uint8Array; shapes: Map<string, Dim[]>; output: string } | 'judge only', threads: number): LaneInit {
    const { input, sampleDims, numClasses, shapes } = this.parts;
    const judge = this.judge();
    const common = { input, sampleDims: [...sampleDims], numClasses, sessionOptions: { ep: 'cpu' as const, threads } };
    if (gradientModel === 'judge only') return { ...common, model: judge.model, output: judge.output, shapes: [...shapes] };
    return { ...common, model: gradientModel.bytes, output: gradientModel.output, shapes: [...gradientModel.shapes], judge };
  }
}

type GradientFn = (x: Float32Array, n: number, labels: Int32Array, loss: LossKind, targets?: Int32Array) => Promise<Float32Array>;

/** A threat model's gradient; `lane` describes it for lane workers where it is one ONNX model's loss gradient. */
interface ThreatGradient {
  fn: GradientFn;
  release(): Promise<void>;
  surrogate: string;
  lane?(): Promise<{ bytes: Uint8Array; shapes: Map<string, Dim[]>; output: string }>;
}

export type ThreatClassifier = Classifier & {
  release(): Promise<void>;
  surrogate: string;
  /** Lanes for this threat (worker copies), where its gradient is one ONNX model's; absent otherwise. */
  laneInit?(threads: number): Promise<LaneInit>;
};

/** The variants of the adaptive threat model that apply to a fitted stage, as threat names (adaptive/<id>). */
export function adaptiveVariantThreats(stage: DefenseStage): `adaptive/${string}`[] {
  return (defenseSpec(stage.kind).adaptive.variants ?? []).filter((v) => v.applies?.(stage) ?? true).map((v) => `adaptive/${v.id}` as const);
}

/**
 * The defended classifier with the gradient of the given threat model (none for gradient-free);
 * `threat` may name an adaptive variant (adaptive/<id>), whose surrogate may use `context`.
 */
export function threatClassifier(defended: DefendedClassifier, threat: ThreatModel | `adaptive/${string}`, context?: AdaptiveContext): ThreatClassifier {
  const base = {
    numClasses: defended.numClasses,
    sampleDims: defended.sampleDims,
    logits: (x: Float32Array, n: number) => defended.logits(x, n),
  };
  const lanesPossible = defended.parts.fixedBatch === undefined;
  if (threat === 'gradient-free')
    return {
      ...base,
      surrogate: 'none (forward passes only)',
      release: async () => {},
      ...(lanesPossible && { laneInit: async (threads: number) => defended.laneInit('judge only', threads) }),
    };
  const transfer: GradientFn = async (x, n, labels, loss, targets) => (await defended.parts.undefended.lossGradient(x, n, labels, loss, targets)).grad;
  let gradient: ThreatGradient;
  const stage = defended.parts.stage;
  if (threat === 'transfer' || (threat === 'bpda' && stage.placement === 'after-tail')) {
    gradient = {
      fn: transfer,
      release: async () => {},
      surrogate: threat === 'transfer' ? 'undefended model' : 'identity (removes an after-tail defense: equals transfer)',
      lane: async () => ({ bytes: encodeModel(defended.parts.model), shapes: defended.parts.shapes, output: defended.parts.output }),
    };
  } else if (threat === 'bpda') {
    gradient = bpdaGradient(defended);
  } else if (threat === 'adaptive') {
    gradient = adaptiveGradient(defended);
  } else if (threat.startsWith('adaptive/')) {
    const id = threat.slice('adaptive/'.length);
    const variant = defenseSpec(stage.kind).adaptive.variants?.find((v) => v.id === id);
    if (!variant) throw new Error(`the ${stage.kind} defense has no adaptive variant '${id}'`);
    if (!context) throw new Error(`the adaptive variant '${id}' needs the attacker's context`);
    gradient = surrogateGradient(defended, variant.description, () => variant.surrogate(stage, context));
  } else {
    gradient = directGradient(defended);
  }
  return {
    ...base,
    surrogate: gradient.surrogate,
    // Logits come from the defended forward pass: attacks judge success on the defended model.
    lossGradient: async (x, n, labels, loss, targets) => ({ grad: await gradient.fn(x, n, labels, loss, targets), logits: await defended.logits(x, n) }),
    release: () => gradient.release(),
    ...(lanesPossible && gradient.lane && { laneInit: async (threads: number) => defended.laneInit(await gradient.lane!(), threads) }),
  };
}

/** The target labels a targeted loss needs (one per sample), or an error naming the loss. */
function targetsFor(loss: LossKind, targets: Int32Array | undefined, n: number): Int32Array {
  if (!targets || targets.length !== n) throw new Error(`the ${loss} loss needs one target label per sample (${targets?.length ?? 0} for ${n} samples)`);
  return targets;
}

function labelTensor(labels: Int32Array): ort.Tensor {
  return new ort.Tensor(
    'int64',
    BigInt64Array.from(labels, (v) => BigInt(v)),
    [labels.length],
  );
}

/** BPDA with the identity: g = J_head(x)^T · ∇_h L_tail(h) at h = defense(head(x)). */
function bpdaGradient(defended: DefendedClassifier): { fn: GradientFn; release(): Promise<void>; surrogate: string } {
  const { model, shapes, stage, sessionOptions, input } = defended.parts;
  const { head, tail } = cutModel(model, stage.layer, shapes);
  const sessions = new Map<
    LossKind,
    Promise<{ headVjp: Session; tailGrad: Session; h: { grad: string; cotangent: string }; t: { grad: string; labels: string; targets?: string } }>
  >();
  const get = (loss: LossKind) => {
    let p = sessions.get(loss);
    if (!p) {
      p = (async () => {
        const hg = buildGradientModel(head, shapes, { kind: 'vjp' }, { input, output: stage.layer });
        const tg = buildGradientModel(tail, shapes, { kind: 'loss', loss }, { input: stage.layer });
        return {
          headVjp: await createSession(encodeModel(hg.model), sessionOptions),
          tailGrad: await createSession(encodeModel(tg.model), sessionOptions),
          h: { grad: hg.grad, cotangent: hg.cotangent! },
          t: { grad: tg.grad, labels: tg.labels!, targets: tg.targets },
        };
      })();
      sessions.set(loss, p);
    }
    return p;
  };
  return {
    surrogate: 'identity through the defense',
    fn: async (x, n, labels, loss, targets) => {
      const s = await get(loss);
      const out = await defended.run(x, n, [DEFENSE_IO.activationOut]);
      const h = out[DEFENSE_IO.activationOut];
      const feeds: Record<string, ort.Tensor> = { [stage.layer]: h, [s.t.labels]: labelTensor(labels) };
      if (s.t.targets) feeds[s.t.targets] = labelTensor(targetsFor(loss, targets, n));
      const gT = (await s.tailGrad.run(feeds, [s.t.grad]))[s.t.grad];
      const gx = await s.headVjp.run({ [input]: new ort.Tensor('float32', x, [n, ...defended.sampleDims]), [s.h.cotangent]: gT }, [s.h.grad]);
      return gx[s.h.grad].data as Float32Array;
    },
    release: async () => {
      for (const p of sessions.values()) {
        const s = await p;
        await s.headVjp.release();
        await s.tailGrad.release();
      }
    },
  };
}

/**
 * The true gradient of the defended model. Logit-scored defenses use the loss forms of the
 * autodiff. For the dAE's scaled probabilities y~ = c · softmax(z), cross-entropy would cancel c
 * (it renormalises), so the objective is the adaptive one: maximise log Σ_{j≠y} y~_j, the scaled
 * probability mass on wrong classes, which needs the input misclassified AND confidently accepted.
 */
function directGradient(defended: DefendedClassifier): { fn: GradientFn; release(): Promise<void>; surrogate: string } {
  const { input, sessionOptions, numClasses } = defended.parts;
  const probabilities = defended.parts.stage.scores === 'probabilities';
  const sessions = new Map<
    string,
    Promise<{ session: Session; grad: string; labels?: string; targets?: string; cotangent?: string; mask?: string } | 'zero'>
  >();
  let shapes: Promise<Map<string, Dim[]>> | undefined;
  const shapesOf = (m: ModelProto) => {
    const bytes = encodeModel(m);
    return inferShapes({ path: '(defended model)', sha256: sha256Hex(bytes), model: m, bytes }, sessionOptions.threads);
  };
  const get = (loss: LossKind) => {
    const key = probabilities ? 'adaptive' : loss;
    let p = sessions.get(key);
    if (!p) {
      p = (async () => {
        if (!probabilities) {
          shapes ??= shapesOf(defended.defended.model);
          let g;
          try {
            g = buildGradientModel(defended.defended.model, await shapes, { kind: 'loss', loss }, { input, output: defended.defended.scores });
          } catch (e) {
            // Through an argmin (LESCI vq) the output is piecewise constant: its true gradient is zero.
            if (e instanceof UserError && /does not depend differentiably/.test(e.message)) return 'zero' as const;
            throw e;
          }
          return { session: await createSession(encodeModel(g.model), sessionOptions), grad: g.grad, labels: g.labels, targets: g.targets };
        }
        const objective = adaptiveObjective(defended.defended, numClasses);
        const g = buildGradientModel(objective.model, await shapesOf(objective.model), { kind: 'vjp' }, { input, output: objective.output });
        return { session: await createSession(encodeModel(g.model), sessionOptions), grad: g.grad, cotangent: g.cotangent, mask: objective.mask };
      })();
      sessions.set(key, p);
    }
    return p;
  };
  return {
    surrogate: probabilities ? 'true gradient of log Σ_{j≠y} c·softmax_j (through c)' : 'true gradient of the defended model',
    fn: async (x, n, labels, loss, targets) => {
      const s = await get(loss);
      if (s === 'zero') return new Float32Array(x.length);
      const feeds: Record<string, ort.Tensor> = { [input]: new ort.Tensor('float32', x, [n, ...defended.sampleDims]) };
      if (s.labels) feeds[s.labels] = labelTensor(labels);
      if (s.targets) feeds[s.targets] = labelTensor(targetsFor(loss, targets, n));
      if (s.mask) {
        const mask = new Float32Array(n * numClasses).fill(1);
        labels.forEach((y, i) => (mask[i * numClasses + y] = 0));
        feeds[s.mask] = new ort.Tensor('float32', mask, [n, numClasses]);
        feeds[s.cotangent!] = new ort.Tensor('float32', new Float32Array(n).fill(1), [n]);
      }
      return (await s.session.run(feeds, [s.grad]))[s.grad].data as Float32Array;
    },
    release: async () => {
      for (const p of sessions.values()) {
        const s = await p;
        if (s !== 'zero') await s.session.release();
      }
    },
  };
}

/**
 * The adaptive threat model: the gradient of the defense's surrogate (its registry entry's
 * `adaptive.surrogate`, e.g. soft nearest neighbours over LESCI's stored rows) spliced in place of
 * the defense, or the defended model's own gradient where that already is the adaptive objective.
 */
function adaptiveGradient(defended: DefendedClassifier): { fn: GradientFn; release(): Promise<void>; surrogate: string } {
  const spec = defenseSpec(defended.parts.stage.kind).adaptive;
  if (!spec.surrogate) return { ...directGradient(defended), surrogate: spec.description };
  return surrogateGradient(defended, spec.description, () => spec.surrogate!(defended.parts.stage));
}

/** The loss gradient of the model with `surrogate()` spliced in place of the defense (built on first use). */
function surrogateGradient(defended: DefendedClassifier, description: string, surrogate: () => Promise<DefenseStage> | DefenseStage): ThreatGradient {
  const { input, sessionOptions, numClasses } = defended.parts;
  let composedModel: Promise<{ bytes: Uint8Array; shapes: Map<string, Dim[]>; output: string; model: ModelProto }> | undefined;
  const composed = () =>
    (composedModel ??= (async () => {
      const c = composeDefended(defended.parts.model, await surrogate());
      const bytes = encodeModel(c.model);
      const shapes = await inferShapes({ path: '(adaptive surrogate)', sha256: sha256Hex(bytes), model: c.model, bytes }, sessionOptions.threads);
      return { bytes, shapes, output: c.scores, model: c.model };
    })());
  let classifier: Promise<{ c: OnnxClassifier; session: Session }> | undefined;
  const get = () =>
    (classifier ??= (async () => {
      const { bytes, shapes, output, model } = await composed();
      const session = await createSession(bytes, sessionOptions);
      const c = new OnnxClassifier({ model, shapes, session, input, output, sampleDims: defended.sampleDims, numClasses, sessionOptions });
      return { c, session };
    })());
  return {
    surrogate: description,
    fn: async (x, n, labels, loss, targets) => (await (await get()).c.lossGradient(x, n, labels, loss, targets)).grad,
    lane: async () => {
      const { bytes, shapes, output } = await composed();
      return { bytes, shapes, output };
    },
    release: async () => {
      if (!classifier) return;
      const { c, session } = await classifier;
      await c.release();
      await session.release();
    },
  };
}

/** Appends objective_i = log(Σ_j mask_ij · scores_ij + floor) to the defended model; mask is an input. */
function adaptiveObjective(defended: DefendedModel, numClasses: number): { model: ModelProto; output: string; mask: string } {
  const b = new GraphBuilder('adaptive/');
  const mask = 'adaptive_wrong_class_mask';
  const masked = b.op('Mul', [defended.scores, mask]);
  const mass = b.op('ReduceSum', [masked, b.int64Const('axes', [1])], { keepdims: 0 });
  const output = 'adaptive_objective';
  b.node('Log', [b.op('Add', [mass, b.scalar(PROBABILITY_FLOOR)])], {}, [output]);
  const g = defended.model.graph!;
  return {
    model: {
      ...defended.model,
      graph: {
        ...g,
        node: [...(g.node ?? []), ...b.nodes],
        initializer: [...(g.initializer ?? []), ...b.initializers],
        input: [...(g.input ?? []), tensorValueInfo(mask, ['N', numClasses])],
        output: [{ name: output }],
      },
    },
    output,
    mask,
  };
}

/**
 * One training step as one ONNX model, so that a step is a single onnxruntime run on any execution
 * provider: forward, training loss (train-loss.ts), parameter gradients (buildObjectiveGradientModel)
 * and the optimizer update.
 *
 *   inputs   the batch x and its target, the learning rate and the step count t (1-based,
 *            float32 scalars), every parameter θ (the trainable initializers, now inputs of the
 *            same names) and the optimizer state (zeros before the first step)
 *   outputs  the loss on the batch, θ', the state'
 *
 * The caller keeps θ and the state in typed arrays between steps and feeds the outputs back in.
 *
 * Optimizers follow PyTorch's definitions (torch.optim, defaults as there), so one step equals
 * PyTorch's up to float32 rounding:
 *   sgd   g ← ∇ + λθ;  b ← μb + g (b = 0 at first, i.e. b = g as PyTorch);  d = nesterov ? g + μb : b
 *         (μ = 0: d = g);  θ ← θ − lr·d
 *   adam  g ← ∇ + λθ (or, decoupled = AdamW, θ ← θ(1 − lr·λ) first);  m ← β1m + (1−β1)g;
 *         v ← β2v + (1−β2)g²;  θ ← θ − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)
 * The bias corrections are computed in float64 from t (as PyTorch computes them in Python floats):
 * 1 − 0.999 in float32 would be 1.3e-5 off. The update runs as a handful of elementwise passes per
 * parameter, memory-bound: for a small dense network they cost about as much as its matrix products.
 */
import { UserError } from '../../errors';
import type { Dim } from '../../../protocol/model';
import { GraphBuilder } from '../builder';
import { tensorValueInfo } from '../cut';
import { freshNamer, tensorNames, unusedPrefix } from '../graph-utils';
import { DataType, opsetVersion, type GraphProto, type ModelProto, type TensorProto, type ValueInfoProto } from '../proto';
import { floatTensor, tensorFloat32 } from '../tensor-proto';
import { resolveOutput } from './analysis';
import { buildObjectiveGradientModel } from './build';
import { ConstantValues } from './constants';
import { BackwardContext } from './context';
import { Emitter } from './emitter';
import { emitTrainingLoss, lossTargetType, trainingObjective, type TrainingLoss } from './train-loss';

export type Optimizer =
  | { kind: 'sgd'; momentum?: number; nesterov?: boolean; weightDecay?: number }
  | { kind: 'adam'; beta1?: number; beta2?: number; epsilon?: number; weightDecay?: number; decoupledWeightDecay?: boolean };

export const OPTIMIZER_DEFAULTS = {
  sgd: { momentum: 0, nesterov: false, weightDecay: 0 },
  adam: { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0, decoupledWeightDecay: false },
} as const;

export interface TrainStepOptions {
  /** Trainable float initializers. Default: trainableInitializers(model). */
  params?: readonly string[];
  /** The batch input (default: the model's only float input). */
  input?: string;
  /** The output the loss reads (default: the first output). */
  output?: string;
  loss: TrainingLoss;
  optimizer: Optimizer;
}

export interface TrainableTensor {
  /** Input name (the initializer's name) and the output name of its updated value. */
  name: string;
  next: string;
  dims: number[];
  /** Initial value (from the initializer). */
  init: Float32Array;
}

export interface OptimizerSlot {
  /** Input name, output name of the updated value, and the parameter it belongs to. */
  name: string;
  next: string;
  param: string;
  dims: number[];
  /** 'momentum' (sgd), 'm' and 'v' (adam). */
  role: 'momentum' | 'm' | 'v';
}

export interface TrainStepModel {
  model: ModelProto;
  /** The batch input and its target input (float like the output for mse, int64 [N] for softmax-ce). */
  input: string;
  target: string;
  targetType: 'float32' | 'int64';
  /** float32 scalar inputs. */
  learningRate: string;
  step: string;
  /** Output: the mean loss over the batch. */
  loss: string;
  params: TrainableTensor[];
  state: OptimizerSlot[];
  /** The forward model's batch input dims and output dims (batch symbolic). */
  inputDims: Dim[];
  outputDims: Dim[];
}

/**
 * The float initializers a training step updates by default: weights and biases of Conv,
 * ConvTranspose, Gemm and MatMul, BatchNormalization / InstanceNormalization /
 * LayerNormalization scale and shift (not running statistics), PRelu slopes, and constant
 * operands of an Add that follows a Conv, Gemm or MatMul (a bias).
 */
export function trainableInitializers(model: ModelProto): string[] {
  const graph = model.graph!;
  const floats = new Set(
    (graph.initializer ?? []).filter((t) => (t.dataType ?? DataType.FLOAT) === DataType.FLOAT && (t.dims ?? []).length > 0).map((t) => t.name ?? ''),
  );
  const producer = new Map<string, string>();
  for (const n of graph.node ?? []) for (const o of n.output ?? []) producer.set(o, n.opType ?? '');
  const slots: Record<string, number[]> = {
    Conv: [1, 2],
    ConvTranspose: [1, 2],
    Gemm: [0, 1, 2],
    MatMul: [0, 1],
    BatchNormalization: [1, 2],
    InstanceNormalization: [1, 2],
    LayerNormalization: [1, 2],
    PRelu: [1],
  };
  const found: string[] = [];
  const add = (t: string | undefined) => {
    if (t && floats.has(t) && !found.includes(t)) found.push(t);
  };
  for (const n of graph.node ?? []) {
    const ins = n.input ?? [];
    if (n.domain && n.domain !== 'ai.onnx') continue;
    if (slots[n.opType ?? '']) for (const k of slots[n.opType!]) add(ins[k]);
    if (n.opType === 'Add' && ins.length === 2) {
      const [a, b] = ins;
      if (floats.has(b) && ['Conv', 'Gemm', 'MatMul', 'ConvTranspose'].includes(producer.get(a) ?? '')) add(b);
      if (floats.has(a) && ['Conv', 'Gemm', 'MatMul', 'ConvTranspose'].includes(producer.get(b) ?? '')) add(a);
    }
  }
  return found;
}

/** The model with the listed initializers turned into graph inputs (names kept), and their values. */
export function paramsAsInputs(
  model: ModelProto,
  params: readonly string[],
  shapes?: Map<string, Dim[]>,
): { model: ModelProto; params: TrainableTensor[]; shapes: Map<string, Dim[]> } {
  const graph = model.graph!;
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name ?? '', t]));
  const taken = new Set(params);
  const list: TrainableTensor[] = params.map((name) => {
    const t = inits.get(name);
    if (!t) throw new UserError(`The model has no initializer '${name}' to train.`, `Its initializers: ${[...inits.keys()].slice(0, 20).join(', ')}.`);
    if ((t.dataType ?? DataType.FLOAT) !== DataType.FLOAT) throw new UserError(`Initializer '${name}' is not float32: only float32 tensors are trained.`);
    return { name, next: '', dims: (t.dims ?? []).map(Number), init: tensorFloat32(t) };
  });
  const newShapes = new Map(shapes ?? []);
  for (const p of list) newShapes.set(p.name, p.dims);
  const newGraph: GraphProto = {
    ...graph,
    initializer: (graph.initializer ?? []).filter((t) => !taken.has(t.name ?? '')),
    // Older exporters list initializers among the inputs too: those entries are replaced.
    input: [...(graph.input ?? []).filter((v) => !taken.has(v.name ?? '')), ...list.map((p) => tensorValueInfo(p.name, p.dims))],
  };
  return { model: { ...model, graph: newGraph }, params: list, shapes: newShapes };
}

/** The forward model with trained values written back as its initializers. */
export function withParams(model: ModelProto, values: ReadonlyMap<string, Float32Array>): ModelProto {
  const graph = model.graph!;
  const initializer: TensorProto[] = (graph.initializer ?? []).map((t) => {
    const v = values.get(t.name ?? '');
    if (!v) return t;
    return floatTensor(t.name ?? '', (t.dims ?? []).map(Number), v);
  });
  return { ...model, graph: { ...graph, initializer } };
}

function singleFloatInput(model: ModelProto, requested?: string): { name: string; dims: Dim[] } {
  const graph = model.graph!;
  const inits = new Set((graph.initializer ?? []).map((t) => t.name ?? ''));
  const inputs = (graph.input ?? []).filter((v) => !inits.has(v.name ?? ''));
  const floats = inputs.filter((v) => (v.type?.tensorType?.elemType ?? DataType.FLOAT) === DataType.FLOAT);
  const found = requested ? inputs.find((v) => v.name === requested) : floats.length === 1 ? floats[0] : undefined;
  if (!found) {
    throw new UserError(
      requested
        ? `The model has no input named '${requested}'.`
        : `Training needs one float batch input; the model has ${floats.length} (${floats.map((v) => v.name).join(', ')}).`,
      'Name the batch input.',
    );
  }
  const dims = (found.type?.tensorType?.shape?.dim ?? []).map((d): Dim =>
    d.dimValue !== undefined && d.dimValue !== null ? Number(d.dimValue) : d.dimParam || 'N',
  );
  return { name: found.name!, dims };
}

/** Builds the one-run training step. `shapes` from inferShapes of the forward model. */
export function buildTrainStep(forwardModel: ModelProto, forwardShapes: Map<string, Dim[]>, options: TrainStepOptions): TrainStepModel {
  const paramNames = [...(options.params ?? trainableInitializers(forwardModel))];
  if (paramNames.length === 0) throw new UserError('The model has no trainable initializers.', 'Name the parameters to train.');
  const input = singleFloatInput(forwardModel, options.input);
  const output = resolveOutput(forwardModel, options.output);
  const { model: withInputs, params, shapes } = paramsAsInputs(forwardModel, paramNames, forwardShapes);
  const og = buildObjectiveGradientModel(withInputs, shapes, trainingObjective(options.loss), { output, wrt: paramNames });
  const graph = og.model.graph!;
  const names = tensorNames(graph);
  const unique = freshNamer(names);
  const b = new GraphBuilder(unusedPrefix(names, 'train'));
  const learningRate = unique('learning_rate');
  const step = unique('step');
  const state: OptimizerSlot[] = [];
  const slot = (p: TrainableTensor, role: OptimizerSlot['role']) => {
    const s: OptimizerSlot = { name: unique(`${p.name}/${role}`), next: '', param: p.name, dims: p.dims, role };
    s.next = unique(`${s.name}/next`);
    state.push(s);
    return s;
  };
  for (const p of params) p.next = unique(`${p.name}/next`);
  const opt = options.optimizer;
  const decay = opt.weightDecay ?? 0;
  if (!(decay >= 0) || !Number.isFinite(decay)) throw new UserError(`Invalid weight decay ${decay}.`, 'A finite number ≥ 0.');
  if (opt.kind === 'sgd') {
    const momentum = opt.momentum ?? OPTIMIZER_DEFAULTS.sgd.momentum;
    if (!(momentum >= 0 && momentum < 1)) throw new UserError(`Invalid SGD momentum ${momentum}.`, 'A number in [0, 1).');
    for (const p of params) {
      let g = og.grads[p.name];
      if (decay > 0) g = b.op('Add', [g, b.op('Mul', [p.name, b.scalar(decay, 'weight_decay')])]);
      let d = g;
      if (momentum > 0) {
        const s = slot(p, 'momentum');
        b.node('Add', [b.op('Mul', [s.name, b.scalar(momentum, 'momentum')]), g], {}, [s.next]);
        d = opt.nesterov ? b.op('Add', [g, b.op('Mul', [s.next, b.scalar(momentum, 'momentum')])]) : s.next;
      }
      b.node('Sub', [p.name, b.op('Mul', [d, learningRate])], {}, [p.next]);
    }
  } else if (opt.kind === 'adam') {
    const beta1 = opt.beta1 ?? OPTIMIZER_DEFAULTS.adam.beta1,
      beta2 = opt.beta2 ?? OPTIMIZER_DEFAULTS.adam.beta2,
      eps = opt.epsilon ?? OPTIMIZER_DEFAULTS.adam.epsilon;
    if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1 && eps >= 0))
      throw new UserError(`Invalid Adam parameters β1=${beta1}, β2=${beta2}, ε=${eps}.`, 'β1, β2 in [0, 1), ε ≥ 0.');
    const decoupled = opt.decoupledWeightDecay ?? false;
    // Bias corrections in float64, βᵗ = exp(t·ln β): with c = √(1 − β2ᵗ), PyTorch's
    // θ − lr/(1 − β1ᵗ) · m / (√v/c + ε) is θ − (lr·c/(1 − β1ᵗ)) · m / (√v + ε·c), one pass fewer.
    const t64 = b.op('Cast', [step], { to: DataType.DOUBLE });
    const double = (hint: string, v: number) => b.node('Constant', [], { value: doubleScalar(hint, v) }, 1)[0];
    const one = double('one', 1);
    const power = (beta: number) => (beta > 0 ? b.op('Exp', [b.op('Mul', [t64, double('ln_beta', Math.log(beta))])]) : double('zero', 0));
    const bc1 = b.op('Sub', [one, power(beta1)]);
    const c = b.op('Sqrt', [b.op('Sub', [one, power(beta2)])]);
    const stepSize = b.op('Cast', [b.op('Div', [b.op('Mul', [b.op('Cast', [learningRate], { to: DataType.DOUBLE }), c]), bc1])], { to: DataType.FLOAT });
    const epsilon = b.op('Cast', [b.op('Mul', [c, double('epsilon', eps)])], { to: DataType.FLOAT });
    for (const p of params) {
      let g = og.grads[p.name];
      let base = p.name;
      if (decay > 0 && !decoupled) g = b.op('Add', [g, b.op('Mul', [p.name, b.scalar(decay, 'weight_decay')])]);
      if (decay > 0 && decoupled) base = b.op('Mul', [p.name, b.op('Sub', [b.scalar(1, 'one'), b.op('Mul', [learningRate, b.scalar(decay, 'weight_decay')])])]);
      const m = slot(p, 'm'),
        v = slot(p, 'v');
      b.node('Add', [b.op('Mul', [m.name, b.scalar(beta1, 'beta1')]), b.op('Mul', [g, b.scalar(1 - beta1, 'one_minus_beta1')])], {}, [m.next]);
      b.node('Add', [b.op('Mul', [v.name, b.scalar(beta2, 'beta2')]), b.op('Mul', [b.op('Mul', [g, g]), b.scalar(1 - beta2, 'one_minus_beta2')])], {}, [
        v.next,
      ]);
      const denom = b.op('Add', [b.op('Sqrt', [v.next]), epsilon]);
      b.node('Sub', [base, b.op('Mul', [b.op('Div', [m.next, denom]), stepSize])], {}, [p.next]);
    }
  } else {
    throw new UserError(`Unknown optimizer '${(opt as { kind: string }).kind}'.`, "Use 'sgd' or 'adam'.");
  }

  const target = og.objectiveInputs[0];
  const extraInputs: ValueInfoProto[] = [
    tensorValueInfo(learningRate, [], DataType.FLOAT),
    tensorValueInfo(step, [], DataType.FLOAT),
    ...state.map((s) => tensorValueInfo(s.name, s.dims)),
  ];
  const outputs: ValueInfoProto[] = [
    tensorValueInfo(og.loss, []),
    ...params.map((p) => tensorValueInfo(p.next, p.dims)),
    ...state.map((s) => tensorValueInfo(s.next, s.dims)),
  ];
  const model: ModelProto = {
    ...og.model,
    graph: {
      ...graph,
      node: [...(graph.node ?? []), ...b.nodes],
      initializer: [...(graph.initializer ?? []), ...b.initializers],
      input: [...(graph.input ?? []), ...extraInputs],
      output: outputs,
    },
  };
  return {
    model,
    input: input.name,
    target,
    targetType: lossTargetType(options.loss),
    learningRate,
    step,
    loss: og.loss,
    params,
    state,
    inputDims: input.dims,
    outputDims: shapes.get(output) ?? [],
  };
}

function doubleScalar(name: string, value: number): TensorProto {
  return { name, dims: [], dataType: DataType.DOUBLE, doubleData: [value] };
}

export interface LossModel {
  model: ModelProto;
  input: string;
  target: string;
  loss: string;
}

/**
 * Forward + loss, no gradients, with the parameters as inputs: the loss of the current
 * parameters on held-out data (early stopping) or on the whole training set.
 */
export function buildLossModel(
  forwardModel: ModelProto,
  forwardShapes: Map<string, Dim[]>,
  options: { params: readonly string[]; loss: TrainingLoss; input?: string; output?: string },
): LossModel {
  const input = singleFloatInput(forwardModel, options.input);
  const output = resolveOutput(forwardModel, options.output);
  const { model, shapes } = paramsAsInputs(forwardModel, options.params, forwardShapes);
  const graph = model.graph!;
  const names = tensorNames(graph);
  const unique = freshNamer(names);
  const e = new Emitter(new GraphBuilder(unusedPrefix(names, 'loss')), opsetVersion(model));
  const ctx = new BackwardContext(e, shapes, new ConstantValues(graph, () => true), new Map(), opsetVersion(model));
  const emitted = emitTrainingLoss(ctx, output, options.loss, unique);
  const loss = unique('loss');
  e.node('Identity', [emitted.loss], {}, [loss]);
  return {
    model: {
      ...model,
      graph: {
        ...graph,
        node: [...(graph.node ?? []), ...e.b.nodes],
        initializer: [...(graph.initializer ?? []), ...e.b.initializers],
        input: [...(graph.input ?? []), ...emitted.inputs],
        output: [tensorValueInfo(loss, [])],
      },
    },
    input: input.name,
    target: emitted.inputs[0].name!,
    loss,
  };
}

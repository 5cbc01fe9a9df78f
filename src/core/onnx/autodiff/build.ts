/**
 * The reverse-mode walker: from a forward ONNX graph, one model computing the forward output and
 * the gradient with respect to the input, in standard ONNX ops; optionally also with respect to
 * any named tensors (`wrt`: weights, biases, …), or with respect to those alone under a scalar
 * objective (buildObjectiveGradientModel: the parameter gradients of a training loss).
 *
 * 1. Analysis (analysis.ts) finds the nodes on a differentiable path and refuses, in one error,
 *    every node without a rule, before anything is built.
 * 2. The seed: a cotangent input (vjp), or the loss and its gradient w.r.t. the logits (loss.ts).
 * 3. Path nodes are visited in reverse graph order; each node's output gradient is the Sum of the
 *    contributions of its consumers (all visited before it), its rule emits the input gradients.
 *    Only tensors that depend differentiably on a source (the input, or a `wrt` tensor) get
 *    gradients, and rules read forward activations instead of recomputing them.
 * Forward nodes are kept (the MaxPool and LayerNormalization rules may switch on optional outputs),
 * backward nodes are appended: the graph stays topologically sorted.
 */
import { UserError } from '../../errors';
import type { Dim } from '../../../protocol/model';
import { GraphBuilder } from '../builder';
import { tensorValueInfo } from '../cut';
import { dataInputs, freshNamer, tensorNames, unusedPrefix } from '../graph-utils';
import { DataType, opsetVersion, type GraphProto, type ModelProto, type NodeProto, type ValueInfoProto } from '../proto';
import { analyze, groupUnsupported, resolveIO, resolveOutput, resolveSources, unsupportedError } from './analysis';
import { ConstantValues } from './constants';
import { BackwardContext } from './context';
import { Emitter } from './emitter';
import { emitLoss, lossNeedsTargets } from './loss';
import { plannedOpset, withOpset } from './opset';
import { rewriteForGradient } from './rewrite';
import { GRADIENT_RULES } from './rules';
import type { CheckInfo, GradientModel, GradientOptions, GradientTarget, State, UnsupportedOp } from './types';

/** Ops on the differentiable path from the input to the output that have no gradient rule (empty: the model is differentiable). */
export function unsupportedGradientOps(model: ModelProto, options: GradientOptions = {}): UnsupportedOp[] {
  const io = resolveIO(model, options);
  const modelOpset = opsetVersion(model);
  const a = analyze(model, io, GRADIENT_RULES, (states) => {
    const consts = new ConstantValues(model.graph!, (n) => states.has(n));
    return { modelOpset, strict: false, shape: () => undefined, constant: (n) => consts.get(n) };
  });
  return groupUnsupported(a);
}

/** Options of buildGradientModel: the input and output, and optionally more tensors to differentiate with respect to. */
export interface WrtGradientOptions extends GradientOptions {
  /**
   * More tensors to differentiate with respect to: initializers (Conv/Gemm/MatMul weights, biases,
   * BatchNormalization scale and shift, PRelu slopes, …), graph inputs or node outputs. Each gets
   * an output `grads[name]` shaped like it (zeros where the output does not depend on it).
   */
  wrt?: readonly string[];
}

export function buildGradientModel(
  forwardModel: ModelProto,
  forwardShapes: Map<string, Dim[]>,
  target: GradientTarget,
  options: WrtGradientOptions = {},
): GradientModel & { grads?: Record<string, string> } {
  const io = resolveIO(forwardModel, options);
  const wrt = options.wrt ? resolveSources(forwardModel, options.wrt).filter((t) => t !== io.input) : [];
  const inputInfo = dataInputs(forwardModel.graph!).find((v) => v.name === io.input);
  if ((inputInfo?.type?.tensorType?.elemType ?? DataType.FLOAT) !== DataType.FLOAT) {
    throw new UserError(`Input '${io.input}' is not float32: input gradients need a float input.`);
  }
  const result: Partial<GradientModel> & { grads?: Record<string, string> } = { input: io.input, output: io.output };
  const built = differentiate(forwardModel, forwardShapes, io, options.wrt ? [io.input, ...wrt] : undefined, (ctx, unique) => {
    const e = ctx.e;
    const outDims = ctx.dims(io.output);
    if (target.kind === 'vjp') {
      const seed = (result.cotangent = unique(`${io.output}_cotangent`));
      return { seed, inputs: [tensorValueInfo(seed, outDims)], outputs: [] };
    }
    const labels = (result.labels = unique('labels'));
    // The targeted DLR loss reads a second int64 input of target labels.
    const targets = lossNeedsTargets(target.loss) ? (result.targets = unique('targets')) : undefined;
    const { loss, dlogits } = emitLoss(ctx, io.output, target.loss, labels, targets);
    result.loss = unique('loss');
    e.node('Identity', [loss], {}, [result.loss]);
    const inputs = [labels, ...(targets ? [targets] : [])].map((name) => tensorValueInfo(name, [outDims[0]], DataType.INT64));
    return { seed: dlogits, inputs, outputs: [tensorValueInfo(result.loss, [])] };
  });
  result.grad = built.grads.get(io.input)!;
  if (options.wrt) result.grads = Object.fromEntries(wrt.map((t) => [t, built.grads.get(t)!]));
  return { ...result, model: built.model } as GradientModel & { grads?: Record<string, string> };
}

/**
 * A scalar objective of the forward output, emitted after the forward nodes: the loss tensor, the
 * inputs it reads (targets, labels) and, on demand, its gradient with respect to the output.
 */
export interface ObjectiveEmission {
  loss: string;
  inputs: ValueInfoProto[];
  doutput(): string;
}
export type Objective = (ctx: BackwardContext, output: string, unique: (base: string) => string) => ObjectiveEmission;

export interface ObjectiveGradientModel {
  /** Forward, objective and backward in one model. */
  model: ModelProto;
  /** The forward output the objective reads (still an output of the model). */
  output: string;
  /** Output: the scalar objective. */
  loss: string;
  /** The inputs the objective added (targets, labels). */
  objectiveInputs: string[];
  /** Outputs: wrt tensor → its gradient, shaped like it. */
  grads: Record<string, string>;
}

/**
 * One model computing a scalar objective of the output (a training loss, say) and its gradients
 * with respect to `wrt` (weights and biases, typically; the input only if listed): the gradients
 * training needs, without the input gradient.
 */
export function buildObjectiveGradientModel(
  forwardModel: ModelProto,
  forwardShapes: Map<string, Dim[]>,
  objective: Objective,
  options: { output?: string; wrt: readonly string[] },
): ObjectiveGradientModel {
  if (options.wrt.length === 0) throw new UserError('Nothing to differentiate with respect to: name the weights (wrt).');
  const output = resolveOutput(forwardModel, options.output);
  const wrt = resolveSources(forwardModel, options.wrt);
  let loss = '';
  let objectiveInputs: string[] = [];
  const built = differentiate(
    forwardModel,
    forwardShapes,
    { input: '', output },
    wrt,
    (ctx, unique) => {
      const o = objective(ctx, output, unique);
      loss = unique('loss');
      ctx.e.node('Identity', [o.loss], {}, [loss]);
      objectiveInputs = o.inputs.map((v) => v.name!);
      return { seed: o.doutput(), inputs: o.inputs, outputs: [tensorValueInfo(loss, [])] };
    },
    false,
  );
  return { model: built.model, output, loss, objectiveInputs, grads: Object.fromEntries(wrt.map((t) => [t, built.grads.get(t)!])) };
}

interface Seed {
  seed: string;
  inputs: ValueInfoProto[];
  outputs: ValueInfoProto[];
}

/**
 * The shared builder: rewrites, analysis (one error for every unsupported node), the seed, the
 * reverse sweep, and one output per source (the input first, when it is one). `sources` undefined:
 * the input alone, exactly as input gradients have always been built.
 */
function differentiate(
  forwardModel: ModelProto,
  forwardShapes: Map<string, Dim[]>,
  io: { input: string; output: string },
  sources: string[] | undefined,
  makeSeed: (ctx: BackwardContext, unique: (base: string) => string) => Seed,
  inputGradient = true,
): { model: ModelProto; grads: Map<string, string> } {
  const { model, shapes } = rewriteForGradient(forwardModel, forwardShapes, new Set(sources ?? []));
  const graph = model.graph!;
  const modelOpset = opsetVersion(model);
  let consts!: ConstantValues;
  let info!: CheckInfo;
  const analysis = analyze(model, { ...io, sources }, GRADIENT_RULES, (states) => {
    consts = new ConstantValues(graph, (n) => states.has(n), shapes);
    info = { modelOpset, strict: true, shape: (n) => shapes.get(n), constant: (n) => consts.get(n) };
    return info;
  });
  if (analysis.unsupported.length > 0) throw unsupportedError(analysis, model);
  for (const t of [...(inputGradient ? [io.input] : []), io.output, ...(sources ?? [])]) {
    if (!shapes.has(t)) throw new Error(`autodiff: no shape for '${t}': pass the shapes from inferShapes()`);
  }

  const nodes: NodeProto[] = (graph.node ?? []).map((n) => ({
    ...n,
    input: [...(n.input ?? [])],
    output: [...(n.output ?? [])],
    attribute: [...(n.attribute ?? [])],
  }));
  const wanted = Math.max(modelOpset, ...analysis.path.map((i) => GRADIENT_RULES.get(nodes[i].opType!)!.wantsOpset?.(nodes[i], info) ?? 0));
  const opset = plannedOpset(model, wanted);

  const names = tensorNames(graph);
  const e = new Emitter(new GraphBuilder(unusedPrefix(names, 'grad')), opset);
  const ctx = new BackwardContext(e, shapes, consts, analysis.states, modelOpset);
  const unique = freshNamer(names);

  const seed = makeSeed(ctx, unique);
  const contributions = backward(nodes, analysis.path, analysis.states, io.output, seed.seed, ctx);

  const grads = new Map<string, string>();
  const gradOutputs: ValueInfoProto[] = [];
  const gradient = (t: string, required: boolean) => {
    const g = contributions.get(t);
    if (!g && required) throw new Error(`autodiff: no gradient reached '${t}'`);
    const name = unique(`${t}_grad`);
    // A source the output does not depend on (a bias behind a piecewise-constant op, say) has gradient zero.
    e.node('Identity', [g ? e.sum(g) : e.zerosLike(t, ctx.dims(t))], {}, [name]);
    grads.set(t, name);
    return tensorValueInfo(name, ctx.dims(t));
  };
  const inputGrad = inputGradient ? [gradient(io.input, true)] : [];
  for (const t of sources ?? []) if (!grads.has(t)) gradOutputs.push(gradient(t, false));

  const outputs = [...(graph.output ?? [])];
  if (!outputs.some((o) => o.name === io.output)) outputs.push(tensorValueInfo(io.output, ctx.dims(io.output)));
  const newGraph: GraphProto = {
    ...graph,
    node: [...nodes, ...e.b.nodes],
    initializer: [...(graph.initializer ?? []), ...e.b.initializers],
    input: [...(graph.input ?? []), ...seed.inputs],
    output: [...outputs, ...inputGrad, ...seed.outputs, ...gradOutputs],
  };
  return { model: withOpset({ ...model, graph: newGraph }, opset), grads };
}

/** Reverse sweep over the path; returns every differentiable tensor's gradient contributions. */
function backward(nodes: NodeProto[], path: number[], states: Map<string, State>, output: string, seed: string, ctx: BackwardContext): Map<string, string[]> {
  const contributions = new Map<string, string[]>();
  const contribute = (t: string, g: string) => {
    const list = contributions.get(t);
    if (list) list.push(g);
    else contributions.set(t, [g]);
  };
  contribute(output, seed);
  for (let p = path.length - 1; p >= 0; p--) {
    const node = nodes[path[p]];
    const gy = (node.output ?? []).map((o) => {
      const list = o && states.get(o) === 'diff' ? contributions.get(o) : undefined;
      return list ? ctx.e.sum(list) : undefined;
    });
    if (gy.every((g) => g === undefined)) continue;
    const gx = GRADIENT_RULES.get(node.opType!)!.backward(node, gy, ctx);
    (node.input ?? []).forEach((name, k) => {
      const g = gx[k];
      if (g && ctx.needs(name)) contribute(name, g);
    });
  }
  return contributions;
}

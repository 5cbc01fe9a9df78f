/**
 * The reverse-mode walker: from a forward ONNX graph, one model computing the forward output and
 * the gradient with respect to the input, in standard ONNX ops.
 *
 * 1. Analysis (analysis.ts) finds the nodes on a differentiable path and refuses, in one error,
 *    every node without a rule, before anything is built.
 * 2. The seed: a cotangent input (vjp), or the loss and its gradient w.r.t. the logits (loss.ts).
 * 3. Path nodes are visited in reverse graph order; each node's output gradient is the Sum of the
 *    contributions of its consumers (all visited before it), its rule emits the input gradients.
 *    Only tensors that depend on the input get gradients (no weight gradients), and rules read
 *    forward activations instead of recomputing them.
 * Forward nodes are kept (the MaxPool and LayerNormalization rules may switch on optional outputs),
 * backward nodes are appended: the graph stays topologically sorted.
 */
import { UserError } from '../../errors';
import type { Dim } from '../../model/shapes';
import { GraphBuilder } from '../builder';
import { tensorValueInfo } from '../cut';
import { dataInputs, freshNamer, tensorNames, unusedPrefix } from '../graph-utils';
import { DataType, opsetVersion, type GraphProto, type ModelProto, type NodeProto } from '../proto';
import { analyze, groupUnsupported, resolveIO, unsupportedError } from './analysis';
import { ConstantValues } from './constants';
import { BackwardContext } from './context';
import { Emitter } from './emitter';
import { emitLoss } from './loss';
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

export function buildGradientModel(forwardModel: ModelProto, forwardShapes: Map<string, Dim[]>, target: GradientTarget, options: GradientOptions = {}): GradientModel {
  const { model, shapes } = rewriteForGradient(forwardModel, forwardShapes);
  const graph = model.graph!;
  const io = resolveIO(model, options);
  const inputInfo = dataInputs(graph).find((v) => v.name === io.input);
  if ((inputInfo?.type?.tensorType?.elemType ?? DataType.FLOAT) !== DataType.FLOAT) {
    throw new UserError(`Input '${io.input}' is not float32: input gradients need a float input.`);
  }
  const modelOpset = opsetVersion(model);
  let consts!: ConstantValues;
  let info!: CheckInfo;
  const analysis = analyze(model, io, GRADIENT_RULES, (states) => {
    consts = new ConstantValues(graph, (n) => states.has(n), shapes);
    info = { modelOpset, strict: true, shape: (n) => shapes.get(n), constant: (n) => consts.get(n) };
    return info;
  });
  if (analysis.unsupported.length > 0) throw unsupportedError(analysis, model);
  for (const t of [io.input, io.output]) {
    if (!shapes.has(t)) throw new Error(`autodiff: no shape for '${t}': pass the shapes from inferShapes()`);
  }

  const nodes: NodeProto[] = (graph.node ?? []).map((n) => ({ ...n, input: [...(n.input ?? [])], output: [...(n.output ?? [])], attribute: [...(n.attribute ?? [])] }));
  const wanted = Math.max(modelOpset, ...analysis.path.map((i) => GRADIENT_RULES.get(nodes[i].opType!)!.wantsOpset?.(nodes[i], info) ?? 0));
  const opset = plannedOpset(model, wanted);

  const names = tensorNames(graph);
  const e = new Emitter(new GraphBuilder(unusedPrefix(names, 'grad')), opset);
  const ctx = new BackwardContext(e, shapes, consts, analysis.states, modelOpset);
  const unique = freshNamer(names);

  const result: Partial<GradientModel> = { input: io.input, output: io.output };
  const extraInputs = [];
  const extraOutputs = [];
  let seed: string;
  const outDims = ctx.dims(io.output);
  if (target.kind === 'vjp') {
    seed = result.cotangent = unique(`${io.output}_cotangent`);
    extraInputs.push(tensorValueInfo(seed, outDims));
  } else {
    const labels = (result.labels = unique('labels'));
    extraInputs.push(tensorValueInfo(labels, [outDims[0]], DataType.INT64));
    const { loss, dlogits } = emitLoss(ctx, io.output, target.loss, labels);
    result.loss = unique('loss');
    e.node('Identity', [loss], {}, [result.loss]);
    extraOutputs.push(tensorValueInfo(result.loss, []));
    seed = dlogits;
  }

  const gradInput = backward(nodes, analysis.path, analysis.states, io, seed, ctx);
  result.grad = unique(`${io.input}_grad`);
  e.node('Identity', [gradInput], {}, [result.grad]);

  const outputs = [...(graph.output ?? [])];
  if (!outputs.some((o) => o.name === io.output)) outputs.push(tensorValueInfo(io.output, outDims));
  const newGraph: GraphProto = {
    ...graph,
    node: [...nodes, ...e.b.nodes],
    initializer: [...(graph.initializer ?? []), ...e.b.initializers],
    input: [...(graph.input ?? []), ...extraInputs],
    output: [...outputs, tensorValueInfo(result.grad, ctx.dims(io.input)), ...extraOutputs],
  };
  return { ...result, model: withOpset({ ...model, graph: newGraph }, opset) } as GradientModel;
}

/** Reverse sweep over the path; returns the name of the input's gradient. */
function backward(nodes: NodeProto[], path: number[], states: Map<string, State>, io: { input: string; output: string }, seed: string, ctx: BackwardContext): string {
  const contributions = new Map<string, string[]>();
  const contribute = (t: string, g: string) => {
    const list = contributions.get(t);
    if (list) list.push(g);
    else contributions.set(t, [g]);
  };
  contribute(io.output, seed);
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
  const g = contributions.get(io.input);
  if (!g) throw new Error(`autodiff: no gradient reached '${io.input}'`);
  return ctx.e.sum(g);
}

/**
 * Which nodes lie on a differentiable path from the input to the output, and which of those the
 * rules cannot differentiate. Runs before any backward node is emitted.
 *
 * Every tensor gets a state: 'diff' (depends differentiably on the input), 'nondiff' (depends on it
 * only piecewise-constantly: comparisons, ArgMax, integer casts, MaxPool indices) or none (a
 * constant: initializers, Constant nodes and anything computed from shapes only, e.g. Shape →
 * Gather → Concat → Reshape). Nodes are on the path when a needed output is 'diff' and some input
 * is 'diff'; walking back from the output marks every 'diff' input of such a node as needed, so a
 * node that only feeds indices to a Gather is found too.
 */
import { UserError } from '../../errors';
import { attrInt } from '../attributes';
import { dataInputs, subgraphReads } from '../graph-utils';
import { DataType, opsetVersion, type ModelProto, type NodeProto } from '../proto';
import type { CheckInfo, GradientOptions, GradRule, State, UnsupportedOp } from './types';

/** Ops whose output depends on the input's shape only: the gradient stops there. */
const SHAPE_ONLY = new Set(['Shape', 'Size', 'ConstantOfShape', 'EyeLike', 'RandomNormalLike', 'RandomUniformLike']);

/**
 * Ops whose outputs are piecewise constant in their inputs (booleans, indices, and the rounding
 * ops: their true gradient is zero almost everywhere, which is what a gradient-masking defense
 * built on them presents; the evaluation's zero-gradient check reports it).
 */
const PIECEWISE_CONSTANT = new Set([
  'Round',
  'Floor',
  'Ceil',
  'Sign',
  'ArgMax',
  'ArgMin',
  'Equal',
  'Greater',
  'Less',
  'GreaterOrEqual',
  'LessOrEqual',
  'Not',
  'And',
  'Or',
  'Xor',
  'IsNaN',
  'IsInf',
  'NonZero',
  'BitShift',
  'BitwiseAnd',
  'BitwiseOr',
  'BitwiseXor',
  'BitwiseNot',
]);

const FLOAT_TYPES = new Set<number>([DataType.FLOAT, DataType.DOUBLE, DataType.FLOAT16, 16 /* BFLOAT16 */]);

export interface Analysis {
  input: string;
  output: string;
  /** The tensors differentiated with respect to (the input, and any `wrt` tensors). */
  sources: string[];
  states: Map<string, State>;
  /** Indices (in graph order) of the nodes on the differentiable path. */
  path: number[];
  /** Unsupported nodes with the reason (undefined: no rule for the op). */
  unsupported: { index: number; node: NodeProto; reason?: string }[];
}

export function nodeLabel(node: NodeProto, index: number): string {
  return node.name ? node.name : `${node.opType}_${index}`;
}

/** The input to differentiate with respect to and the output to differentiate. */
export function resolveIO(model: ModelProto, options: GradientOptions): { input: string; output: string } {
  const graph = model.graph;
  if (!graph?.node?.length) throw new UserError('The model has no graph to differentiate.');
  const inputs = dataInputs(graph);
  let input = options.input;
  if (input !== undefined) {
    if (!inputs.some((v) => v.name === input)) {
      throw new UserError(`The model has no input named '${input}'.`, `Its inputs: ${inputs.map((v) => v.name).join(', ')}.`);
    }
  } else {
    const floats = inputs.filter((v) => (v.type?.tensorType?.elemType ?? DataType.FLOAT) === DataType.FLOAT);
    if (floats.length !== 1) {
      throw new UserError(
        `Input gradients need one float input, but the model has ${floats.length} (${floats.map((v) => v.name).join(', ') || 'none'}).`,
        'Name the input to differentiate with respect to.',
      );
    }
    input = floats[0].name!;
  }
  return { input, output: resolveOutput(model, options.output) };
}

/**
 * Checks the tensors to differentiate with respect to: each must be a float initializer, a float
 * graph input or a node output, named once.
 */
export function resolveSources(model: ModelProto, wrt: readonly string[]): string[] {
  const graph = model.graph!;
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name ?? '', t]));
  const inputs = new Map((graph.input ?? []).map((v) => [v.name ?? '', v]));
  const produced = new Set((graph.node ?? []).flatMap((n) => n.output ?? []));
  const seen = new Set<string>();
  for (const name of wrt) {
    if (seen.has(name)) throw new UserError(`'${name}' is listed twice among the tensors to differentiate with respect to.`);
    seen.add(name);
    const init = inits.get(name);
    const type = init ? init.dataType : (inputs.get(name)?.type?.tensorType?.elemType ?? (produced.has(name) ? DataType.FLOAT : undefined));
    if (type === undefined) throw new UserError(`The model has no initializer, input or node output named '${name}' to differentiate with respect to.`);
    if (type !== DataType.FLOAT) throw new UserError(`'${name}' is not float32: gradients are taken with respect to float32 tensors only.`);
  }
  return [...wrt];
}

/** The output to differentiate: `output`, or the model's first output; it must be computed by a node. */
export function resolveOutput(model: ModelProto, requested?: string): string {
  const graph = model.graph;
  if (!graph?.node?.length) throw new UserError('The model has no graph to differentiate.');
  const output = requested ?? graph.output?.[0]?.name;
  if (!output || !(graph.node ?? []).some((n) => n.output?.includes(output))) {
    throw new UserError(
      `The model has no output tensor named '${output ?? ''}' computed by a node.`,
      `Its outputs: ${(graph.output ?? []).map((v) => v.name).join(', ')}.`,
    );
  }
  return output;
}

/**
 * `io.sources` (default: the input alone) are the tensors to differentiate with respect to: graph
 * inputs, initializers (weights, biases) or node outputs; each starts as 'diff'.
 */
export function analyze(
  model: ModelProto,
  io: { input: string; output: string; sources?: readonly string[] },
  rules: ReadonlyMap<string, GradRule>,
  makeInfo: (states: Map<string, State>) => CheckInfo,
): Analysis {
  const nodes = model.graph!.node ?? [];
  const sources = [...(io.sources ?? [io.input])];
  const states = new Map<string, State>(sources.map((s) => [s, 'diff']));
  const seeded = new Set(sources);
  for (const node of nodes) {
    // If/Loop/Scan bodies may read outer tensors without listing them as inputs.
    const ins = [...(node.input ?? []), ...subgraphReads(node)].map((i) => (i ? states.get(i) : undefined));
    if (!ins.some(Boolean) || SHAPE_ONLY.has(node.opType ?? '')) continue;
    const anyDiff = ins.includes('diff');
    const rule = rules.get(opKey(node));
    (node.output ?? []).forEach((o, k) => {
      if (!o || seeded.has(o)) return;
      const piecewise =
        PIECEWISE_CONSTANT.has(node.opType ?? '') ||
        (node.opType === 'Cast' && !FLOAT_TYPES.has(attrInt(node, 'to', DataType.FLOAT))) ||
        (rule?.nondiffOutputs?.includes(k) ?? false);
      states.set(o, anyDiff && !piecewise ? 'diff' : 'nondiff');
    });
  }
  if (states.get(io.output) !== 'diff' && io.sources) {
    throw new UserError(
      `Output '${io.output}' does not depend differentiably on ${sourcesLabel(sources)}: ${sources.length === 1 ? 'its' : 'their'} gradient would be zero everywhere.`,
      'Differentiate with respect to tensors the output depends on (weights and biases on the path to it).',
    );
  }
  if (states.get(io.output) !== 'diff') {
    throw new UserError(
      `Output '${io.output}' does not depend differentiably on input '${io.input}': its input gradient would be zero everywhere.`,
      'Choose the logits output; a model that ends in ArgMax or a comparison has no useful gradient (use --attack spsa,square).',
    );
  }

  const needed = new Set([io.output]);
  const path: number[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i];
    if (!(node.output ?? []).some((o) => o && needed.has(o) && states.get(o) === 'diff')) continue;
    const reads = [...(node.input ?? []), ...subgraphReads(node)];
    if (!reads.some((inp) => inp && states.get(inp) === 'diff')) continue;
    path.push(i);
    for (const inp of reads) if (inp && states.get(inp) === 'diff') needed.add(inp);
  }
  path.reverse();

  const info = makeInfo(states);
  const unsupported: Analysis['unsupported'] = [];
  for (const index of path) {
    const node = nodes[index];
    const rule = rules.get(opKey(node));
    const reason = rule ? ruleRefusal(node, rule, states, needed, info) : undefined;
    if (!rule || reason) unsupported.push({ index, node, reason });
  }
  return { input: io.input, output: io.output, sources, states, path, unsupported };
}

/** 'x', or 'w1', 'b1' and 'w2'. */
export function sourcesLabel(sources: readonly string[]): string {
  const q = sources.map((s) => `'${s}'`);
  return q.length <= 1 ? q.join('') : `${q.slice(0, -1).join(', ')} and ${q[q.length - 1]}`;
}

function opKey(node: NodeProto): string {
  return node.domain && node.domain !== 'ai.onnx' ? `${node.domain}::${node.opType}` : (node.opType ?? '');
}

function ruleRefusal(node: NodeProto, rule: GradRule, states: Map<string, State>, needed: Set<string>, info: CheckInfo): string | undefined {
  const inputs = node.input ?? [];
  for (let k = 0; k < inputs.length; k++) {
    const s = inputs[k] ? states.get(inputs[k]) : undefined;
    if (s === 'diff' && rule.diff !== 'all' && !rule.diff.includes(k))
      return `its input ${k} ('${inputs[k]}') depends on the model input, which this rule cannot differentiate`;
    if (s && rule.constant?.includes(k)) return `its input ${k} ('${inputs[k]}') must be constant but depends on the model input`;
  }
  const outputs = node.output ?? [];
  for (let k = 0; k < outputs.length; k++) {
    const o = outputs[k];
    if (o && needed.has(o) && states.get(o) === 'diff' && rule.outputs && !rule.outputs.includes(k))
      return `its output ${k} ('${o}') is used on the differentiable path`;
  }
  try {
    return rule.check?.(node, info);
  } catch (e) {
    return (e as Error).message;
  }
}

/** Groups the unsupported nodes by op type (in order of first appearance). */
export function groupUnsupported(a: Analysis): UnsupportedOp[] {
  const byOp = new Map<string, string[]>();
  for (const u of a.unsupported) {
    const op = u.node.opType ?? '?';
    if (!byOp.has(op)) byOp.set(op, []);
    byOp.get(op)!.push(nodeLabel(u.node, u.index));
  }
  return [...byOp].map(([op, nodes]) => ({ op, nodes }));
}

/** The one error naming every unsupported op and node, with the gradient-free way out. */
export function unsupportedError(a: Analysis, model: ModelProto): UserError {
  const lines = groupUnsupported(a).map(({ op, nodes }) => {
    const details = nodes.map((label) => {
      const u = a.unsupported.find((x) => nodeLabel(x.node, x.index) === label && x.node.opType === op)!;
      return u.reason ? `${label} (${u.reason})` : label;
    });
    return `  ${op}: ${details.join(', ')}`;
  });
  const count = a.unsupported.length;
  const inputOnly = a.sources.length === 1 && a.sources[0] === a.input;
  return new UserError(
    `Cannot build ${inputOnly ? 'input ' : ''}gradients (opset ${opsetVersion(model)}): ${count} node${count === 1 ? '' : 's'} on the differentiable path from ${sourcesLabel(a.sources)} to '${a.output}' ha${count === 1 ? 's' : 've'} no gradient rule:\n${lines.join('\n')}`,
    'Gradient-based attacks need input gradients; the gradient-free attacks work for every model: --attack spsa,square',
  );
}

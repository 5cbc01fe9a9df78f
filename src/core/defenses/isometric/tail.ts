/**
 * The tail after an insertion point T read as a dense stack, for the isometric head: a prefix of
 * parameter-free ops on the activation (Flatten, Reshape, Transpose, an activation…), kept as they
 * are, then dense layers (Gemm, or MatMul with an optional bias Add, each optionally followed by
 * Relu, Tanh or Sigmoid; Identity and Dropout are skipped as at inference) up to the logits.
 * Anything else stops the fit with a UserError naming the op, the node and where it sits.
 */
import { UserError } from '../../errors';
import type { NodeProto, ModelProto, TensorProto } from '../../onnx/proto';
import { tensorFloat32 } from '../../onnx/tensor-proto';
import type { DenseActivation, DenseLayer } from '../../train';

export interface DenseTail {
  /** The tail's input (the tensor T). */
  input: string;
  /** Parameter-free nodes before the first dense layer, as in the model, and the initializers they read. */
  prefix: NodeProto[];
  prefixInitializers: TensorProto[];
  /** The tensor the first dense layer reads (the prefix's output, or T). */
  denseInput: string;
  layers: DenseLayer[];
  /** Where each dense layer came from (node names), for messages and the stage params. */
  sources: string[];
}

/** Ops that only rearrange or transform the activation elementwise, allowed before the first dense layer. */
const PREFIX_OPS = new Set(['Flatten', 'Reshape', 'Transpose', 'Squeeze', 'Unsqueeze', 'Identity', 'Dropout', 'Relu', 'Tanh', 'Sigmoid', 'Constant']);
const ACTIVATIONS: Record<string, DenseActivation> = { Relu: 'relu', Tanh: 'tanh', Sigmoid: 'sigmoid' };
const FIX = 'Insert the isometric head at an insertion point after the last convolution or pooling (e.g. the Flatten output), where only dense layers follow.';

function attr(node: NodeProto, name: string, fallback: number): number {
  const a = node.attribute?.find((x) => x.name === name);
  if (!a) return fallback;
  return a.f !== undefined && a.f !== null && a.type === 1 ? Number(a.f) : Number(a.i ?? a.f ?? fallback);
}

/** Reads the dense stack of a tail model (cutModel(...).tail). */
export function denseTail(tail: ModelProto, layer: string): DenseTail {
  const graph = tail.graph!;
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name ?? '', t]));
  const nodes = graph.node ?? [];
  const output = graph.output?.[0]?.name ?? '';
  const where = (n: NodeProto, i: number) => `${n.opType} node '${n.name || n.output?.[0]}' (op ${i + 1} of ${nodes.length} after '${layer}')`;
  const weight = (name: string | undefined, n: NodeProto, i: number): TensorProto => {
    const t = name ? inits.get(name) : undefined;
    if (!t) throw new UserError(`The isometric head needs the weights of ${where(n, i)} as initializers; '${name}' is computed.`, FIX);
    return t;
  };
  const prefix: NodeProto[] = [];
  const layers: DenseLayer[] = [];
  const sources: string[] = [];
  let cur = graph.input?.find((v) => !inits.has(v.name ?? ''))?.name ?? layer;
  const input = cur;
  let denseInput = cur;
  // The last op of the stack: 'dense' (bias Add and activation may follow), 'bias' (activation may follow), 'act'.
  let last: 'dense' | 'bias' | 'act' | undefined;
  nodes.forEach((n, i) => {
    const op = n.opType ?? '';
    const ins = n.input ?? [];
    if (op === 'Constant' && layers.length === 0) {
      prefix.push(n);
      return;
    }
    const data = ins.filter((x) => x && !inits.has(x));
    if (data.length !== 1 || data[0] !== cur) {
      throw new UserError(
        `The isometric head needs a chain of layers after '${layer}'; ${where(n, i)} reads ${data.map((d) => `'${d}'`).join(', ') || 'no activation'}, not the previous layer's output.`,
        FIX,
      );
    }
    const next = n.output?.[0] ?? '';
    if (layers.length === 0 && PREFIX_OPS.has(op)) {
      prefix.push(n);
      cur = denseInput = next;
      return;
    }
    if (op === 'Identity' || op === 'Dropout') {
      // Identities at inference: the next layer reads the same tensor.
      cur = next;
      return;
    }
    if (op === 'Gemm') {
      if (attr(n, 'transA', 0) !== 0) throw new UserError(`The isometric head cannot read ${where(n, i)}: transA = 1.`, FIX);
      const alpha = attr(n, 'alpha', 1),
        beta = attr(n, 'beta', 1);
      const B = weight(ins[1], n, i);
      const [r, c] = (B.dims ?? []).map(Number);
      const transB = attr(n, 'transB', 0) !== 0;
      const [inputs, outputs] = transB ? [c, r] : [r, c];
      const bv = tensorFloat32(B);
      const w = new Float32Array(inputs * outputs);
      for (let a = 0; a < inputs; a++) for (let k = 0; k < outputs; k++) w[a * outputs + k] = alpha * (transB ? bv[k * inputs + a] : bv[a * outputs + k]);
      const b = new Float32Array(outputs);
      if (ins[2]) {
        const C = tensorFloat32(weight(ins[2], n, i));
        if (C.length !== outputs && C.length !== 1)
          throw new UserError(`The isometric head cannot read ${where(n, i)}: its bias has ${C.length} values for ${outputs} outputs.`, FIX);
        for (let k = 0; k < outputs; k++) b[k] = beta * (C.length === 1 ? C[0] : C[k]);
      }
      layers.push({ inputs, outputs, activation: 'linear', w, b });
      sources.push(n.name || next);
      last = 'bias';
    } else if (op === 'MatMul') {
      const W = weight(ins[1], n, i);
      const dims = (W.dims ?? []).map(Number);
      if (dims.length !== 2)
        throw new UserError(`The isometric head cannot read ${where(n, i)}: its weight has shape [${dims.join(', ')}], not [in, out].`, FIX);
      layers.push({ inputs: dims[0], outputs: dims[1], activation: 'linear', w: tensorFloat32(W), b: new Float32Array(dims[1]) });
      sources.push(n.name || next);
      last = 'dense';
    } else if (op === 'Add' && last === 'dense') {
      const bias = ins.find((x) => x !== cur);
      const bv = tensorFloat32(weight(bias, n, i));
      const l = layers[layers.length - 1];
      if (bv.length !== l.outputs)
        throw new UserError(`The isometric head cannot read ${where(n, i)}: a bias of ${bv.length} values for ${l.outputs} outputs.`, FIX);
      l.b = Float32Array.from(bv);
      last = 'bias';
    } else if (ACTIVATIONS[op] && (last === 'dense' || last === 'bias')) {
      layers[layers.length - 1].activation = ACTIVATIONS[op];
      last = 'act';
    } else {
      throw new UserError(
        `The isometric head retrains dense layers only (Gemm or MatMul, with Relu, Tanh or Sigmoid); the tail after '${layer}' has ${where(n, i)}.`,
        FIX,
      );
    }
    cur = next;
  });
  if (layers.length === 0) throw new UserError(`The isometric head found no dense layer after '${layer}'.`, FIX);
  if (cur !== output) throw new Error(`the tail after '${layer}' does not end in its output '${output}'`);
  const needed = new Set(prefix.flatMap((n) => n.input ?? []));
  return { input, prefix, prefixInitializers: [...inits.values()].filter((t) => needed.has(t.name ?? '')), denseInput, layers, sources };
}

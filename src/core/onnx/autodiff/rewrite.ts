/**
 * Exact forward rewrites, applied before differentiating, that make the backward graph cheaper.
 * Every tensor the rest of the graph reads keeps its name and value; ties still go to the first
 * maximum of a window, so the gradients equal those of the original graph (and of PyTorch).
 *
 * 1. Relu → MaxPool becomes MaxPool → Relu. Relu is monotone, so the max of the rectified window
 *    is the rectified max (padding never wins either way). Where the window max is positive both
 *    pick the same first maximum; where it is ≤ 0 Relu's gradient is 0 on both sides. The Relu and
 *    its backward mask now run on the pooled tensor, a quarter of the size for 2×2 pools.
 *
 * 2. Conv → MaxPool with tiling windows (kernel = stride k, no padding, every window complete)
 *    becomes one strided Conv, a Split and a Max. Window position p = (a, b) of every window,
 *        x_p[i, j] = conv(x)[k·i + a, k·j + b],
 *    is a Conv with stride k whose kernel is W shifted by (a, b) inside an (e+k-1)² kernel. The K
 *    shifted kernels are stacked as K·M output channels, Split gives x_0 … x_{K-1}, and
 *    Max(x_0, …, x_{K-1}) in row-major window order is the pool (its gradient rule gives ties to
 *    the first input, like MaxPool). The backward becomes a Max mask at the pooled size and one
 *    ConvTranspose, instead of MaxPool's Indices output and a full-size ScatterElements, the two
 *    slowest kernels of the demo model's backward on onnxruntime's CPU provider.
 *
 * Both apply only where the intermediate tensor has that one reader and is not a graph output.
 */
import type { Dim } from '../../../protocol/model';
import { attrInt, attrInts } from '../attributes';
import { attribute } from '../builder';
import { freshNamer, subgraphReads, tensorNames } from '../graph-utils';
import { DataType, opsetVersion, type ModelProto, type NodeProto, type TensorProto } from '../proto';
import { floatTensor, tensorFloat32 } from '../tensor-proto';
import { windowOf } from './geometry';

/**
 * Rewrite 2 pays with a larger kernel, twice (the forward Conv and its ConvTranspose): it applies
 * while the extra multiply-adds per conv output, C·((e+k-1)² − e²), stay under this bound.
 * Measured on the demo model (onnxruntime CPU, batch 100): the Indices output and the scatter cost
 * about 4 ns per element, what about 200 multiply-adds cost in its convolutions. The first layer
 * (C = 1, 5×5: 11 extra) then spends about 3 ms per step on its pool instead of 7.4; fusing
 * the second too (C = 32: 352 extra) made the whole step slower (19–20 ms instead of 17–18).
 */
export const FUSE_MAX_EXTRA_MACS = 100;

/**
 * The model with the rewrites applied (a copy; the input model is not changed) and the shapes of
 * its new tensors. Tensors in `keep` (those differentiated with respect to: weights, biases,
 * intermediate tensors) are treated like graph outputs: no rewrite removes or replaces them.
 */
export function rewriteForGradient(
  model: ModelProto,
  shapes: Map<string, Dim[]>,
  keep: ReadonlySet<string> = new Set(),
): { model: ModelProto; shapes: Map<string, Dim[]> } {
  const graph = model.graph!;
  const nodes = [...(graph.node ?? [])];
  const fresh = freshNamer(tensorNames(graph));
  const outputs = new Set([...(graph.output ?? []).map((o) => o.name ?? ''), ...keep]);
  const added = new Map(shapes);
  sinkReluBelowMaxPool(nodes, outputs, added, fresh);
  const initializers = new Map((graph.initializer ?? []).map((t) => [t.name ?? '', t]));
  fuseConvIntoMaxPool(nodes, new Set((graph.input ?? []).map((v) => v.name ?? '')), outputs, added, initializers, fresh, opsetVersion(model));
  if (added.size === shapes.size) return { model, shapes };
  const produced = new Set(nodes.flatMap((n) => n.output ?? []));
  const valueInfo = (graph.valueInfo ?? []).filter((v) => produced.has(v.name ?? '')); // drops the tensors the rewrites removed
  return { model: { ...model, graph: { ...graph, node: nodes, initializer: [...initializers.values()], valueInfo } }, shapes: added };
}

/** How many nodes read each tensor (subgraph reads included). */
function readerCounts(nodes: NodeProto[]): Map<string, number> {
  const readers = new Map<string, number>();
  for (const node of nodes) for (const t of [...(node.input ?? []), ...subgraphReads(node)]) if (t) readers.set(t, (readers.get(t) ?? 0) + 1);
  return readers;
}

const product = (v: number[]) => v.reduce((a, b) => a * b, 1);
const numeric = (d: Dim[] | undefined): d is number[] => !!d && d.every((x) => typeof x === 'number');

/** Reorders nodes in place and records the shapes of the tensors it adds (the pooled values before the Relu). */
function sinkReluBelowMaxPool(nodes: NodeProto[], graphOutputs: Set<string>, shapes: Map<string, Dim[]>, freshName: (base: string) => string): void {
  const readers = readerCounts(nodes);
  for (let i = 0; i + 1 < nodes.length; i++) {
    const relu = nodes[i];
    if (relu.opType !== 'Relu' || (relu.domain ?? '') !== '') continue;
    const rectified = relu.output![0];
    if (graphOutputs.has(rectified) || readers.get(rectified) !== 1) continue;
    const p = nodes.findIndex((n, k) => k > i && n.opType === 'MaxPool' && (n.domain ?? '') === '' && n.input?.[0] === rectified);
    const pool = nodes[p];
    // With an Indices output the pool is read for its positions, which may not be remapped.
    if (!pool || (pool.output?.length ?? 1) > 1 || !shapes.has(pool.output![0])) continue;
    const pooled = pool.output![0];
    const prePooled = freshName(`${pooled}_before_relu`);
    shapes.set(prePooled, shapes.get(pooled)!);
    // The MaxPool now reads the Relu's input, and the Relu (moved right after it) writes the pool's old output.
    const newPool: NodeProto = { ...pool, input: [relu.input![0], ...pool.input!.slice(1)], output: [prePooled] };
    const newRelu: NodeProto = { ...relu, input: [prePooled], output: [pooled] };
    nodes.splice(p, 1, newPool, newRelu);
    nodes.splice(i, 1);
    i--; // the node after the Relu now sits at i
  }
}

/** Rewrite 2, in place: nodes, shapes and initializers gain the fused Conv, its Split and the Max. */
function fuseConvIntoMaxPool(
  nodes: NodeProto[],
  graphInputs: Set<string>,
  graphOutputs: Set<string>,
  shapes: Map<string, Dim[]>,
  initializers: Map<string, TensorProto>,
  fresh: (base: string) => string,
  opset: number,
): void {
  const readers = readerCounts(nodes);
  for (let c = 0; c < nodes.length; c++) {
    const conv = nodes[c];
    if (conv.opType !== 'Conv' || (conv.domain ?? '') !== '' || attrInt(conv, 'group', 1) !== 1) continue;
    const [x, w, bias] = conv.input!;
    const convOut = conv.output![0];
    if (graphOutputs.has(convOut) || graphOutputs.has(w) || (bias && graphOutputs.has(bias)) || readers.get(convOut) !== 1) continue;
    const p = nodes.findIndex((n, k) => k > c && n.opType === 'MaxPool' && (n.domain ?? '') === '' && n.input?.[0] === convOut);
    const pool = nodes[p];
    if (!pool || (pool.output?.length ?? 1) > 1) continue;
    const weight = initializers.get(w),
      biasInit = bias ? initializers.get(bias) : undefined;
    if (weight?.dataType !== DataType.FLOAT || (bias && biasInit?.dataType !== DataType.FLOAT)) continue;
    const xDims = shapes.get(x),
      convDims = shapes.get(convOut),
      poolDims = shapes.get(pool.output![0]);
    const wDims = (weight.dims ?? []).map(Number);
    if (!xDims || !numeric(xDims.slice(1)) || !numeric(convDims?.slice(1)) || !numeric(poolDims?.slice(1))) continue;
    const [m, ch, ...kernel] = wDims;
    const inSize = xDims.slice(2) as number[],
      convSize = convDims!.slice(2) as number[],
      poolSize = poolDims!.slice(2) as number[];
    const cw = windowOf(conv, kernel, inSize, convSize);
    if (!cw.strides.every((v) => v === 1) || !cw.dilations.every((v) => v === 1)) continue;
    const poolKernel = attrInts(pool, 'kernel_shape');
    if (!poolKernel || poolKernel.length !== kernel.length) continue;
    const pw = windowOf(pool, poolKernel, convSize, poolSize);
    const tiling = poolKernel.every(
      (k, i) => pw.strides[i] === k && pw.dilations[i] === 1 && pw.padsBegin[i] === 0 && pw.padsEnd[i] === 0 && poolSize[i] * k <= convSize[i],
    );
    const wide = kernel.map((e, i) => e + poolKernel[i] - 1);
    if (!tiling || ch * (product(wide) - product(kernel)) > FUSE_MAX_EXTRA_MACS) continue;

    // Stacked shifted kernels: block p holds W at offset (a, b, …) = window position p, row-major.
    const positions = product(poolKernel);
    const source = tensorFloat32(weight);
    const taps = product(kernel),
      wideTaps = product(wide);
    const stacked = new Float32Array(positions * m * ch * wideTaps);
    for (let pos = 0; pos < positions; pos++) {
      const offset = unflatten(pos, poolKernel);
      for (let t = 0; t < taps; t++) {
        const shifted = flatten(
          unflatten(t, kernel).map((j, i) => j + offset[i]),
          wide,
        );
        for (let f = 0; f < m * ch; f++) stacked[(pos * m * ch + f) * wideTaps + shifted] = source[f * taps + t];
      }
    }
    const wName = fresh(`${w}_window_shifts`);
    initializers.set(wName, floatTensor(wName, [positions * m, ch, ...wide], stacked));
    const inputs = [x, wName];
    if (biasInit) {
      const b = tensorFloat32(biasInit);
      const bName = fresh(`${bias}_window_shifts`);
      initializers.set(
        bName,
        floatTensor(
          bName,
          [positions * m],
          Float32Array.from({ length: positions * m }, (_, i) => b[i % m]),
        ),
      );
      inputs.push(bName);
    }
    // End pads: just enough for the last complete window. Then the strided Conv has exactly the
    // pool's output size: floor-mode leftovers of the conv output are never computed.
    const padsEnd = wide.map((e, i) => Math.max(0, poolKernel[i] * (poolSize[i] - 1) + e - inSize[i] - cw.padsBegin[i]));
    const batch = xDims[0];
    const stackedOut = fresh(`${convOut}_window_positions`);
    const fused: NodeProto = {
      opType: 'Conv',
      name: conv.name ? `${conv.name}_window_shifts` : undefined,
      input: inputs,
      output: [stackedOut],
      attribute: [
        attribute('kernel_shape', wide),
        attribute('strides', poolKernel),
        attribute('pads', [...cw.padsBegin, ...padsEnd]),
        attribute(
          'dilations',
          wide.map(() => 1),
        ),
        attribute('group', 1),
      ],
    };
    shapes.set(stackedOut, [batch, positions * m, ...poolSize]);
    const parts = Array.from({ length: positions }, (_, pos) => fresh(`${convOut}_window_position_${pos}`));
    for (const part of parts) shapes.set(part, [batch, m, ...poolSize]);
    const split: NodeProto = {
      opType: 'Split',
      input: [stackedOut],
      output: parts,
      attribute: [attribute('axis', 1), ...(opset >= 18 ? [attribute('num_outputs', positions)] : [])],
    };
    nodes[p] = { opType: 'Max', name: pool.name, input: parts, output: [pool.output![0]] };
    nodes.splice(c, 1, fused, split);
    c++;
    // The original weights are dropped when nothing else reads them (onnxruntime warns about unused initializers).
    for (const t of [w, bias]) if (t && readers.get(t) === 1 && !graphInputs.has(t)) initializers.delete(t);
  }
}

/** Row-major index ↔ coordinates over `dims`. */
function unflatten(flat: number, dims: number[]): number[] {
  const out = new Array<number>(dims.length);
  for (let i = dims.length - 1; i >= 0; i--) {
    out[i] = flat % dims[i];
    flat = Math.floor(flat / dims[i]);
  }
  return out;
}

function flatten(coords: number[], dims: number[]): number {
  return coords.reduce((acc, c, i) => acc * dims[i] + c, 0);
}

/**
 * Cutting a model at an insertion point T into two standalone models: the head (inputs → T) and
 * the tail (T → outputs). Running head then tail gives the full model's outputs.
 */
import { UserError } from '../errors';
import type { Dim } from '../../protocol/model';
import { dataInputs, initializerNames, producerMap, subgraphReads } from './graph-utils';
import { DataType, type ModelProto, type NodeProto, type ValueInfoProto } from './proto';

export function tensorValueInfo(name: string, dims: Dim[] | undefined, elemType = DataType.FLOAT): ValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType, shape: dims ? { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } : undefined } },
  };
}

/**
 * The smallest standalone model computing `outputs` from `inputs` (plus the initializers it
 * needs). Fails, naming the node and tensor, when some node needs a tensor from outside.
 */
export function extractModel(model: ModelProto, inputs: string[], outputs: string[], shapes: Map<string, Dim[]>, label: string): ModelProto {
  const graph = model.graph!;
  const producers = producerMap(graph);
  const inits = initializerNames(graph);
  const nodes = graph.node ?? [];
  const inputSet = new Set(inputs);
  const constantTensors = new Set<string>(inits);
  // Tensors that depend on the piece's inputs or on constants only: anything else the piece needs
  // crosses the cut on another path (nodes are in topological order).
  const downstream = new Set([...inputs, ...inits]);
  for (const node of nodes) {
    const reads = [...(node.input ?? []), ...subgraphReads(node)].filter(Boolean);
    const dependsOnInput = reads.some((i) => inputSet.has(i) || (downstream.has(i) && !constantTensors.has(i)));
    const constantOnly = reads.every((i) => inits.has(i) || (downstream.has(i) && constantTensors.has(i)));
    if (constantOnly) for (const o of node.output ?? []) constantTensors.add(o);
    if (dependsOnInput || constantOnly) for (const o of node.output ?? []) downstream.add(o);
  }
  const keep = new Set<number>();
  const stack = outputs.filter((o) => !inputSet.has(o));
  const visited = new Set<string>(stack);
  while (stack.length) {
    const t = stack.pop()!;
    const p = producers.get(t);
    if (p === undefined || keep.has(p)) continue; // an initializer, or done
    keep.add(p);
    for (const i of [...(nodes[p].input ?? []), ...subgraphReads(nodes[p])]) {
      if (!i || inputSet.has(i) || visited.has(i)) continue;
      if (!downstream.has(i)) {
        throw new UserError(
          `Cannot build the ${label}: node '${nodes[p].name || nodes[p].opType}' reads tensor '${i}', which does not come from [${inputs.join(', ')}].`,
          'The cut tensor must dominate the output: choose a layer marked as an insertion point (not inside a residual block).',
        );
      }
      visited.add(i);
      stack.push(i);
    }
  }
  const kept: NodeProto[] = nodes.filter((_, i) => keep.has(i));
  const used = new Set(kept.flatMap((n) => [...(n.input ?? []), ...subgraphReads(n)]));
  const originalInputs = new Map(dataInputs(graph).map((v) => [v.name ?? '', v]));
  const originalOutputs = new Map((graph.output ?? []).map((v) => [v.name ?? '', v]));
  // A tensor that is both an input and an output of the piece (an empty head or tail) passes
  // through an Identity: ONNX graphs may not name one tensor as both input and output.
  const graphOutputs = outputs.map((o) => {
    if (!inputSet.has(o)) return o;
    const renamed = `${o}__passthrough`;
    kept.push({ opType: 'Identity', name: `${label}_identity`, input: [o], output: [renamed] });
    return renamed;
  });
  return {
    ...model,
    graph: {
      name: `${graph.name ?? 'graph'}_${label}`,
      node: kept,
      initializer: (graph.initializer ?? []).filter((t) => used.has(t.name ?? '')),
      input: inputs.map((i) => originalInputs.get(i) ?? tensorValueInfo(i, shapes.get(i))),
      output: outputs.map((o, k) => originalOutputs.get(o) ?? tensorValueInfo(graphOutputs[k], shapes.get(o))).map((v, k) => ({ ...v, name: graphOutputs[k] })),
      valueInfo: (graph.valueInfo ?? []).filter((v) => kept.some((n) => n.output?.includes(v.name ?? ''))),
    },
  };
}

export interface CutModels {
  tensor: string;
  head: ModelProto;
  tail: ModelProto;
}

export function cutModel(model: ModelProto, tensor: string, shapes: Map<string, Dim[]>): CutModels {
  const graph = model.graph!;
  const inputs = dataInputs(graph).map((v) => v.name ?? '');
  const outputs = (graph.output ?? []).map((v) => v.name ?? '');
  const known = new Set([...inputs, ...(graph.node ?? []).flatMap((n) => n.output ?? [])]);
  if (!known.has(tensor)) {
    throw new UserError(
      `The model has no tensor named '${tensor}'.`,
      'Run `robustness-lab inspect <model>` to list layers, their output tensors and which are insertion points.',
    );
  }
  return {
    tensor,
    head: extractModel(model, inputs, [tensor], shapes, 'head'),
    tail: extractModel(model, [tensor], outputs, shapes, 'tail'),
  };
}

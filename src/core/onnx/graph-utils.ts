/** Small queries on an ONNX graph shared by the inspector, the cutter and autodiff. */
import type { GraphProto, NodeProto, ValueInfoProto } from './proto';

export function initializerNames(graph: GraphProto): Set<string> {
  return new Set((graph.initializer ?? []).map((t) => t.name ?? ''));
}

/** Graph inputs that are real inputs (older exporters also list initializers as inputs). */
export function dataInputs(graph: GraphProto): ValueInfoProto[] {
  const inits = initializerNames(graph);
  return (graph.input ?? []).filter((v) => !inits.has(v.name ?? ''));
}

/** For each tensor, the indices of the nodes that read it. */
export function consumerMap(graph: GraphProto): Map<string, number[]> {
  const consumers = new Map<string, number[]>();
  (graph.node ?? []).forEach((node, i) => {
    for (const input of node.input ?? []) {
      if (!input) continue;
      let list = consumers.get(input);
      if (!list) consumers.set(input, (list = []));
      if (!list.includes(i)) list.push(i);
    }
  });
  return consumers;
}

/** For each tensor, the index of the node that writes it. */
export function producerMap(graph: GraphProto): Map<string, number> {
  const producers = new Map<string, number>();
  (graph.node ?? []).forEach((node, i) => {
    for (const out of node.output ?? []) if (out) producers.set(out, i);
  });
  return producers;
}

/** Tensors of the enclosing graph that a node's subgraphs (If/Loop/Scan bodies) read without listing them as inputs. */
export function subgraphReads(node: NodeProto): string[] {
  const reads: string[] = [];
  for (const attr of node.attribute ?? []) {
    for (const g of [attr.g, ...(attr.graphs ?? [])]) {
      if (!g) continue;
      const local = new Set([
        ...(g.input ?? []).map((v) => v.name),
        ...(g.initializer ?? []).map((t) => t.name),
        ...(g.node ?? []).flatMap((n) => n.output ?? []),
      ]);
      for (const n of g.node ?? []) for (const i of [...(n.input ?? []), ...subgraphReads(n)]) if (i && !local.has(i)) reads.push(i);
    }
  }
  return reads;
}

/** A namer for new tensors: base, base_1, base_2, … whichever is not in `names` yet (it is added). */
export function freshNamer(names: Set<string>): (base: string) => string {
  return (base) => {
    let name = base;
    for (let i = 1; names.has(name); i++) name = `${base}_${i}`;
    names.add(name);
    return name;
  };
}

/** A name prefix (`base/`, `base1/`, …) that no name in `names` starts with. */
export function unusedPrefix(names: Set<string>, base: string): string {
  for (let i = 0; ; i++) {
    const p = i === 0 ? `${base}/` : `${base}${i}/`;
    if (![...names].some((n) => n.startsWith(p))) return p;
  }
}

/** Every tensor and node name a graph uses. */
export function tensorNames(graph: GraphProto): Set<string> {
  const names = new Set<string>();
  for (const v of [...(graph.input ?? []), ...(graph.output ?? []), ...(graph.valueInfo ?? [])]) names.add(v.name ?? '');
  for (const t of graph.initializer ?? []) names.add(t.name ?? '');
  for (const n of graph.node ?? []) {
    for (const o of n.output ?? []) names.add(o);
    if (n.name) names.add(n.name);
  }
  return names;
}

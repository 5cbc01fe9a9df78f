/**
 * Insertion points. A tensor T is one when every path from the model's data inputs to its outputs
 * passes through T (T dominates the outputs), so that the model splits into head (inputs → T) and
 * tail (T → outputs) with T the only thing crossing. Inside a residual block the skip path avoids
 * every tensor of the block, so only the block's output (after the Add) qualifies.
 */
import type { GraphProto } from '../onnx/proto';
import { consumerMap, dataInputs } from '../onnx/graph-utils';

/** Valid insertion tensors in topological order, graph inputs first. */
export function insertionPoints(graph: GraphProto): string[] {
  const nodes = graph.node ?? [];
  const consumers = consumerMap(graph);
  const sources = dataInputs(graph).map((v) => v.name ?? '');
  const outputs = (graph.output ?? []).map((v) => v.name ?? '');

  // Tensors reachable from the inputs while never stepping on `blocked`.
  const reach = (blocked: string | undefined): Set<string> => {
    const seen = new Set<string>();
    const firedNodes = new Set<number>();
    const stack = sources.filter((s) => s !== blocked);
    for (const s of stack) seen.add(s);
    while (stack.length) {
      const t = stack.pop()!;
      for (const ni of consumers.get(t) ?? []) {
        if (firedNodes.has(ni)) continue;
        firedNodes.add(ni);
        for (const out of nodes[ni].output ?? []) {
          if (out && out !== blocked && !seen.has(out)) {
            seen.add(out);
            stack.push(out);
          }
        }
      }
    }
    return seen;
  };

  const reachable = reach(undefined);
  const candidates = [...sources, ...nodes.flatMap((n) => n.output ?? [])].filter((t) => t && reachable.has(t));
  const outputsReached = outputs.filter((o) => reachable.has(o));
  return candidates.filter((t) => {
    const without = reach(t);
    return outputsReached.every((o) => !without.has(o));
  });
}

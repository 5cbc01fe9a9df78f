/**
 * What the inspector shows of a model, as plain data that crosses the worker boundary: inputs,
 * outputs, layers with their shapes and parameter counts, and the insertion points. The engine's
 * ModelGraph (src/core/model/graph.ts) is this plus the shapes of every tensor.
 */

/** A dimension: a size, or the name of a symbolic one ("N", "batch"). */
export type Dim = number | string;

export interface GraphIO {
  name: string;
  elemType: string;
  shape: Dim[];
}

export interface Layer {
  index: number;
  /** The node's name, or `<op>_<index>` when the model leaves it empty. */
  name: string;
  op: string;
  inputs: string[];
  outputs: string[];
  /** Shape of the first output (the layer's activation); undefined if unknown. */
  shape?: Dim[];
  /** Elements of the initializers this layer is the first to use (shared weights count once). */
  params: number;
  /** True when the layer's first output dominates every model output: a defense can go right after it. */
  insertionPoint: boolean;
}

export interface ModelSummary {
  path: string;
  sha256: string;
  opset: number;
  producer: string;
  inputs: GraphIO[];
  outputs: GraphIO[];
  layers: Layer[];
  /** Every tensor that is a valid insertion point (graph inputs included), in topological order. */
  insertionTensors: string[];
  totalParams: number;
}

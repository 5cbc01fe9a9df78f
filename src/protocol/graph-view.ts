/**
 * The model graph as the graph editor and the Models tree show it, derived from the inspector's
 * ModelSummary: Constant nodes hidden, one edge per data dependency (skip connections marked),
 * and layers grouped by module path (ONNX names such as /features/features.5/MaxPool, Keras names
 * such as conv1/Conv). Pure functions on protocol types, so the extension, the webview and the
 * tests share them; plus the messages between the graph editor and its webview, with guards.
 */
import type { Dim, Layer, ModelSummary } from './model';

/** A node's attributes, each value already formatted for display (see src/worker/node-attributes.ts). */
export type NodeAttributes = Record<string, string>;

export interface GraphViewNode {
  /** `input:<tensor>`, `output:<tensor>` or `node:<index>`. */
  id: string;
  kind: 'input' | 'output' | 'layer';
  /** The node's name (layers) or the tensor's name (inputs and outputs). */
  name: string;
  /** Op type; `Input` / `Output` for the model's inputs and outputs. */
  op: string;
  /** Module path, `/`-joined (`features/features.5`); empty when the name has none. */
  module: string;
  /** Shape of the node's first output (for inputs and outputs: the tensor's). */
  shape?: Dim[];
  params: number;
  /** A defense can go right after this node: `tensor` dominates every model output. */
  insertionPoint: boolean;
  /** The tensor a defense goes after (layers: the first output; inputs: the input). */
  tensor?: string;
  inputs: string[];
  outputs: string[];
  /** Layers only, when the worker could read them. */
  attributes?: NodeAttributes;
  /** The layer's index in the model's node list (layers only). */
  index?: number;
}

export interface GraphViewEdge {
  from: string;
  to: string;
  /** The tensor flowing along the edge. */
  tensor: string;
  /**
   * True when another path also leads from `from` to `to`: the edge bypasses part of the graph
   * (the identity branch of a residual block). These are why no tensor inside a block is an
   * insertion point.
   */
  skip: boolean;
}

export interface GraphView {
  /** The model's path, as the worker read it. */
  path: string;
  opset: number;
  producer: string;
  totalParams: number;
  nodes: GraphViewNode[];
  edges: GraphViewEdge[];
  /** Constant nodes left out (with their edges). */
  hiddenConstants: number;
}

/** Graphs with more visible nodes than this are not drawn: a layout of them takes too long to be useful in an editor. */
export const MAX_GRAPH_NODES = 3000;

export const isConstantLayer = (layer: Layer): boolean => layer.op === 'Constant';

/** The layers the Models tree lists: no Constant nodes, and only insertion points when its filter is on. */
export function listedLayers(layers: readonly Layer[], insertionPointsOnly: boolean): Layer[] {
  return layers.filter((l) => !isConstantLayer(l) && (!insertionPointsOnly || l.insertionPoint));
}

/** Path segments of a node name (`/features/features.5/MaxPool` → features, features.5, MaxPool). */
export function nameSegments(name: string): string[] {
  const segments = name.split('/').filter((s) => s !== '');
  return segments.length ? segments : [name];
}

/**
 * The view of a model: inputs, visible layers and outputs as nodes, an edge for every data
 * dependency between them. Throws when the graph has more than MAX_GRAPH_NODES visible nodes.
 */
export function buildGraphView(summary: ModelSummary, attributes?: readonly (NodeAttributes | undefined)[]): GraphView {
  const insertable = new Set(summary.insertionTensors);
  const visible = summary.layers.filter((l) => !isConstantLayer(l));
  const nodeCount = summary.inputs.length + visible.length + summary.outputs.length;
  if (nodeCount > MAX_GRAPH_NODES) {
    throw new Error(
      `The model has ${nodeCount.toLocaleString('en-US')} nodes (Constants left out); the graph editor draws at most ${MAX_GRAPH_NODES.toLocaleString('en-US')}. The Models view lists its layers.`,
    );
  }
  const modules = modulePaths(visible.map((l) => l.name));

  const nodes: GraphViewNode[] = [];
  /** Tensor → the node that produces it (graph inputs included; Constants map to undefined: hidden). */
  const producer = new Map<string, string | undefined>();
  for (const io of summary.inputs) {
    const id = `input:${io.name}`;
    producer.set(io.name, id);
    const insertionPoint = insertable.has(io.name);
    nodes.push({
      id,
      kind: 'input',
      name: io.name,
      op: 'Input',
      module: '',
      shape: io.shape,
      params: 0,
      insertionPoint,
      tensor: insertionPoint ? io.name : undefined,
      inputs: [],
      outputs: [io.name],
    });
  }
  for (const layer of summary.layers) {
    const id = isConstantLayer(layer) ? undefined : `node:${layer.index}`;
    for (const out of layer.outputs) if (out) producer.set(out, id);
    if (!id) continue;
    const attrs = attributes?.[layer.index];
    nodes.push({
      id,
      kind: 'layer',
      name: layer.name,
      op: layer.op,
      module: moduleOf(layer.name, modules).join('/'),
      shape: layer.shape,
      params: layer.params,
      insertionPoint: layer.insertionPoint,
      tensor: layer.insertionPoint ? layer.outputs[0] : undefined,
      inputs: layer.inputs,
      outputs: layer.outputs,
      ...(attrs && Object.keys(attrs).length ? { attributes: attrs } : {}),
      index: layer.index,
    });
  }

  const edges: GraphViewEdge[] = [];
  const seen = new Set<string>();
  const addEdge = (tensor: string, to: string) => {
    const from = producer.get(tensor);
    // No producer: an initializer (a weight), or a tensor of a hidden Constant.
    if (!from || from === to) return;
    const key = `${from}\u0000${to}\u0000${tensor}`;
    if (seen.has(key)) return;
    seen.add(key);
    edges.push({ from, to, tensor, skip: false });
  };
  for (const layer of visible) for (const input of layer.inputs) addEdge(input, `node:${layer.index}`);
  for (const io of summary.outputs) {
    const id = `output:${io.name}`;
    nodes.push({
      id,
      kind: 'output',
      name: io.name,
      op: 'Output',
      module: '',
      shape: io.shape,
      params: 0,
      insertionPoint: false,
      inputs: [io.name],
      outputs: [],
    });
    addEdge(io.name, id);
  }
  markSkipEdges(edges);

  return {
    path: summary.path,
    opset: summary.opset,
    producer: summary.producer,
    totalParams: summary.totalParams,
    nodes,
    edges,
    hiddenConstants: summary.layers.length - visible.length,
  };
}

/** Marks every edge u → v for which v can also be reached from u along other edges. */
function markSkipEdges(edges: GraphViewEdge[]): void {
  const out = new Map<string, GraphViewEdge[]>();
  for (const e of edges) {
    const list = out.get(e.from);
    if (list) list.push(e);
    else out.set(e.from, [e]);
  }
  for (const edge of edges) {
    // Depth-first from u, never taking the edge under test, until v shows up.
    const seen = new Set<string>([edge.from]);
    const stack = [edge.from];
    while (stack.length && !edge.skip) {
      for (const next of out.get(stack.pop()!) ?? []) {
        if (next === edge || seen.has(next.to)) continue;
        if (next.to === edge.to && next.from !== edge.from) edge.skip = true;
        else if (next.to === edge.to) continue; // A second tensor along the same pair is not a bypass.
        seen.add(next.to);
        stack.push(next.to);
      }
    }
  }
}

/** Every module path (joined with `/`) that some name lies inside, its prefixes included. */
function modulePaths(names: readonly string[]): Set<string> {
  const paths = new Set<string>();
  for (const name of names) {
    const segments = nameSegments(name);
    for (let i = 1; i < segments.length; i++) paths.add(segments.slice(0, i).join('/'));
  }
  return paths;
}

/**
 * The module a node belongs to. A name that is itself a module path belongs inside that module: a
 * Keras layer `conv1` converted to `conv1/Conv` and `conv1` (its activation) forms one group.
 */
function moduleOf(name: string, modules: ReadonlySet<string>): string[] {
  const segments = nameSegments(name);
  return modules.has(segments.join('/')) ? segments : segments.slice(0, -1);
}

export interface LayerGroup<T> {
  kind: 'group';
  /** What the tree shows: the module's name, or several nested names joined when each holds only the next (`layer1/layer1.0`). */
  label: string;
  /** The full module path, unique within the model. */
  path: string;
  children: LayerTreeEntry<T>[];
  /** Layers inside, at any depth. */
  count: number;
}
export interface LayerLeaf<T> {
  kind: 'leaf';
  /** The name relative to the enclosing group (`features.0/Conv` inside `features`). */
  label: string;
  item: T;
}
export type LayerTreeEntry<T> = LayerGroup<T> | LayerLeaf<T>;

interface Trie<T> {
  segment: string;
  path: string[];
  first: number;
  items: { item: T; order: number; segments: string[] }[];
  children: Map<string, Trie<T>>;
}

/**
 * Groups layers by module path, in model order (a group sits where its first layer is). A module
 * holding a single layer is not a group: the layer shows with the rest of its path
 * (`features.0/Conv`), so a sequential model is not a ladder of one-layer folders.
 */
export function groupByModule<T>(items: readonly T[], nameOf: (item: T) => string): LayerTreeEntry<T>[] {
  const modules = modulePaths(items.map(nameOf));
  const root: Trie<T> = { segment: '', path: [], first: 0, items: [], children: new Map() };
  items.forEach((item, order) => {
    const segments = nameSegments(nameOf(item));
    let node = root;
    for (const segment of moduleOf(nameOf(item), modules)) {
      let child = node.children.get(segment);
      if (!child) node.children.set(segment, (child = { segment, path: [...node.path, segment], first: order, items: [], children: new Map() }));
      node = child;
    }
    node.items.push({ item, order, segments });
  });
  return entriesOf(root, []);
}

function countOf<T>(node: Trie<T>): number {
  let n = node.items.length;
  for (const c of node.children.values()) n += countOf(c);
  return n;
}

function onlyItem<T>(node: Trie<T>): { item: T; segments: string[] } {
  return node.items[0] ?? onlyItem([...node.children.values()][0]);
}

function entriesOf<T>(node: Trie<T>, groupPath: string[]): LayerTreeEntry<T>[] {
  const relative = (segments: string[]) => {
    const rest = segments.slice(groupPath.length).join('/');
    return rest || segments[segments.length - 1];
  };
  const ordered: { order: number; entry: LayerTreeEntry<T> }[] = node.items.map(({ item, order, segments }) => ({
    order,
    entry: { kind: 'leaf', label: relative(segments), item },
  }));
  for (const child of node.children.values()) {
    const count = countOf(child);
    if (count === 1) {
      const { item, segments } = onlyItem(child);
      ordered.push({ order: child.first, entry: { kind: 'leaf', label: relative(segments), item } });
      continue;
    }
    // Fold a chain of modules that each hold nothing but the next one into one group.
    let inner = child;
    while (inner.items.length === 0 && inner.children.size === 1) inner = [...inner.children.values()][0];
    ordered.push({
      order: child.first,
      entry: { kind: 'group', label: inner.path.slice(groupPath.length).join('/'), path: inner.path.join('/'), children: entriesOf(inner, inner.path), count },
    });
  }
  return ordered.sort((a, b) => a.order - b.order).map((o) => o.entry);
}

// ---- Messages between the graph editor (extension host) and its webview ----

export type ToGraphWebview =
  /** Draw this graph. `canInsert`: the workspace is trusted, so "Insert defense here" may run. */
  | { type: 'graph'; title: string; view: GraphView; canInsert: boolean }
  /** The model could not be shown (unreadable, not a model, too large): say why in the editor. */
  | { type: 'error'; title: string; message: string }
  /** Trust was granted (or not) while the editor was open. */
  | { type: 'trust'; canInsert: boolean };

export type FromGraphWebview =
  | { type: 'ready' }
  /** Run the insert-defense flow at the insertion point whose node has this id. */
  | { type: 'insertDefense'; node: string }
  /** An error inside the webview, for the output channel. */
  | { type: 'error'; message: string };

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

export function isFromGraphWebview(x: unknown): x is FromGraphWebview {
  if (!isObject(x)) return false;
  switch (x.type) {
    case 'ready':
      return true;
    case 'insertDefense':
      return typeof x.node === 'string' && x.node.length < 100_000;
    case 'error':
      return typeof x.message === 'string' && x.message.length < 10_000;
    default:
      return false;
  }
}

export function isToGraphWebview(x: unknown): x is ToGraphWebview {
  if (!isObject(x)) return false;
  switch (x.type) {
    case 'graph':
      return typeof x.title === 'string' && typeof x.canInsert === 'boolean' && isObject(x.view) && Array.isArray(x.view.nodes) && Array.isArray(x.view.edges);
    case 'error':
      return typeof x.title === 'string' && typeof x.message === 'string';
    case 'trust':
      return typeof x.canInsert === 'boolean';
    default:
      return false;
  }
}

/**
 * Lays out a GraphView top to bottom with dagre (layered layout: ranks, crossing reduction, edge
 * routing). No DOM here: node sizes come from a character-width estimate, so the layout is the same
 * in the webview and in tests.
 */
import dagre from '@dagrejs/dagre';
import type { GraphView, GraphViewNode } from '../../src/protocol/graph-view';
import type { Dim } from '../../src/protocol/model';

export interface Point {
  x: number;
  y: number;
}

export interface PlacedNode {
  node: GraphViewNode;
  /** Top-left corner and size. */
  x: number;
  y: number;
  width: number;
  height: number;
  /** The two lines drawn in the box. */
  title: string;
  subtitle: string;
}

export interface PlacedEdge {
  from: string;
  to: string;
  tensor: string;
  skip: boolean;
  points: Point[];
}

export interface GraphLayout {
  nodes: PlacedNode[];
  edges: PlacedEdge[];
  width: number;
  height: number;
}

const CHAR_WIDTH = 7.2;
const PADDING_X = 28;
const MIN_WIDTH = 96;
const MAX_WIDTH = 320;
export const NODE_HEIGHT = 42;

export function shapeText(shape: readonly Dim[] | undefined): string {
  return shape ? `[${shape.join(', ')}]` : '';
}

/** Box text: the op (or the tensor name for inputs and outputs) over the output shape. */
export function nodeLines(node: GraphViewNode): { title: string; subtitle: string } {
  if (node.kind === 'layer') return { title: node.op, subtitle: shapeText(node.shape) };
  return { title: `${node.op}: ${node.name}`, subtitle: shapeText(node.shape) };
}

function clip(text: string, chars: number): string {
  return text.length > chars ? `${text.slice(0, chars - 1)}…` : text;
}

export function layoutGraph(view: GraphView): GraphLayout {
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: 'TB', nodesep: 28, ranksep: 34, edgesep: 12, marginx: 20, marginy: 20 });
  g.setDefaultEdgeLabel(() => ({}));
  const maxChars = Math.floor((MAX_WIDTH - PADDING_X) / CHAR_WIDTH);
  const lines = new Map<string, { title: string; subtitle: string }>();
  for (const node of view.nodes) {
    const l = nodeLines(node);
    const text = { title: clip(l.title, maxChars), subtitle: clip(l.subtitle, maxChars) };
    lines.set(node.id, text);
    const width = Math.max(MIN_WIDTH, Math.ceil(Math.max(text.title.length, text.subtitle.length) * CHAR_WIDTH + PADDING_X));
    g.setNode(node.id, { width, height: NODE_HEIGHT });
  }
  view.edges.forEach((e, i) => {
    // Skip connections are long and should not pull their ends together: a lower weight lets the main chain stay straight.
    g.setEdge(e.from, e.to, { weight: e.skip ? 1 : 4, minlen: 1 }, `e${i}`);
  });
  dagre.layout(g);

  const nodes = view.nodes.map((node): PlacedNode => {
    const n = g.node(node.id);
    const text = lines.get(node.id)!;
    return { node, x: n.x - n.width / 2, y: n.y - n.height / 2, width: n.width, height: n.height, ...text };
  });
  const edges = view.edges.map((e, i): PlacedEdge => {
    const points = (g.edge(e.from, e.to, `e${i}`)?.points ?? []).map((p: Point) => ({ x: p.x, y: p.y }));
    return { from: e.from, to: e.to, tensor: e.tensor, skip: e.skip, points };
  });
  const graph = g.graph();
  return { nodes, edges, width: graph.width ?? 0, height: graph.height ?? 0 };
}

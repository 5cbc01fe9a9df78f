/**
 * The model graph editor's webview: draws the GraphView the extension posts (checked on receipt)
 * as SVG, laid out by graph-layout.ts; pans and zooms; shows a node's details on click, with
 * "Insert defense here" on insertion points. Names and attributes come from a workspace file:
 * everything is set as text, never as HTML.
 */
import './graph.css';
import { isToGraphWebview, type FromGraphWebview, type GraphView, type GraphViewNode, type ToGraphWebview } from '../../src/protocol/graph-view';
import { h } from './dom';
import { layoutGraph, shapeText, type GraphLayout, type PlacedEdge, type PlacedNode } from './graph-layout';

interface VsCodeApi {
  postMessage(message: FromGraphWebview): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const vscode = acquireVsCodeApi();
const app = document.getElementById('app')!;
const SVG_NS = 'http://www.w3.org/2000/svg';

let canInsert = false;
let current: { view: GraphView; layout: GraphLayout; selected?: string } | undefined;
let details: HTMLElement | undefined;

function post(message: FromGraphWebview): void {
  vscode.postMessage(message);
}

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number> = {},
  ...children: (SVGElement | string)[]
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(typeof c === 'string' ? document.createTextNode(c) : c);
  return el;
}

function edgePath(points: { x: number; y: number }[]): string {
  if (points.length === 0) return '';
  // A smooth curve through dagre's bend points (quadratic segments through the midpoints).
  let d = `M${points[0].x},${points[0].y}`;
  if (points.length === 2) return `${d} L${points[1].x},${points[1].y}`;
  for (let i = 1; i < points.length - 1; i++) {
    const mid = { x: (points[i].x + points[i + 1].x) / 2, y: (points[i].y + points[i + 1].y) / 2 };
    d += ` Q${points[i].x},${points[i].y} ${i === points.length - 2 ? `${points[i + 1].x},${points[i + 1].y}` : `${mid.x},${mid.y}`}`;
  }
  return d;
}

function describeNode(n: GraphViewNode): string {
  return `${n.op} ${n.name}${n.shape ? `, output ${shapeText(n.shape)}` : ''}${n.insertionPoint ? ', insertion point' : ''}`;
}

function drawEdge(e: PlacedEdge): SVGElement {
  const path = svg('path', { class: e.skip ? 'edge skip' : 'edge', d: edgePath(e.points), 'marker-end': e.skip ? 'url(#arrow-skip)' : 'url(#arrow)' });
  path.append(svg('title', {}, `${e.tensor}${e.skip ? ' (skip connection: bypasses the nodes between its ends)' : ''}`));
  return path;
}

function drawNode(p: PlacedNode): SVGElement {
  const n = p.node;
  const classes = ['node', n.kind, n.insertionPoint ? 'insertion-point' : ''].filter(Boolean).join(' ');
  const g = svg('g', {
    class: classes,
    transform: `translate(${p.x},${p.y})`,
    tabindex: 0,
    role: 'button',
    'data-id': n.id,
    'data-name': n.name,
    'aria-label': describeNode(n),
  });
  g.append(svg('rect', { width: p.width, height: p.height, rx: n.kind === 'layer' ? 4 : 14 }));
  g.append(svg('text', { class: 'title', x: p.width / 2, y: 17, 'text-anchor': 'middle' }, p.title));
  g.append(svg('text', { class: 'subtitle', x: p.width / 2, y: 33, 'text-anchor': 'middle' }, p.subtitle));
  if (n.insertionPoint) {
    // The target mark of the Models view: a defense can go right after this node.
    const mark = svg('g', { class: 'target-mark', transform: `translate(${p.width - 2},2)` });
    mark.append(svg('circle', { r: 6 }), svg('circle', { r: 2.5, class: 'dot' }));
    g.append(mark);
  }
  g.append(svg('title', {}, n.name));
  g.addEventListener('click', (ev) => {
    ev.stopPropagation();
    select(n.id);
  });
  g.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' || ev.key === ' ') {
      ev.preventDefault();
      select(n.id);
    }
  });
  return g;
}

/** Pan (drag the background) and zoom (wheel, or the toolbar), applied as one transform. */
class Viewport {
  private scale = 1;
  private tx = 0;
  private ty = 0;

  constructor(
    private readonly host: HTMLElement,
    private readonly layer: SVGGElement,
    private readonly size: { width: number; height: number },
  ) {
    host.addEventListener(
      'wheel',
      (ev) => {
        ev.preventDefault();
        const r = host.getBoundingClientRect();
        this.zoomAt(Math.exp(-ev.deltaY * 0.0015), ev.clientX - r.left, ev.clientY - r.top);
      },
      { passive: false },
    );
    let drag: { x: number; y: number } | undefined;
    host.addEventListener('pointerdown', (ev) => {
      if ((ev.target as Element).closest('.node')) return;
      drag = { x: ev.clientX - this.tx, y: ev.clientY - this.ty };
      host.setPointerCapture(ev.pointerId);
      host.classList.add('panning');
    });
    host.addEventListener('pointermove', (ev) => {
      if (!drag) return;
      this.tx = ev.clientX - drag.x;
      this.ty = ev.clientY - drag.y;
      this.apply();
    });
    const end = () => {
      drag = undefined;
      host.classList.remove('panning');
    };
    host.addEventListener('pointerup', end);
    host.addEventListener('pointercancel', end);
  }

  /** The whole graph in view where it fits; a tall one at a readable scale from its top. */
  fit(): void {
    const w = this.host.clientWidth || 800;
    const hgt = this.host.clientHeight || 600;
    this.scale = Math.min(1, Math.max(0.45, Math.min(w / this.size.width, hgt / this.size.height)));
    this.tx = (w - this.size.width * this.scale) / 2;
    this.ty = this.size.height * this.scale <= hgt ? (hgt - this.size.height * this.scale) / 2 : 0;
    this.apply();
  }

  zoomAt(factor: number, cx = this.host.clientWidth / 2, cy = this.host.clientHeight / 2): void {
    const next = Math.min(4, Math.max(0.05, this.scale * factor));
    this.tx = cx - ((cx - this.tx) * next) / this.scale;
    this.ty = cy - ((cy - this.ty) * next) / this.scale;
    this.scale = next;
    this.apply();
  }

  /** Brings a node into view (keyboard focus, selection) without changing the zoom. */
  reveal(p: PlacedNode): void {
    const w = this.host.clientWidth;
    const hgt = this.host.clientHeight;
    const x = p.x * this.scale + this.tx;
    const y = p.y * this.scale + this.ty;
    if (x < 0 || x + p.width * this.scale > w) this.tx = w / 2 - (p.x + p.width / 2) * this.scale;
    if (y < 0 || y + p.height * this.scale > hgt) this.ty = hgt / 2 - (p.y + p.height / 2) * this.scale;
    this.apply();
  }

  private apply(): void {
    this.layer.setAttribute('transform', `translate(${this.tx},${this.ty}) scale(${this.scale})`);
  }
}

let viewport: Viewport | undefined;

function button(label: string, action: string, onClick: () => void, attrs: Record<string, string | boolean | undefined> = {}): HTMLButtonElement {
  const b = h('button', { type: 'button', 'data-action': action, ...attrs }, label);
  b.addEventListener('click', onClick);
  return b;
}

function renderGraph(title: string, view: GraphView): void {
  const layout = layoutGraph(view);
  current = { view, layout };
  const layers = view.nodes.filter((n) => n.kind === 'layer');
  const points = view.nodes.filter((n) => n.insertionPoint).length;
  const skips = view.edges.filter((e) => e.skip).length;

  const defs = svg('defs');
  for (const [id, cls] of [
    ['arrow', 'arrowhead'],
    ['arrow-skip', 'arrowhead skip'],
  ]) {
    defs.append(
      svg(
        'marker',
        { id, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
        svg('path', { d: 'M0,0 L10,5 L0,10 z', class: cls }),
      ),
    );
  }
  const content = svg('g', { class: 'content' });
  const edges = svg('g', { class: 'edges' });
  for (const e of layout.edges) edges.append(drawEdge(e));
  const nodes = svg('g', { class: 'nodes' });
  for (const p of layout.nodes) nodes.append(drawNode(p));
  content.append(edges, nodes);
  const canvas = svg('svg', { class: 'graph', role: 'group', 'aria-label': `Graph of ${title}` }, defs, content);
  const host = h('div', { class: 'canvas' });
  host.append(canvas);
  host.addEventListener('click', () => select(undefined));

  details = h('aside', { class: 'details', 'aria-label': 'Node details' });
  const summary = h(
    'span',
    { class: 'summary' },
    `${layers.length} layers · ${view.totalParams.toLocaleString('en-US')} params · ${points} insertion points · ${skips} skip connection${skips === 1 ? '' : 's'}`,
    view.hiddenConstants ? ` · ${view.hiddenConstants} Constant node${view.hiddenConstants === 1 ? '' : 's'} hidden` : '',
  );
  const legend = h(
    'span',
    { class: 'legend' },
    h('span', { class: 'swatch insertion-point' }),
    'insertion point',
    h('span', { class: 'swatch skip' }),
    'skip connection',
  );
  const toolbar = h(
    'header',
    { class: 'toolbar' },
    h('strong', { class: 'model-title' }, title),
    summary,
    legend,
    h(
      'span',
      { class: 'buttons' },
      button('−', 'zoom-out', () => viewport?.zoomAt(1 / 1.25), { title: 'Zoom out', 'aria-label': 'Zoom out' }),
      button('+', 'zoom-in', () => viewport?.zoomAt(1.25), { title: 'Zoom in', 'aria-label': 'Zoom in' }),
      button('Fit', 'fit', () => viewport?.fit(), { title: 'Fit the graph to the editor' }),
    ),
  );
  app.replaceChildren(toolbar, h('div', { class: 'main' }, host, details));
  canvas.setAttribute('width', '100%');
  canvas.setAttribute('height', '100%');
  viewport = new Viewport(host, content, { width: layout.width, height: layout.height });
  viewport.fit();
  renderDetails();
}

function select(id: string | undefined): void {
  if (!current) return;
  current.selected = id;
  for (const el of Array.from(document.querySelectorAll('.node.selected'))) el.classList.remove('selected');
  if (id) {
    const el = Array.from(document.querySelectorAll<SVGGElement>('.node')).find((e) => e.dataset.id === id);
    el?.classList.add('selected');
    const placed = current.layout.nodes.find((p) => p.node.id === id);
    if (placed) viewport?.reveal(placed);
  }
  renderDetails();
}

function row(label: string, value: string | Node): HTMLElement {
  return h('tr', {}, h('th', { scope: 'row' }, label), h('td', {}, value));
}

function tensorList(names: readonly string[]): Node {
  if (!names.length) return document.createTextNode('–');
  return h('ul', { class: 'tensors' }, ...names.map((n) => h('li', {}, h('code', {}, n))));
}

function renderDetails(): void {
  if (!details || !current) return;
  const node = current.view.nodes.find((n) => n.id === current?.selected);
  if (!node) {
    details.replaceChildren(
      h('p', { class: 'hint' }, 'Click a node to see its op, output shape, parameters and attributes.'),
      h(
        'p',
        { class: 'hint' },
        'Nodes with a green border and a target mark are insertion points: every path from the input to the output passes through their output, so a defense can go right after them. ',
        'Dashed orange edges are skip connections: they bypass the nodes between their ends, which is why no node inside a residual block is an insertion point.',
      ),
    );
    return;
  }
  const rows = [
    row('Op', node.op),
    row('Name', h('code', {}, node.name)),
    node.module ? row('Module', h('code', {}, node.module)) : undefined,
    row('Output shape', shapeText(node.shape) || 'unknown'),
    row('Parameters', node.params.toLocaleString('en-US')),
    node.kind !== 'input' ? row('Inputs', tensorList(node.inputs)) : undefined,
    node.kind !== 'output' ? row('Outputs', tensorList(node.outputs)) : undefined,
  ].filter((r): r is HTMLElement => r !== undefined);
  const attributes = Object.entries(node.attributes ?? {});
  const parts: Node[] = [h('h2', {}, node.op), h('table', { class: 'props' }, ...rows)];
  if (attributes.length) {
    parts.push(h('h3', {}, 'Attributes'), h('table', { class: 'props attributes' }, ...attributes.map(([k, v]) => row(k, h('code', {}, v)))));
  } else if (node.kind === 'layer') {
    parts.push(h('p', { class: 'hint' }, 'No attributes.'));
  }
  if (node.insertionPoint) {
    parts.push(
      h(
        'p',
        { class: 'insertion-note' },
        `Insertion point: every path from the input to the output passes through `,
        h('code', {}, node.tensor ?? ''),
        ', so a defense can go right after this node.',
      ),
    );
    const insert = button('Insert defense here', 'insert-defense', () => post({ type: 'insertDefense', node: node.id }), { disabled: !canInsert });
    parts.push(insert);
    if (!canInsert)
      parts.push(h('p', { class: 'hint restricted' }, 'Restricted Mode: the model can be inspected, but inserting a defense needs a trusted workspace.'));
  } else if (node.kind === 'layer') {
    parts.push(
      h(
        'p',
        { class: 'hint' },
        'Not an insertion point: some path to the output bypasses this node (a skip connection), so a defense here would not see everything.',
      ),
    );
  }
  details.replaceChildren(...parts);
}

function renderError(title: string, message: string): void {
  current = undefined;
  const [first, ...rest] = message.split('\n');
  app.replaceChildren(
    h(
      'div',
      { class: 'error', role: 'alert' },
      h('h2', {}, `Cannot show ${title}`),
      h('p', { class: 'message' }, first),
      rest.length ? h('pre', {}, rest.join('\n')) : undefined,
      h('p', { class: 'hint' }, 'The details are in the Robustness Lab output channel. Fix the file and this editor reloads it.'),
    ),
  );
}

window.addEventListener('message', (event: MessageEvent<unknown>) => {
  const m = event.data;
  if (!isToGraphWebview(m)) return;
  const message: ToGraphWebview = m;
  try {
    switch (message.type) {
      case 'graph':
        canInsert = message.canInsert;
        renderGraph(message.title, message.view);
        return;
      case 'error':
        renderError(message.title, message.message);
        return;
      case 'trust':
        canInsert = message.canInsert;
        renderDetails();
        return;
    }
  } catch (e) {
    post({ type: 'error', message: `graph view: ${(e as Error).stack ?? e}` });
    renderError('the model', (e as Error).message);
  }
});

window.addEventListener('error', (e) => post({ type: 'error', message: `graph view: ${e.message}` }));
post({ type: 'ready' });

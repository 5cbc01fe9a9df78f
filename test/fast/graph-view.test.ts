// The graph editor's view of a model and the Models tree's grouping, from real inspections: the
// demo CNN read from demo/, and a residual model with a Constant node built op by op, whose
// insertion points come from the engine's own dominator analysis. Then dagre's layout of them.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { buildModelGraph } from '../../src/core/model/graph';
import { loadModel } from '../../src/core/model/load';
import { GraphBuilder, makeModel } from '../../src/core/onnx/builder';
import { tensorValueInfo } from '../../src/core/onnx/cut';
import { decodeModel, encodeModel } from '../../src/core/onnx/proto';
import { floatTensor } from '../../src/core/onnx/tensor-proto';
import {
  buildGraphView,
  groupByModule,
  isFromGraphWebview,
  isToGraphWebview,
  listedLayers,
  MAX_GRAPH_NODES,
  type GraphView,
  type LayerTreeEntry,
} from '../../src/protocol/graph-view';
import type { Layer, ModelSummary } from '../../src/protocol/model';
import { nodeAttributes } from '../../src/worker/node-attributes';
import { layoutGraph } from '../../webview-ui/src/graph-layout';
import { seededValues } from '../helpers/models';

const ROOT = path.resolve(__dirname, '..', '..');

/** The demo CNN as the inspector describes it (no shape probe: shapes are not what is tested here). */
function demoSummary(): ModelSummary {
  const { shapes: _shapes, ...summary } = buildModelGraph(loadModel(path.join(ROOT, 'demo', 'fashion-cnn.onnx')), new Map());
  return summary;
}

/**
 * x → /stem/Conv → /stem/Relu → [residual block /layer1/layer1.0: conv1/Conv → relu/Relu → conv2/Conv
 * → Add(·, stem output)] → relu_1/Relu → /head/Flatten → /head/Mul(·, /Constant) → /head/fc/Gemm → logits.
 * Node names as PyTorch's exporter writes them.
 */
function residualWithConstant() {
  const b = new GraphBuilder();
  const w = (hint: string, dims: number[], seed: number) =>
    b.floatConst(
      hint,
      dims,
      seededValues(
        dims.reduce((a, c) => a * c, 1),
        seed,
      ),
    );
  const names: string[] = [];
  const op = (name: string, type: string, inputs: string[], attrs = {}) => {
    const out = b.op(type, inputs, attrs);
    names.push(name);
    return out;
  };
  const stem = op('/stem/Conv', 'Conv', ['x', w('w0', [4, 1, 3, 3], 1)], { pads: [1, 1, 1, 1], kernel_shape: [3, 3] });
  const stemRelu = op('/stem/Relu', 'Relu', [stem]);
  const c1 = op('/layer1/layer1.0/conv1/Conv', 'Conv', [stemRelu, w('w1', [4, 4, 3, 3], 2)], { pads: [1, 1, 1, 1] });
  const r1 = op('/layer1/layer1.0/relu/Relu', 'Relu', [c1]);
  const c2 = op('/layer1/layer1.0/conv2/Conv', 'Conv', [r1, w('w2', [4, 4, 3, 3], 3)], { pads: [1, 1, 1, 1] });
  const add = op('/layer1/layer1.0/Add', 'Add', [c2, stemRelu]);
  const r2 = op('/layer1/layer1.0/relu_1/Relu', 'Relu', [add]);
  const flat = op('/head/Flatten', 'Flatten', [r2]);
  const scale = op('/Constant', 'Constant', [], { value: floatTensor('scale', [1], [0.5]) });
  const scaled = op('/head/Mul', 'Mul', [flat, scale]);
  b.node('Gemm', [scaled, w('fc', [3, 256], 4)], { transB: 1, alpha: 1.5, auto: 'NOTSET' }, ['logits']);
  names.push('/head/fc/Gemm');
  b.nodes.forEach((n, i) => (n.name = names[i]));
  const graph = b.graph('residual', [tensorValueInfo('x', ['N', 1, 8, 8])], [tensorValueInfo('logits', ['N', 3])]);
  const model = makeModel(graph, 13);
  const { shapes: _shapes, ...summary } = buildModelGraph({ path: 'residual.onnx', sha256: '', model, bytes: new Uint8Array() }, new Map());
  return { model, summary, tensors: { stemRelu, c1, r1, c2, add, r2, scale } };
}

const byName = (view: GraphView, name: string) => view.nodes.find((n) => n.name === name)!;
const edgeBetween = (view: GraphView, from: string, to: string) => view.edges.filter((e) => e.from === byName(view, from).id && e.to === byName(view, to).id);

test('the demo CNN: a chain from the input to the output, every layer and the input an insertion point', () => {
  const view = buildGraphView(demoSummary());
  assert.deepEqual(
    view.nodes.map((n) => n.kind),
    ['input', ...Array(10).fill('layer'), 'output'],
  );
  assert.equal(view.edges.length, 11, 'one edge per data dependency; weights are not nodes');
  assert.equal(view.edges.filter((e) => e.skip).length, 0);
  assert.equal(view.hiddenConstants, 0);
  assert.deepEqual(
    view.nodes.filter((n) => n.insertionPoint).map((n) => n.name),
    ['input', ...demoSummary().layers.map((l) => l.name)],
  );
  const pool = byName(view, '/features/features.5/MaxPool');
  assert.equal(pool.tensor, '/features/features.5/MaxPool_output_0', 'the tensor the defense goes after');
  assert.equal(pool.module, 'features/features.5');
  assert.equal(byName(view, '/classifier/classifier.1/Gemm').params, 262_400);
  // Edges follow the tensors: the Flatten's input is the last MaxPool's output.
  assert.deepEqual(edgeBetween(view, '/features/features.5/MaxPool', '/classifier/classifier.0/Flatten')[0]?.tensor, '/features/features.5/MaxPool_output_0');
  assert.equal(edgeBetween(view, '/classifier/classifier.3/Gemm', 'logits').length, 1, 'the output node is fed by the last Gemm');
});

test('a residual block: the skip connection is an edge of its own, marked, and nothing inside the block is an insertion point', () => {
  const { summary } = residualWithConstant();
  const view = buildGraphView(summary);
  const skip = edgeBetween(view, '/stem/Relu', '/layer1/layer1.0/Add');
  assert.equal(skip.length, 1, 'the identity branch is drawn');
  assert.equal(skip[0].skip, true, 'and marked as a skip connection');
  assert.deepEqual(
    view.edges.filter((e) => e.skip).map((e) => e.tensor),
    [skip[0].tensor],
    'every other edge lies on the only path between its ends',
  );
  assert.equal(edgeBetween(view, '/stem/Relu', '/layer1/layer1.0/conv1/Conv').length, 1, 'the main branch starts at the same tensor');
  for (const inside of ['/layer1/layer1.0/conv1/Conv', '/layer1/layer1.0/relu/Relu', '/layer1/layer1.0/conv2/Conv']) {
    assert.equal(byName(view, inside).insertionPoint, false, `${inside} is inside the block`);
    assert.equal(byName(view, inside).tensor, undefined);
  }
  for (const point of ['x', '/stem/Relu', '/layer1/layer1.0/Add', '/head/fc/Gemm']) assert.equal(byName(view, point).insertionPoint, true, point);
});

test('Constant nodes are hidden, with their edges, and counted', () => {
  const { summary } = residualWithConstant();
  assert.ok(
    summary.layers.some((l) => l.op === 'Constant'),
    'the model has a Constant node',
  );
  const view = buildGraphView(summary);
  assert.equal(view.hiddenConstants, 1);
  assert.ok(!view.nodes.some((n) => n.op === 'Constant'));
  const mul = byName(view, '/head/Mul');
  assert.deepEqual(
    view.edges.filter((e) => e.to === mul.id).map((e) => e.from),
    [byName(view, '/head/Flatten').id],
    'the Mul is fed by the Flatten only: the Constant and its edge are gone',
  );
  // Every edge joins two drawn nodes.
  const ids = new Set(view.nodes.map((n) => n.id));
  for (const e of view.edges) assert.ok(ids.has(e.from) && ids.has(e.to), `${e.from} → ${e.to}`);
  // The tree hides Constants too, and its filter keeps insertion points only.
  assert.ok(!listedLayers(summary.layers, false).some((l) => l.op === 'Constant'));
  assert.equal(listedLayers(summary.layers, false).length, summary.layers.length - 1);
  const only = listedLayers(summary.layers, true);
  assert.ok(only.length > 0 && only.every((l) => l.insertionPoint));
  assert.ok(!only.some((l) => l.name.includes('conv1') || l.name.includes('relu/Relu')), 'layers inside the block are filtered out');
});

test('node attributes are formatted for display and reach the view', () => {
  const { model, summary } = residualWithConstant();
  // Through protobuf and back, as the worker reads a file (zero and default fields may be left out).
  const attributes = nodeAttributes(decodeModel(encodeModel(model)).graph!.node!);
  assert.deepEqual(attributes[0], { pads: '[1, 1, 1, 1]', kernel_shape: '[3, 3]' });
  assert.deepEqual(attributes[attributes.length - 1], { transB: '1', alpha: '1.5', auto: 'NOTSET' });
  assert.equal(attributes[summary.layers.findIndex((l) => l.op === 'Constant')].value, 'tensor float [1]');
  const view = buildGraphView(summary, attributes);
  assert.deepEqual(byName(view, '/stem/Conv').attributes, { pads: '[1, 1, 1, 1]', kernel_shape: '[3, 3]' });
  assert.equal(byName(view, '/stem/Relu').attributes, undefined, 'a node without attributes has none');
  // Long lists are cut, so a hostile model cannot flood the details panel.
  const long = nodeAttributes([{ opType: 'X', attribute: [{ name: 'ints', type: 7, ints: Array.from({ length: 1000 }, (_, i) => i) }] }]);
  assert.match(long[0].ints, /^\[0, 1, .*, … \(1000 in all\)\]$/);
  assert.ok(long[0].ints.length < 120);
});

test('a graph too large to draw is refused with a message that says what to use instead', () => {
  const layers: Layer[] = Array.from({ length: MAX_GRAPH_NODES + 5 }, (_, i) => ({
    index: i,
    name: `n${i}`,
    op: 'Relu',
    inputs: [i ? `t${i - 1}` : 'x'],
    outputs: [`t${i}`],
    params: 0,
    insertionPoint: true,
  }));
  const summary: ModelSummary = { ...demoSummary(), layers };
  assert.throws(() => buildGraphView(summary), /draws at most 3,000.*Models view/);
});

function shape<T>(entries: LayerTreeEntry<T>[], name: (t: T) => string): unknown[] {
  return entries.map((e) => (e.kind === 'leaf' ? `${e.label} = ${name(e.item)}` : { [e.label]: shape(e.children, name) }));
}

test('the tree groups layers by module path, in model order, without one-layer folders', () => {
  const demo = demoSummary();
  assert.deepEqual(
    shape(
      groupByModule(demo.layers, (l) => l.name),
      (l) => l.op,
    ),
    [
      {
        features: [
          'features.0/Conv = Conv',
          'features.1/Relu = Relu',
          'features.2/MaxPool = MaxPool',
          'features.3/Conv = Conv',
          'features.4/Relu = Relu',
          'features.5/MaxPool = MaxPool',
        ],
      },
      { classifier: ['classifier.0/Flatten = Flatten', 'classifier.1/Gemm = Gemm', 'classifier.2/Relu = Relu', 'classifier.3/Gemm = Gemm'] },
    ],
  );
  // Nested modules that hold only the next one fold into one group (layer1/layer1.0); a module of one layer is no group.
  const { summary } = residualWithConstant();
  const tree = groupByModule(listedLayers(summary.layers, false), (l) => l.name);
  assert.deepEqual(
    shape(tree, (l) => l.name),
    [
      { stem: ['Conv = /stem/Conv', 'Relu = /stem/Relu'] },
      {
        'layer1/layer1.0': [
          'conv1/Conv = /layer1/layer1.0/conv1/Conv',
          'relu/Relu = /layer1/layer1.0/relu/Relu',
          'conv2/Conv = /layer1/layer1.0/conv2/Conv',
          'Add = /layer1/layer1.0/Add',
          'relu_1/Relu = /layer1/layer1.0/relu_1/Relu',
        ],
      },
      { head: ['Flatten = /head/Flatten', 'Mul = /head/Mul', 'fc/Gemm = /head/fc/Gemm'] },
    ],
  );
  const block = tree[1];
  assert.ok(block.kind === 'group' && block.path === 'layer1/layer1.0' && block.count === 5);
  // Keras names (TensorFlow.js models): a layer and the nodes it was converted to form one group.
  const keras = ['conv1_input/to_nchw', 'conv1/Conv', 'conv1', 'pool1', 'flatten', 'probs'];
  assert.deepEqual(
    shape(
      groupByModule(keras, (n) => n),
      (n) => n,
    ),
    ['conv1_input/to_nchw = conv1_input/to_nchw', { conv1: ['Conv = conv1/Conv', 'conv1 = conv1'] }, 'pool1 = pool1', 'flatten = flatten', 'probs = probs'],
  );
});

test('the webview messages are checked on receipt', () => {
  assert.ok(isFromGraphWebview({ type: 'ready' }));
  assert.ok(isFromGraphWebview({ type: 'insertDefense', node: 'node:5' }));
  assert.ok(!isFromGraphWebview({ type: 'insertDefense', node: 5 }));
  assert.ok(!isFromGraphWebview({ type: 'runCommand', command: 'workbench.action.terminal.new' }));
  assert.ok(!isFromGraphWebview('ready'));
  const view = buildGraphView(demoSummary());
  assert.ok(isToGraphWebview({ type: 'graph', title: 't', view, canInsert: false }));
  assert.ok(isToGraphWebview(JSON.parse(JSON.stringify({ type: 'graph', title: 't', view, canInsert: true }))), 'survives the postMessage copy');
  assert.ok(!isToGraphWebview({ type: 'graph', title: 't', view: {}, canInsert: true }));
});

test('dagre lays the graph out top to bottom: no overlapping boxes, every edge routed downwards, the skip connection beside the block', () => {
  const view = buildGraphView(residualWithConstant().summary);
  const layout = layoutGraph(view);
  assert.equal(layout.nodes.length, view.nodes.length);
  assert.equal(layout.edges.length, view.edges.length);
  const box = new Map(layout.nodes.map((p) => [p.node.id, p]));
  for (const a of layout.nodes) {
    assert.ok(a.x >= 0 && a.y >= 0 && a.x + a.width <= layout.width + 1 && a.y + a.height <= layout.height + 1, `${a.node.name} lies inside the drawing`);
    for (const b of layout.nodes) {
      if (a === b) continue;
      const overlap = a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
      assert.ok(!overlap, `${a.node.name} overlaps ${b.node.name}`);
    }
  }
  for (const e of layout.edges) {
    assert.ok(e.points.length >= 2, `${e.tensor} has a route`);
    assert.ok(box.get(e.from)!.y < box.get(e.to)!.y, `${e.tensor} runs downwards`);
  }
  // The skip edge does not pass through the boxes of the block it bypasses.
  const skip = layout.edges.find((e) => e.skip)!;
  const inside = ['/layer1/layer1.0/conv1/Conv', '/layer1/layer1.0/relu/Relu', '/layer1/layer1.0/conv2/Conv'].map((n) => box.get(byName(view, n).id)!);
  for (const p of skip.points) {
    for (const b of inside)
      assert.ok(!(p.x > b.x && p.x < b.x + b.width && p.y > b.y && p.y < b.y + b.height), `skip route point ${p.x},${p.y} inside ${b.node.name}`);
  }
  // Box text: the op over the output shape; inputs and outputs by name.
  assert.equal(box.get('input:x')!.title, 'Input: x');
  assert.equal(box.get(byName(view, '/stem/Conv').id)!.title, 'Conv');
});

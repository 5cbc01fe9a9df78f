// The graph editor's nodeAttributes request through the real compute process (src/worker/worker.ts
// under tsx): the demo model's attributes as the node details show them, and the same root check
// as inspection for a model outside the workspace.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { WorkerError, WorkerProcess } from '../../src/extension/worker-client';
import { buildGraphView } from '../../src/protocol/graph-view';

const ROOT = path.resolve(__dirname, '..', '..');

test('the compute process reads every node attribute of the demo model, and refuses a model outside its roots', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'rlab-graph-attrs-'));
  const ws = path.join(dir, 'ws');
  mkdirSync(ws);
  copyFileSync(path.join(ROOT, 'demo', 'fashion-cnn.onnx'), path.join(ws, 'fashion-cnn.onnx'));
  const outside = path.join(dir, 'outside.onnx');
  copyFileSync(path.join(ROOT, 'demo', 'fashion-cnn.onnx'), outside);
  const worker = new WorkerProcess(path.join(ROOT, 'src', 'worker', 'worker.ts'), 'inspect', 0, () => {}, {
    cwd: ws,
    roots: [ws],
    execArgv: ['--import', pathToFileURL(path.join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href],
  });
  try {
    const model = path.join(ws, 'fashion-cnn.onnx');
    const [summary, attributes] = await Promise.all([
      worker.request({ type: 'inspect', model }).result,
      worker.request({ type: 'nodeAttributes', model }).result,
    ]);
    assert.equal(attributes.length, summary.layers.length, 'one entry per node, in node order');
    const conv = attributes[summary.layers.findIndex((l) => l.name === '/features/features.0/Conv')];
    assert.equal(conv.kernel_shape, '[5, 5]');
    assert.equal(conv.strides, '[1, 1]');
    const pool = attributes[summary.layers.findIndex((l) => l.name === '/features/features.5/MaxPool')];
    assert.deepEqual(pool, { ceil_mode: '0', kernel_shape: '[2, 2]', pads: '[0, 0, 0, 0]', strides: '[2, 2]' });
    // What the editor posts to its webview: the attributes on the nodes they belong to.
    const view = buildGraphView(summary, attributes);
    assert.equal(view.nodes.find((n) => n.name === '/features/features.0/Conv')?.attributes?.kernel_shape, '[5, 5]');
    assert.equal(view.nodes.find((n) => n.name === '/classifier/classifier.1/Gemm')?.attributes?.transB, '1');

    await assert.rejects(
      worker.request({ type: 'nodeAttributes', model: outside }).result,
      (e: unknown) => e instanceof WorkerError && e.kind === 'user' && /leaves the allowed folder/.test(e.message),
    );
    await assert.rejects(
      worker.request({ type: 'nodeAttributes', model: path.join(ws, 'missing.onnx') }).result,
      (e: unknown) => e instanceof WorkerError && e.kind === 'user',
    );
  } finally {
    worker.dispose();
  }
});

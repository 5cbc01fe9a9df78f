import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { UserError } from '../../src/core/errors';
import { buildModelGraph } from '../../src/core/model/graph';
import { insertionPoints } from '../../src/core/model/insertion-points';
import { inferShapes } from '../../src/core/runtime/shapes';
import { cutModel, tensorValueInfo } from '../../src/core/onnx/cut';
import { loadModel } from '../../src/core/model/load';
import { decodeModel, encodeModel, DataType } from '../../src/core/onnx/proto';
import { residualModel, seededValues } from '../helpers/models';

function tmp(): string {
  return mkdtempSync(path.join(tmpdir(), 'rlab-graph-'));
}

async function run(bytes: Uint8Array, input: string, x: Float32Array, dims: number[]): Promise<ort.Tensor> {
  const s = await ort.InferenceSession.create(bytes);
  const out = await s.run({ [input]: new ort.Tensor('float32', x, dims) });
  await s.release();
  return out[s.outputNames[0]];
}

test('insertion points of a residual model: nothing inside the block, the block output yes', () => {
  const { model, names } = residualModel();
  const points = new Set(insertionPoints(model.graph!));
  for (const t of ['x', names.stem, names.stemRelu, names.add, names.r2, names.pool, names.flat, 'logits'])
    assert.ok(points.has(t), `${t} should be an insertion point`);
  for (const t of [names.c1, names.r1, names.c2]) assert.ok(!points.has(t), `${t} is inside the residual block`);
});

test('shapes are probed with onnxruntime when value_info is absent, batch dimension symbolic', async () => {
  const { model, names } = residualModel();
  const dir = tmp();
  writeFileSync(path.join(dir, 'res.onnx'), encodeModel(model));
  const loaded = loadModel(path.join(dir, 'res.onnx'));
  const shapes = await inferShapes(loaded);
  assert.deepEqual(shapes.get(names.c1), ['N', 4, 8, 8]);
  assert.deepEqual(shapes.get(names.pool), ['N', 4, 1, 1]);
  assert.deepEqual(shapes.get(names.flat), ['N', 4]);
  const graph = buildModelGraph(loaded, shapes);
  const conv = graph.layers.find((l) => l.outputs[0] === names.c1)!;
  assert.equal(conv.params, 4 * 4 * 9);
  assert.equal(conv.insertionPoint, false);
  assert.equal(graph.layers.find((l) => l.outputs[0] === names.add)!.insertionPoint, true);
  assert.equal(graph.totalParams, 4 * 9 + 4 + 4 * 4 * 9 * 2 + 12 + 3);
});

test('head + tail reproduce the residual model at every insertion point; a tensor inside the block is refused', async () => {
  const { model, names } = residualModel();
  const dir = tmp();
  writeFileSync(path.join(dir, 'res.onnx'), encodeModel(model));
  const loaded = loadModel(path.join(dir, 'res.onnx'));
  const shapes = await inferShapes(loaded);
  const x = seededValues(5 * 64, 42, 1);
  const full = (await run(loaded.bytes, 'x', x, [5, 1, 8, 8])).data as Float32Array;
  for (const t of insertionPoints(model.graph!)) {
    const { head, tail } = cutModel(model, t, shapes);
    const mid = await run(encodeModel(head), 'x', x, [5, 1, 8, 8]);
    const out = (await run(encodeModel(tail), t, mid.data as Float32Array, mid.dims as number[])).data as Float32Array;
    assert.equal(out.length, full.length);
    for (let i = 0; i < full.length; i++) assert.ok(Math.abs(out[i] - full[i]) <= 1e-5, `cut at ${t}: ${out[i]} vs ${full[i]}`);
  }
  assert.throws(
    () => cutModel(model, names.r1, shapes),
    (e: unknown) => e instanceof UserError && /dominate/.test(e.message) && e.message.includes(names.stemRelu),
  );
  assert.throws(() => cutModel(model, 'no_such_tensor', shapes), /no tensor named 'no_such_tensor'/);
});

test('protobuf round trip: decode(encode(decode(bytes))) equals decode(bytes)', () => {
  const { model } = residualModel();
  const once = decodeModel(encodeModel(model));
  const twice = decodeModel(encodeModel(once));
  assert.deepEqual(twice, once);
  assert.equal(once.graph!.node!.length, model.graph!.node!.length);
});

test('external data is read from the model folder, and a path leaving the folder is refused', async () => {
  const { model } = residualModel();
  const dir = tmp();
  mkdirSync(path.join(dir, 'm'));
  const fc = model.graph!.initializer!.find((t) => t.dims!.length === 2)!;
  const bytes = fc.rawData!;
  writeFileSync(path.join(dir, 'm', 'weights.bin'), Buffer.concat([Buffer.alloc(16), Buffer.from(bytes)]));
  const external = structuredClone(model);
  const t = external.graph!.initializer!.find((i) => i.name === fc.name)!;
  delete t.rawData;
  t.dataLocation = 1;
  t.externalData = [
    { key: 'location', value: 'weights.bin' },
    { key: 'offset', value: '16' },
    { key: 'length', value: String(bytes.length) },
  ];
  writeFileSync(path.join(dir, 'm', 'ext.onnx'), encodeModel(external));
  const loaded = loadModel(path.join(dir, 'm', 'ext.onnx'));
  const x = seededValues(64, 7, 1);
  const a = (await run(loaded.bytes, 'x', x, [1, 1, 8, 8])).data as Float32Array;
  const b = (await run(encodeModel(model), 'x', x, [1, 1, 8, 8])).data as Float32Array;
  assert.deepEqual(Array.from(a), Array.from(b));

  writeFileSync(path.join(dir, 'outside.bin'), Buffer.from(bytes));
  t.externalData = [{ key: 'location', value: '../outside.bin' }];
  writeFileSync(path.join(dir, 'm', 'escape.onnx'), encodeModel(external));
  assert.throws(
    () => loadModel(path.join(dir, 'm', 'escape.onnx')),
    (e: unknown) => e instanceof UserError && /leaves the model's folder/.test(e.message) && e.message.includes('../outside.bin'),
  );
});

test('a file that is not ONNX gets an error naming it', () => {
  const dir = tmp();
  const file = path.join(dir, 'junk.onnx');
  writeFileSync(file, Buffer.from('this is not a protobuf model at all, just text'));
  assert.throws(
    () => loadModel(file),
    (e: unknown) => e instanceof UserError && e.message.includes(file),
  );
  assert.throws(
    () => loadModel(path.join(dir, 'missing.onnx')),
    (e: unknown) => e instanceof UserError && /Cannot read the model file/.test(e.message),
  );
  assert.equal(DataType.FLOAT, 1);
});

test('shapes come from value_info where the model carries it (no probe run needed for those tensors)', async () => {
  const { model, names } = residualModel();
  // Deliberately distinctive symbolic names: a probe would report 'N' instead.
  model.graph!.valueInfo = (model.graph!.node ?? [])
    .filter((n) => n.output![0] !== 'logits')
    .map((n) => tensorValueInfo(n.output![0], n.output![0] === names.pool ? ['B', 4, 1, 1] : n.output![0] === names.flat ? ['B', 4] : ['B', 4, 8, 8]));
  const dir = tmp();
  writeFileSync(path.join(dir, 'vi.onnx'), encodeModel(model));
  const shapes = await inferShapes(loadModel(path.join(dir, 'vi.onnx')));
  assert.deepEqual(shapes.get(names.c1), ['B', 4, 8, 8]);
  assert.deepEqual(shapes.get(names.flat), ['B', 4]);
  assert.deepEqual(shapes.get('logits'), ['N', 3], 'graph outputs keep their declared shape');
});

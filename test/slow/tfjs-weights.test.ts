/**
 * TensorFlow.js weight files: shards (split inside tensors, names without extension), quantized
 * weights (uint8, uint16, float16) decoded bit for bit as tfjs's io.decodeWeights does, int32
 * weights, and the file rules: every weight file a regular file inside the model's folder, with
 * an error naming the file otherwise.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { loadModel } from '../../src/core/model/load';
import { decodeWeightGroup, type WeightSpec } from '../../src/core/tfjs/weights';
import { artifactsFromDir, assertClose, quantize, randomInput, runConverted, saveLayersModel, tempDir, tf, tfReady } from './tfjs-helpers';

const L = tf.layers;

function smallCnn(): tf.LayersModel {
  const m = tf.sequential();
  m.add(L.conv2d({ inputShape: [6, 6, 2], filters: 3, kernelSize: 3, activation: 'relu', name: 'conv' }));
  m.add(L.flatten({ name: 'flat' }));
  m.add(L.dense({ units: 4, name: 'logits' }));
  return m;
}

async function tfjsFromFiles(json: string): Promise<tf.LayersModel> {
  return tf.loadLayersModel(tf.io.fromMemory(artifactsFromDir(json)));
}

test('tfjs weights: shards split inside tensors, with names without extension, are one byte stream', async () => {
  await tfReady();
  const m = smallCnn();
  const dir = tempDir('shards');
  const json = await saveLayersModel(m, dir, { shards: 5, shardName: (i) => `weights-part${i}` });
  const x = randomInput([2, 6, 6, 2], 1);
  const got = await runConverted(json, x, [2, 6, 6, 2]);
  assertClose(got.out, (m.predict(tf.tensor(x, [2, 6, 6, 2])) as tf.Tensor).dataSync(), 1e-5, 'sharded');
});

for (const q of ['uint8', 'uint16', 'float16'] as const) {
  test(`tfjs weights: ${q}-quantized weights give what tfjs gives loading the same files`, async () => {
    await tfReady();
    const json = await saveLayersModel(smallCnn(), tempDir(`q-${q}`), { quantize: q, shards: 2 });
    const spec = JSON.parse(readFileSync(json, 'utf8')).weightsManifest[0].weights[0];
    assert.equal(spec.quantization.dtype, q);
    const reference = await tfjsFromFiles(json);
    const x = randomInput([3, 6, 6, 2], 2);
    const got = await runConverted(json, x, [3, 6, 6, 2]);
    assertClose(got.out, (reference.predict(tf.tensor(x, [3, 6, 6, 2])) as tf.Tensor).dataSync(), 1e-5, q);
  });
}

test('tfjs weights: dequantisation is bit-identical to tf.io.decodeWeights (float16 incl. subnormals, inf, NaN; uint8/16; int32)', () => {
  const half = new Uint16Array(65536).map((_, i) => i);
  const f32 = randomInput([257], 3, 10);
  const q8 = quantize(f32, 'uint8'),
    q16 = quantize(f32, 'uint16');
  const ints = Int32Array.from({ length: 9 }, (_, i) => i * 1000 - 4000);
  const intQ = { bytes: Uint8Array.from([0, 1, 2, 200, 255]), meta: { dtype: 'uint8', min: -3.3, scale: 0.7 } };
  const specs: WeightSpec[] = [
    { name: 'h', shape: [65536], dtype: 'float32', quantization: { dtype: 'float16' } },
    { name: 'a', shape: [257], dtype: 'float32', quantization: q8.meta as WeightSpec['quantization'] },
    { name: 'b', shape: [257], dtype: 'float32', quantization: q16.meta as WeightSpec['quantization'] },
    { name: 'i', shape: [3, 3], dtype: 'int32' },
    { name: 'iq', shape: [5], dtype: 'int32', quantization: intQ.meta as WeightSpec['quantization'] },
    { name: 'f', shape: [2, 2], dtype: 'float32' },
  ];
  const parts = [
    new Uint8Array(half.buffer),
    q8.bytes,
    q16.bytes,
    new Uint8Array(ints.buffer),
    intQ.bytes,
    new Uint8Array(new Float32Array([1, -2, 3.5, 1e-30]).buffer),
  ];
  const stream = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    stream.set(p, at);
    at += p.length;
  }
  const ours = decodeWeightGroup(stream, specs, 'test stream');
  const theirs = tf.io.decodeWeights(stream.slice().buffer, specs as tf.io.WeightsManifestEntry[]);
  for (const w of ours) {
    const t = theirs[w.name];
    assert.deepEqual(w.shape, t.shape, w.name);
    const mine = w.dtype === 'float32' ? new Uint32Array(new Float32Array(w.data).buffer) : Int32Array.from(w.data);
    const ref = w.dtype === 'float32' ? new Uint32Array(Float32Array.from(t.dataSync()).buffer) : Int32Array.from(t.dataSync());
    assert.deepEqual(mine, ref, `${w.name}: bits differ`);
  }
});

test('tfjs weights: a truncated shard, an unknown dtype or quantization name the weight and the files', async () => {
  await tfReady();
  const dir = tempDir('truncated');
  const json = await saveLayersModel(smallCnn(), dir);
  truncateSync(path.join(dir, 'group1-shard1of1.bin'), 220);
  assert.throws(() => loadModel(json), /Weight 'conv\/bias' needs bytes 216\.\.228 of group1-shard1of1\.bin .* hold 220 bytes/);
  const j = JSON.parse(readFileSync(json, 'utf8'));
  j.weightsManifest[0].weights[0].dtype = 'complex64';
  j.weightsManifest[0].weights[1].quantization = { dtype: 'int4', scale: 1, min: 0 };
  writeFileSync(json, JSON.stringify(j));
  assert.throws(
    () => loadModel(json),
    (e: Error) => {
      assert.equal(e.name, 'UserError');
      assert.match(e.message, /'conv\/kernel': dtype 'complex64'/);
      assert.match(e.message, /'conv\/bias': quantization dtype 'int4'/);
      return true;
    },
  );
});

test('tfjs weights: every weight file must be a regular file inside the model folder', async () => {
  await tfReady();
  const outside = tempDir('outside');
  writeFileSync(path.join(outside, 'w.bin'), new Uint8Array(1000));
  const dir = tempDir('paths');
  const json = await saveLayersModel(smallCnn(), dir);
  const original = JSON.parse(readFileSync(json, 'utf8'));
  const withPath = (p: string) => {
    const j = structuredClone(original);
    j.weightsManifest[0].paths = [p];
    writeFileSync(json, JSON.stringify(j));
  };
  const refuses = (p: string, pattern: RegExp) => {
    withPath(p);
    assert.throws(
      () => loadModel(json),
      (e: Error) => {
        assert.equal(e.name, 'UserError', `${p}: ${e.message}`);
        assert.match(e.message, pattern, p);
        return true;
      },
    );
  };
  refuses(`../${path.basename(outside)}/w.bin`, /Weight file '\.\.\/.*w\.bin' .* leaves the model's folder/);
  refuses(path.join(outside, 'w.bin'), /leaves the model's folder \(absolute path/);
  refuses('https://example.com/w.bin', /is not a relative file path/);
  symlinkSync(path.join(outside, 'w.bin'), path.join(dir, 'link.bin'));
  refuses('link.bin', /'link\.bin'.*symbolic link/);
  mkdirSync(path.join(dir, 'folder.bin'));
  refuses('folder.bin', /'folder\.bin'.*a folder, not a regular file/);
  refuses('missing.bin', /'missing\.bin'.*does not exist/);
  if (spawnSync('mkfifo', [path.join(dir, 'pipe.bin')]).status === 0) refuses('pipe.bin', /'pipe\.bin'.*named pipe/);
  // A link that stays inside the folder is fine.
  symlinkSync('group1-shard1of1.bin', path.join(dir, 'inside-link.bin'));
  withPath('inside-link.bin');
  assert.ok(loadModel(json).model.graph);
});

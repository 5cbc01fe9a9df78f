/** The gradient and gradcheck commands, run as a user runs them, against PyTorch autograd fixtures. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { encodeNpyFloat32, parseNpy } from '../../src/core/data/npy';
import { GraphBuilder, makeModel } from '../../src/core/onnx/builder';
import { tensorValueInfo } from '../../src/core/onnx/cut';
import { encodeModel } from '../../src/core/onnx/proto';
import { demoImages, relativeL2 } from '../helpers/demo-data';
import { cli, DEMO_MODEL, DEMO_TEST_IMAGES, DEMO_TEST_LABELS, ROOT } from '../helpers/cli';

const ref = JSON.parse(readFileSync(path.join(ROOT, 'test', 'fixtures', 'attack-reference.json'), 'utf8')) as {
  gradLabels: number[];
  ceSumGradFirst4: number[];
  cwGradFirst4: number[];
};

test('CLI gradient writes the CE and CW input gradients that PyTorch computes; vjp with a cotangent', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'rlab-grad-'));
  const { x } = await demoImages(DEMO_TEST_IMAGES, DEMO_TEST_LABELS, 4);
  writeFileSync(path.join(dir, 'x.npy'), encodeNpyFloat32(x, [4, 1, 28, 28]));
  writeFileSync(path.join(dir, 'y.txt'), ref.gradLabels.join('\n'));
  for (const [loss, expected] of [
    ['ce-sum', ref.ceSumGradFirst4],
    ['cw', ref.cwGradFirst4],
  ] as const) {
    const out = path.join(dir, `g-${loss}.npy`);
    const r = cli(['gradient', '--model', DEMO_MODEL, '--input', path.join(dir, 'x.npy'), '--labels', path.join(dir, 'y.txt'), '--loss', loss, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const g = parseNpy(readFileSync(out), out);
    assert.deepEqual(g.shape, [4, 1, 28, 28]);
    assert.ok(relativeL2(g.data as Float32Array, expected) < 1e-4, `${loss}: relative error ${relativeL2(g.data as Float32Array, expected)}`);
  }
  // <dy, logits> with dy = onehot(y) - softmax is minus the CE gradient of... simply: dy = e_y gives the gradient of the logit z_y.
  const dy = new Float32Array(40);
  ref.gradLabels.forEach((y, i) => (dy[i * 10 + y] = 1));
  writeFileSync(path.join(dir, 'dy.npy'), encodeNpyFloat32(dy, [4, 10]));
  const vjp = cli([
    'gradient',
    '--model',
    DEMO_MODEL,
    '--input',
    path.join(dir, 'x.npy'),
    '--cotangent',
    path.join(dir, 'dy.npy'),
    '--out',
    path.join(dir, 'gv.npy'),
  ]);
  assert.equal(vjp.code, 0, vjp.stderr);
  const both = cli(['gradient', '--model', DEMO_MODEL, '--input', path.join(dir, 'x.npy'), '--out', path.join(dir, 'none.npy')]);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /exactly one of --labels .* or --cotangent/);
  assert.ok(!existsSync(path.join(dir, 'none.npy')));
});

test('CLI gradcheck passes on the demo model and names every unsupported op with a way out', () => {
  const ok = cli(['gradcheck', DEMO_MODEL, '--samples', '12']);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /OK: median relative error/);

  const b = new GraphBuilder();
  const top = b.node('TopK', ['x', b.int64Const('k', [2])], { axis: 1 }, 2);
  const e = b.op('Einsum', ['x'], { equation: 'ij->ij' });
  const g = b.op('Gather', [e, top[1]], { axis: 1 });
  const c = b.op('CumSum', [top[0], b.int64Const('axis', [1], [])]);
  b.node('Add', [g, b.op('Unsqueeze', [c, b.int64Const('axis', [2])])], {}, ['y']);
  const model = makeModel(b.graph('bad', [tensorValueInfo('x', ['N', 4])], [tensorValueInfo('y', ['N', 2, 2])]), 13);
  const dir = mkdtempSync(path.join(tmpdir(), 'rlab-gc-'));
  writeFileSync(path.join(dir, 'bad.onnx'), encodeModel(model));
  const bad = cli(['gradcheck', path.join(dir, 'bad.onnx')]);
  assert.equal(bad.code, 2);
  for (const op of ['CumSum', 'Einsum', 'Gather']) assert.match(bad.stderr, new RegExp(`${op}: ${op}_\\d+`));
  assert.match(bad.stderr, /spsa|square|gradient-free/i);
});

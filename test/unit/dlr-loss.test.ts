/**
 * The DLR losses of APGD (Croce & Hein 2020) built in ONNX (src/core/onnx/autodiff/loss.ts): the
 * loss value against the formula computed here in float64, the input gradient against central
 * finite differences of that JS loss over the FORWARD model in onnxruntime, the subgradient chosen
 * at tied logits, the class-count checks, and the OnnxClassifier feeding the target labels.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { buildGradientModel, type LossKind } from '../../src/core/onnx/autodiff';
import { lossNeedsTargets } from '../../src/core/onnx/autodiff/loss';
import { UserError } from '../../src/core/errors';
import { GraphBuilder, makeModel } from '../../src/core/onnx/builder';
import { tensorValueInfo } from '../../src/core/onnx/cut';
import type { ModelProto } from '../../src/core/onnx/proto';
import { OnnxClassifier } from '../../src/core/runtime/onnx-classifier';
import { createSession } from '../../src/core/runtime/session';
import { encodeModel } from '../../src/core/onnx/proto';
import { centralDifferences, f32, scaledMaxError, session, shapesOf } from '../helpers/gradcheck';
import { seededValues } from '../helpers/models';

const size = (dims: number[]) => dims.reduce((a, b) => a * b, 1);
const int64 = (v: number[]) => new ort.Tensor('int64', BigInt64Array.from(v, BigInt), [v.length]);

/** conv → tanh → avg pool → flatten → gemm, `classes` logits (smooth: no kinks inside the model). */
function smallClassifier(opset: number, classes: number): ModelProto {
  const b = new GraphBuilder();
  const w = (dims: number[], seed: number, scale: number) => b.floatConst('w', dims, seededValues(size(dims), seed, scale));
  const c = b.op('Tanh', [b.op('Conv', ['x', w([4, 2, 3, 3], 60, 0.8), w([4], 61, 0.5)], { pads: [1, 1, 1, 1] })]);
  const p = b.op('Flatten', [b.op('AveragePool', [c], { kernel_shape: [2, 2], strides: [2, 2] })]);
  b.node('Gemm', [p, w([classes, 16], 62, 1.5), w([classes], 63, 1)], { transB: 1 }, ['logits']);
  return makeModel(b.graph('clf', [tensorValueInfo('x', ['N', 2, 4, 4])], [tensorValueInfo('logits', ['N', classes])]), opset);
}

/** Identity on [N, C]: the input gradient is the logit gradient itself. */
function identityLogits(classes: number): ModelProto {
  const b = new GraphBuilder();
  b.node('Identity', ['x'], {}, ['logits']);
  return makeModel(b.graph('id', [tensorValueInfo('x', ['N', classes])], [tensorValueInfo('logits', ['N', classes])]), 13);
}

/** The DLR losses from the paper's formulas, in float64, summed over the n rows starting at `offset`. */
function jsDlr(kind: 'dlr' | 'dlr-targeted', z: ArrayLike<number>, offset: number, n: number, classes: number, labels: number[], targets: number[]): number {
  let total = 0;
  for (let i = 0; i < n; i++) {
    const row = Array.from({ length: classes }, (_, j) => z[offset + i * classes + j]);
    const sorted = [...row].sort((a, b) => b - a);
    const y = labels[i];
    if (kind === 'dlr') {
      const other = Math.max(...row.filter((_, j) => j !== y));
      total += -(row[y] - other) / (sorted[0] - sorted[2] + 1e-12);
    } else {
      total += -(row[y] - row[targets[i]]) / (sorted[0] - (sorted[2] + sorted[3]) / 2 + 1e-12);
    }
  }
  return total;
}

async function lossModel(model: ModelProto, kind: LossKind) {
  const gm = buildGradientModel(model, await shapesOf(model), { kind: 'loss', loss: kind });
  return { gm, s: await session(gm.model) };
}

for (const kind of ['dlr', 'dlr-targeted'] as const) {
  for (const opset of [7, 9, 13, 18]) {
    test(`loss ${kind} at opset ${opset}: value and input gradient vs central differences of the JS loss`, async () => {
      const classes = 6;
      const model = smallClassifier(opset, classes);
      const { gm, s } = await lossModel(model, kind);
      assert.equal(!!gm.targets, kind === 'dlr-targeted');
      const n = 4,
        dims = [n, 2, 4, 4];
      const x = seededValues(size(dims), 64, 1);
      // The true label is the top class in rows 0 and 2 (a correctly classified sample) and not in rows 1 and 3.
      const fwd = await session(model);
      const z0 = (await fwd.run({ x: f32(x, dims) })).logits.data as Float32Array;
      const order = (r: number) => Array.from({ length: classes }, (_, j) => j).sort((a, b) => z0[r * classes + b] - z0[r * classes + a]);
      const labels = [order(0)[0], order(1)[3], order(2)[0], order(3)[5]];
      const targets = [order(0)[1], order(1)[0], order(2)[4], order(3)[2]];
      // Finite differences cross no kink: the sorted logits are well apart.
      for (let r = 0; r < n; r++) {
        const o = order(r);
        for (let j = 0; j + 1 < 4; j++)
          assert.ok(z0[r * classes + o[j]] - z0[r * classes + o[j + 1]] > 0.02, `row ${r}: logits too close for finite differences`);
      }
      const feeds: Record<string, ort.Tensor> = { x: f32(x, dims), [gm.labels!]: int64(labels) };
      if (gm.targets) feeds[gm.targets] = int64(targets);
      const out = await s.run(feeds);
      const logits = out.logits.data as Float32Array;
      const loss = (out[gm.loss!].data as Float32Array)[0];
      const expected = jsDlr(kind, logits, 0, n, classes, labels, targets);
      assert.ok(Math.abs(loss - expected) <= 1e-5 * Math.max(1, Math.abs(expected)), `loss ${loss} vs ${expected}`);
      const fd = await centralDifferences(fwd, 'x', x, dims, 1e-3, (z, copy, per) => jsDlr(kind, z, copy * per, n, classes, labels, targets));
      const err = scaledMaxError(out[gm.grad].data as Float32Array, fd);
      assert.ok(err < 2e-3, `${kind}: gradient error ${err.toExponential(2)}`);
      await fwd.release();
      await s.release();
    });
  }
}

test('DLR gradient w.r.t. the logits is the formula, with the documented choice at ties (lower index first)', async () => {
  const classes = 5;
  const { gm: dlr, s: sd } = await lossModel(identityLogits(classes), 'dlr');
  const { gm: tgt, s: st } = await lossModel(identityLogits(classes), 'dlr-targeted');
  const rows = [
    [3, 1, 2, 0.5, -1], // no ties
    [2, 2, 1, 1, 0], // top two tied, third and fourth tied
    [1, 3, 3, 3, 0], // three tied at the top: D = 1e-12 in float32 arithmetic
    [0, 0, 0, 0, 0], // all tied
  ];
  const labels = [0, 1, 0, 4];
  const targets = [1, 0, 2, 3];
  const x = Float32Array.from(rows.flat());
  const outD = await sd.run({ x: f32(x, [4, classes]), [dlr.labels!]: int64(labels) });
  const outT = await st.run({ x: f32(x, [4, classes]), [tgt.labels!]: int64(labels), [tgt.targets!]: int64(targets) });
  const gD = outD[dlr.grad].data as Float32Array;
  const gT = outT[tgt.grad].data as Float32Array;
  rows.forEach((z, r) => {
    // Classes by decreasing logit, the lower index first among equals; j* the first argmax without y.
    const pi = Array.from({ length: classes }, (_, j) => j).sort((a, b) => z[b] - z[a] || a - b);
    const y = labels[r],
      t = targets[r];
    const jStar = pi.find((j) => j !== y)!;
    const f = Math.fround;
    {
      const D = f(f(z[pi[0]] - z[pi[2]]) + 1e-12),
        num = z[y] - z[jStar];
      const g = new Array(classes).fill(0);
      g[jStar] += 1 / D;
      g[y] -= 1 / D;
      g[pi[0]] += num / D / D;
      g[pi[2]] -= num / D / D;
      const got = Array.from(gD.subarray(r * classes, (r + 1) * classes));
      g.forEach((v, j) => assert.ok(Math.abs(got[j] - v) <= 1e-5 * Math.max(1, Math.abs(v)), `dlr row ${r} class ${j}: ${got[j]} vs ${v}`));
    }
    {
      const D = f(f(z[pi[0]] - f(f(z[pi[2]] + z[pi[3]]) * 0.5)) + 1e-12),
        num = z[y] - z[t];
      const g = new Array(classes).fill(0);
      g[t] += 1 / D;
      g[y] -= 1 / D;
      g[pi[0]] += num / D / D;
      g[pi[2]] -= (0.5 * num) / D / D;
      g[pi[3]] -= (0.5 * num) / D / D;
      const got = Array.from(gT.subarray(r * classes, (r + 1) * classes));
      g.forEach((v, j) => assert.ok(Math.abs(got[j] - v) <= 1e-5 * Math.max(1, Math.abs(v)), `dlr-targeted row ${r} class ${j}: ${got[j]} vs ${v}`));
    }
  });
  // The second row's subgradient is the gradient of the DLR piece with ordering 0 > 1 > 2 > 3 > 4:
  // one-sided differences that perturb the logits into that ordering agree with it.
  const base = rows[1],
    dir = [4e-3, 3e-3, 2e-3, 1e-3, 0];
  const h = 1e-3;
  const zPlus = Float32Array.from(base.map((v, j) => v + dir[j] + (j === 2 ? h : 0)));
  const zAt = Float32Array.from(base.map((v, j) => v + dir[j]));
  const oneSided = (jsDlr('dlr', zPlus, 0, 1, classes, [1], [0]) - jsDlr('dlr', zAt, 0, 1, classes, [1], [0])) / h;
  assert.ok(Math.abs(oneSided - gD[classes + 2]) < 1e-2 * Math.max(1, Math.abs(oneSided)), `tie piece: ${oneSided} vs ${gD[classes + 2]}`);
  await sd.release();
  await st.release();
});

test('DLR needs 3 classes, targeted DLR 4; only dlr-targeted takes a targets input', async () => {
  for (const [kind, ok, bad] of [
    ['dlr', 3, 2],
    ['dlr-targeted', 4, 3],
  ] as const) {
    const good = identityLogits(ok);
    assert.doesNotThrow(() =>
      buildGradientModel(
        good,
        new Map([
          ['x', ['N', ok]],
          ['logits', ['N', ok]],
        ]),
        { kind: 'loss', loss: kind },
      ),
    );
    const small = identityLogits(bad);
    assert.throws(
      () =>
        buildGradientModel(
          small,
          new Map([
            ['x', ['N', bad]],
            ['logits', ['N', bad]],
          ]),
          { kind: 'loss', loss: kind },
        ),
      (e: unknown) => e instanceof UserError && new RegExp(`${kind} loss needs at least ${ok} classes`).test(e.message),
    );
  }
  assert.deepEqual((['ce-sum', 'ce-mean', 'cw', 'dlr', 'dlr-targeted'] as LossKind[]).filter(lossNeedsTargets), ['dlr-targeted']);
});

test('OnnxClassifier: lossGradient feeds the target labels of dlr-targeted and refuses without them; dlr needs none', async () => {
  const classes = 6;
  const model = smallClassifier(13, classes);
  const shapes = await shapesOf(model);
  const options = { ep: 'cpu' as const, threads: 1 };
  const c = new OnnxClassifier({
    model,
    shapes,
    session: await createSession(encodeModel(model), options),
    input: 'x',
    output: 'logits',
    sampleDims: [2, 4, 4],
    numClasses: classes,
    sessionOptions: options,
  });
  try {
    const n = 3,
      x = seededValues(n * 32, 5, 1);
    const labels = Int32Array.from([0, 1, 2]);
    const targets = Int32Array.from([3, 4, 5]);
    const { gm, s } = await lossModel(model, 'dlr-targeted');
    const ref = await s.run({ x: f32(x, [n, 2, 4, 4]), [gm.labels!]: int64([...labels]), [gm.targets!]: int64([...targets]) });
    await s.release();
    const ours = await c.lossGradient(x, n, labels, 'dlr-targeted', targets);
    assert.deepEqual(Array.from(ours.grad), Array.from(ref[gm.grad].data as Float32Array));
    // Other targets, other gradient: the feed is read.
    const other = await c.lossGradient(x, n, labels, 'dlr-targeted', Int32Array.from([5, 5, 5]));
    assert.notDeepEqual(Array.from(other.grad), Array.from(ours.grad));
    await assert.rejects(c.lossGradient(x, n, labels, 'dlr-targeted'), /needs one target label per sample/);
    await assert.rejects(c.linfStep!(x, x, n, labels, 'dlr-targeted', { alpha: 0.1, eps: 0.1, range: [0, 1] }), /takes no target labels/);
    const dlr = await c.lossGradient(x, n, labels, 'dlr');
    assert.equal(dlr.grad.length, x.length);
    // The fused step works with dlr like with cw.
    const step = await c.linfStep!(x, x, n, labels, 'dlr', { alpha: 0.1, eps: 0.1, range: [-1, 1] });
    for (let i = 0; i < x.length; i++) assert.ok(Math.abs(step.next[i] - Math.min(1, Math.max(-1, x[i] + 0.1 * Math.sign(dlr.grad[i])))) < 1e-6);
  } finally {
    await c.release();
  }
});

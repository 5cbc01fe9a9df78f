/** Models built op by op for the tests, with seeded random weights. */
import { GraphBuilder, makeModel } from '../../src/core/onnx/builder';
import { tensorValueInfo } from '../../src/core/onnx/cut';
import type { ModelProto } from '../../src/core/onnx/proto';

/** A deterministic uniform(-scale, scale) sequence (a tiny LCG: tests need repeatability, not quality). */
export function seededValues(n: number, seed: number, scale = 0.5): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 2 ** 32) * 2 - 1) * scale;
  }
  return out;
}

/**
 * conv3x3(1→4) → relu → [residual block: conv3x3(4→4) → relu → conv3x3(4→4) → add(skip)] → relu
 * → global average pool → flatten → gemm(4→3). Input [N,1,8,8]. Inside the block no tensor is an
 * insertion point; the Add's output is.
 */
export function residualModel(): { model: ModelProto; names: Record<string, string> } {
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
  const stem = b.op('Conv', ['x', w('w0', [4, 1, 3, 3], 1), w('b0', [4], 2)], { pads: [1, 1, 1, 1] });
  const stemRelu = b.op('Relu', [stem]);
  const c1 = b.op('Conv', [stemRelu, w('w1', [4, 4, 3, 3], 3)], { pads: [1, 1, 1, 1] });
  const r1 = b.op('Relu', [c1]);
  const c2 = b.op('Conv', [r1, w('w2', [4, 4, 3, 3], 4)], { pads: [1, 1, 1, 1] });
  const add = b.op('Add', [c2, stemRelu]);
  const r2 = b.op('Relu', [add]);
  const pool = b.op('GlobalAveragePool', [r2]);
  const flat = b.op('Flatten', [pool]);
  b.node('Gemm', [flat, w('fc', [3, 4], 5), w('fcb', [3], 6)], { transB: 1 }, ['logits']);
  const graph = b.graph('residual', [tensorValueInfo('x', ['N', 1, 8, 8])], [tensorValueInfo('logits', ['N', 3])]);
  return { model: makeModel(graph, 13), names: { stem, stemRelu, c1, r1, c2, add, r2, pool, flat } };
}

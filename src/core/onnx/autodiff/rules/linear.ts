/**
 * Gemm and MatMul. With A' = op(A), B' = op(B) (transposed or not), Y = α·A'B' + βC gives
 * dA' = α·G·B'ᵀ and dB' = α·A'ᵀ·G; each is written as one Gemm with the transpose flags folded in.
 * MatMul follows numpy: batch dims broadcast (gradients summed back), 1-D operands promoted.
 */
import { attrFloat, attrInt } from '../../attributes';
import { floatAttr } from '../../builder';
import type { BackwardContext } from '../context';
import type { GradRule } from '../types';
import type { Dim } from '../../../../protocol/model';

function gemm(ctx: BackwardContext, a: string, b: string, transA: number, transB: number, alpha: number): string {
  // Gemm's C is required before opset 11: a scalar 0 with beta 0 stands in for it.
  const inputs = ctx.opset >= 11 ? [a, b] : [a, b, ctx.e.scalar(0)];
  return ctx.e.op('Gemm', inputs, { transA, transB, alpha: floatAttr('alpha', alpha), ...(ctx.opset >= 11 ? {} : { beta: floatAttr('beta', 0) }) });
}

const swapLast = (rank: number) => Array.from({ length: rank }, (_, i) => (i === rank - 1 ? rank - 2 : i === rank - 2 ? rank - 1 : i));

export const linearRules: Record<string, GradRule> = {
  Gemm: {
    diff: 'all',
    backward(node, [g], ctx) {
      const [a, b, c] = node.input!;
      const alpha = attrFloat(node, 'alpha', 1),
        beta = attrFloat(node, 'beta', 1);
      const ta = attrInt(node, 'transA', 0),
        tb = attrInt(node, 'transB', 0);
      const da = !ctx.needs(a) ? undefined : ta ? gemm(ctx, b, g!, tb, 1, alpha) : gemm(ctx, g!, b, 0, tb ? 0 : 1, alpha);
      const db = !ctx.needs(b) ? undefined : tb ? gemm(ctx, g!, a, 1, ta, alpha) : gemm(ctx, a, g!, ta ? 0 : 1, 0, alpha);
      const dc = ctx.needs(c) ? ctx.reduceTo(beta === 1 ? g! : ctx.e.mul(g!, ctx.e.scalar(beta)), ctx.dims(node.output![0]), c) : undefined;
      return [da, db, dc];
    },
  },
  MatMul: {
    diff: 'all',
    backward(node, [g], ctx) {
      const [a, b] = node.input!;
      const e = ctx.e;
      const ad = ctx.dims(a),
        bd = ctx.dims(b),
        gd = ctx.dims(node.output![0]);
      const ra = ad.length,
        rb = bd.length,
        rg = gd.length;
      let da: string | undefined;
      let db: string | undefined;
      if (ctx.needs(a)) {
        if (rb === 1) {
          // y = A·b: dA = g ⊗ b (outer product on the last axis); for a dot product g is a scalar.
          da = ra === 1 ? e.mul(g!, b) : e.mul(e.unsqueeze(g!, [rg]), b);
        } else {
          const bt = e.op('Transpose', [b], { perm: swapLast(rb) });
          if (ra === 1) {
            const t = e.op('MatMul', [e.unsqueeze(g!, [rg - 1]), bt]);
            da = ctx.reduceTo(t, [...gd.slice(0, -1), 1, ad[0]], a);
          } else {
            da = ctx.reduceTo(e.op('MatMul', [g!, bt]), [...gd.slice(0, -1), ad[ra - 1]] as Dim[], a);
          }
        }
      }
      if (ctx.needs(b)) {
        if (ra === 1) {
          // y = a·B: dB[..., k, n] = a[k]·g[..., n].
          db = rb === 1 ? e.mul(g!, a) : ctx.reduceTo(e.mul(e.unsqueeze(a, [1]), e.unsqueeze(g!, [rg - 1])), [...gd.slice(0, -1), ad[0], gd[rg - 1]], b);
        } else if (rb === 1) {
          const t = e.op('MatMul', [e.unsqueeze(g!, [rg - 1]), a]);
          db = ctx.reduceTo(t, [...gd.slice(0, -1), 1, ad[ra - 1]], b);
        } else {
          const at = e.op('Transpose', [a], { perm: swapLast(ra) });
          db = ctx.reduceTo(e.op('MatMul', [at, g!]), [...gd.slice(0, -2), bd[rb - 2], bd[rb - 1]], b);
        }
      }
      return [da, db];
    },
  },
};

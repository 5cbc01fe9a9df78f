/**
 * Normalisations in inference form. BatchNormalization uses running statistics, so it is a
 * per-channel affine map: dx = g·scale/√(var+ε). Instance and layer normalisation normalise with
 * the sample's own statistics over `axes`; with x̂ = (x-μ)·σ⁻¹ and ĝ = g·scale,
 *   dx = σ⁻¹·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))   (means over the normalised axes, population variance).
 * LayerNormalization returns μ and σ⁻¹ as optional outputs: the forward node is asked for them
 * instead of recomputing; InstanceNormalization recomputes them.
 */
import { attrFloat, attrInt } from '../../attributes';
import type { NodeProto } from '../../proto';
import type { BackwardContext } from '../context';
import { normAxis } from '../context';
import type { GradRule } from '../types';

function normalizedBackward(ctx: BackwardContext, xhat: string, invStd: string, ghat: string, axes: number[]): string {
  const e = ctx.e;
  const m1 = e.reduce('ReduceMean', ghat, axes, true);
  const m2 = e.reduce('ReduceMean', e.mul(ghat, xhat), axes, true);
  return e.mul(invStd, e.sub(e.sub(ghat, m1), e.mul(xhat, m2)));
}

/** A per-channel [C] tensor shaped [C, 1, …] to broadcast against [N, C, …] of rank `rank`. */
function perChannel(ctx: BackwardContext, t: string, channels: number, rank: number): string {
  return rank <= 2 ? t : ctx.e.reshape(t, ctx.e.ints([channels, ...new Array(rank - 2).fill(1)]));
}

export const normRules: Record<string, GradRule> = {
  BatchNormalization: {
    diff: [0],
    outputs: [0],
    check(node, info) {
      if (info.modelOpset >= 14 ? attrInt(node, 'training_mode', 0) !== 0 : (node.output ?? []).filter(Boolean).length > 1) return 'training mode';
      return undefined;
    },
    backward(node, [g], ctx) {
      const e = ctx.e;
      const [x, scale, , , variance] = node.input!;
      const eps = attrFloat(node, 'epsilon', 1e-5);
      const rank = ctx.dims(x).length;
      const s = ctx.constant(scale), v = ctx.constant(variance);
      const spatial = ctx.modelOpset >= 9 || attrInt(node, 'spatial', 1) === 1;
      let factor: string;
      const dims = ctx.dims(scale).map(Number);
      if (s && v) {
        factor = e.floats(dims, s.values.map((sc, i) => sc / Math.sqrt(Math.fround(v.values[i] + eps))), 'bn_factor');
      } else {
        factor = e.div(scale, e.op('Sqrt', [e.add(variance, e.scalar(eps))]));
      }
      // spatial=0 (opsets 7-8): statistics per (C, D1, …) already broadcast against [N, C, D1, …].
      return [e.mul(g!, spatial ? perChannel(ctx, factor, dims[0], rank) : factor)];
    },
  },
  InstanceNormalization: {
    diff: [0],
    backward(node, [g], ctx) {
      const e = ctx.e;
      const [x, scale] = node.input!;
      const rank = ctx.dims(x).length;
      const axes = Array.from({ length: rank - 2 }, (_, i) => i + 2);
      const mean = e.reduce('ReduceMean', x, axes, true);
      const centered = e.sub(x, mean);
      const variance = e.reduce('ReduceMean', e.mul(centered, centered), axes, true);
      const invStd = e.op('Reciprocal', [e.op('Sqrt', [e.add(variance, e.scalar(attrFloat(node, 'epsilon', 1e-5)))])]);
      const channels = ctx.dims(scale)[0] as number;
      const ghat = e.mul(g!, perChannel(ctx, scale, channels, rank));
      return [normalizedBackward(ctx, e.mul(centered, invStd), invStd, ghat, axes)];
    },
  },
  LayerNormalization: {
    diff: [0],
    outputs: [0],
    backward(node: NodeProto, [g], ctx) {
      const e = ctx.e;
      const [x, scale] = node.input!;
      const rank = ctx.dims(x).length;
      const axis = normAxis(attrInt(node, 'axis', -1), rank);
      const axes = Array.from({ length: rank - axis }, (_, i) => axis + i);
      const mean = ctx.forwardOutput(node, 1, 'ln_mean');
      const invStd = ctx.forwardOutput(node, 2, 'ln_inv_std');
      const xhat = e.mul(e.sub(x, mean), invStd);
      return [normalizedBackward(ctx, xhat, invStd, e.mul(g!, scale), axes)];
    },
  },
};

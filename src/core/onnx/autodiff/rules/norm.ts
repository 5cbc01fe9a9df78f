/**
 * Normalisations in inference form. BatchNormalization uses running statistics, so it is a
 * per-channel affine map: dx = g·scale/√(var+ε); its scale, shift, mean and variance get
 * gradients too when they are differentiated (sums over batch and space). Instance and layer normalisation normalise with
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
  // y = scale·(x − mean)·invStd + B per channel, invStd = 1/√(var + ε); every input may be differentiated.
  BatchNormalization: {
    diff: [0, 1, 2, 3, 4],
    outputs: [0],
    check(node, info) {
      if (info.modelOpset >= 14 ? attrInt(node, 'training_mode', 0) !== 0 : (node.output ?? []).filter(Boolean).length > 1) return 'training mode';
      return undefined;
    },
    backward(node, [g], ctx) {
      const e = ctx.e;
      const [x, scale, bias, mean, variance] = node.input!;
      const eps = attrFloat(node, 'epsilon', 1e-5);
      const rank = ctx.dims(x).length;
      const s = ctx.constant(scale),
        v = ctx.constant(variance);
      const spatial = ctx.modelOpset >= 9 || attrInt(node, 'spatial', 1) === 1;
      const dims = ctx.dims(scale).map(Number);
      // spatial=0 (opsets 7-8): statistics per (C, D1, …) already broadcast against [N, C, D1, …].
      const shaped = (t: string) => (spatial ? perChannel(ctx, t, dims[0], rank) : t);
      const axes = spatial ? [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)] : [0];
      const sumOver = (t: string) => e.reduce('ReduceSum', t, axes, false);
      let factorValue: string | undefined;
      const factor = () => {
        if (factorValue) return factorValue;
        if (s && v)
          return (factorValue = e.floats(
            dims,
            s.values.map((sc, i) => sc / Math.sqrt(Math.fround(v.values[i] + eps))),
            'bn_factor',
          ));
        return (factorValue = e.div(scale, e.op('Sqrt', [e.add(variance, e.scalar(eps))])));
      };
      const invStd = () =>
        v
          ? e.floats(
              dims,
              v.values.map((vi) => 1 / Math.sqrt(Math.fround(vi + eps))),
              'bn_inv_std',
            )
          : e.op('Reciprocal', [e.op('Sqrt', [e.add(variance, e.scalar(eps))])]);
      let centeredValue: string | undefined;
      const centered = () => (centeredValue ??= e.sub(x, shaped(mean)));
      let gSum: string | undefined;
      const sumG = () => (gSum ??= sumOver(g!));
      const dx = ctx.needs(x) ? e.mul(g!, shaped(factor())) : undefined;
      const dscale = ctx.needs(scale) ? e.mul(sumOver(e.mul(g!, centered())), invStd()) : undefined;
      const dbias = ctx.needs(bias) ? sumG() : undefined;
      const dmean = ctx.needs(mean) ? e.neg(e.mul(sumG(), factor())) : undefined;
      // d var = Σ g·(x − mean) · scale · (−½)(var + ε)^(−3/2).
      const dvar = ctx.needs(variance)
        ? e.mul(sumOver(e.mul(g!, centered())), e.mul(factor(), e.mul(e.op('Reciprocal', [e.add(variance, e.scalar(eps))]), e.scalar(-0.5))))
        : undefined;
      return [dx, dscale, dbias, dmean, dvar];
    },
  },
  // y = scale·x̂ + B per channel, x̂ normalised per sample and channel over space.
  InstanceNormalization: {
    diff: [0, 1, 2],
    backward(node, [g], ctx) {
      const e = ctx.e;
      const [x, scale, bias] = node.input!;
      const rank = ctx.dims(x).length;
      const axes = Array.from({ length: rank - 2 }, (_, i) => i + 2);
      const mean = e.reduce('ReduceMean', x, axes, true);
      const centered = e.sub(x, mean);
      const variance = e.reduce('ReduceMean', e.mul(centered, centered), axes, true);
      const invStd = e.op('Reciprocal', [e.op('Sqrt', [e.add(variance, e.scalar(attrFloat(node, 'epsilon', 1e-5)))])]);
      const channels = ctx.dims(scale)[0] as number;
      const xhat = e.mul(centered, invStd);
      const perSampleAxes = [0, ...axes];
      return [
        ctx.needs(x) ? normalizedBackward(ctx, xhat, invStd, e.mul(g!, perChannel(ctx, scale, channels, rank)), axes) : undefined,
        ctx.needs(scale) ? e.reduce('ReduceSum', e.mul(g!, xhat), perSampleAxes, false) : undefined,
        ctx.needs(bias) ? e.reduce('ReduceSum', g!, perSampleAxes, false) : undefined,
      ];
    },
  },
  // y = x̂·scale + B, scale and B broadcast over the leading axes.
  LayerNormalization: {
    diff: [0, 1, 2],
    outputs: [0],
    backward(node: NodeProto, [g], ctx) {
      const e = ctx.e;
      const [x, scale, bias] = node.input!;
      const rank = ctx.dims(x).length;
      const axis = normAxis(attrInt(node, 'axis', -1), rank);
      const axes = Array.from({ length: rank - axis }, (_, i) => axis + i);
      const mean = ctx.forwardOutput(node, 1, 'ln_mean');
      const invStd = ctx.forwardOutput(node, 2, 'ln_inv_std');
      const xhat = e.mul(e.sub(x, mean), invStd);
      const gd = ctx.dims(node.output![0]);
      return [
        ctx.needs(x) ? normalizedBackward(ctx, xhat, invStd, e.mul(g!, scale), axes) : undefined,
        ctx.needs(scale) ? ctx.reduceTo(e.mul(g!, xhat), gd, scale) : undefined,
        ctx.needs(bias) ? ctx.reduceTo(g!, gd, bias) : undefined,
      ];
    },
  },
};

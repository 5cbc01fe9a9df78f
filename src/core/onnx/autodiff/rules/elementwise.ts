/**
 * Elementwise ops: numpy-broadcasting arithmetic (gradients summed back over broadcast axes),
 * activations and pass-throughs. Masks are taken from the op's output where that is equivalent
 * (ReLU: y > 0 ⇔ x > 0), so the pre-activation tensor is not read again and onnxruntime can still
 * fuse Conv+ReLU / Conv+Clip in the forward.
 */
import { attrFloat, attrInt } from '../../attributes';
import { DataType, type NodeProto } from '../../proto';
import type { BackwardContext } from '../context';
import type { GradRule } from '../types';

type Rules = Record<string, GradRule>;

const out = (node: NodeProto) => node.output![0];
const inp = (node: NodeProto, k: number) => node.input?.[k] ?? '';

/** Binary ops: each operand's gradient reduced to its own (broadcast) shape. */
function binary(grads: (g: string, a: string, b: string, y: string, ctx: BackwardContext) => [(() => string)?, (() => string)?]): GradRule {
  return {
    diff: [0, 1],
    backward(node, [g], ctx) {
      const [a, b] = [inp(node, 0), inp(node, 1)];
      const gd = ctx.dims(out(node));
      const [fa, fb] = grads(g!, a, b, out(node), ctx);
      return [ctx.needs(a) && fa ? ctx.reduceTo(fa(), gd, a) : undefined, ctx.needs(b) && fb ? ctx.reduceTo(fb(), gd, b) : undefined];
    },
  };
}

/** Unary ops: dx = f(g, x, y). */
function unary(f: (g: string, x: string, y: string, ctx: BackwardContext, node: NodeProto) => string, extra: Partial<GradRule> = {}): GradRule {
  return { diff: [0], ...extra, backward: (node, [g], ctx) => [f(g!, inp(node, 0), out(node), ctx, node)] };
}

/**
 * Max / Min: the gradient goes to the first input (in input order) that attains the extremum, the
 * same tie rule as MaxPool and ArgMax, so a window max written as Max(x_0, …, x_k) differentiates
 * like the MaxPool it replaces. "Attains" is ¬(x < y) for Max (¬(x > y) for Min): Equal on floats
 * needs opset 11, Less/Greater work from opset 7.
 */
function extremum(beaten: 'Less' | 'Greater'): GradRule {
  return {
    diff: 'all',
    backward(node, [g], ctx) {
      const e = ctx.e;
      const y = out(node);
      const gd = ctx.dims(y);
      let taken: string | undefined;
      return (node.input ?? []).map((x) => {
        const attains = e.op('Not', [e.op(beaten, [x, y])]);
        const wins = taken ? e.and(attains, e.op('Not', [taken])) : attains;
        taken = taken ? e.op('Or', [taken, attains]) : attains;
        return ctx.needs(x) ? ctx.reduceTo(e.where(wins, g!), gd, x) : undefined;
      });
    },
  };
}

const gt = (ctx: BackwardContext, a: string, v: number) => ctx.e.op('Greater', [a, ctx.e.scalar(v)]);
const lt = (ctx: BackwardContext, a: string, v: number) => ctx.e.op('Less', [a, ctx.e.scalar(v)]);

export const elementwiseRules: Rules = {
  Add: binary((g) => [() => g, () => g]),
  Sub: binary((g, _a, _b, _y, ctx) => [() => g, () => ctx.e.neg(g)]),
  Mul: binary((g, a, b, _y, ctx) => [() => ctx.e.mul(g, b), () => ctx.e.mul(g, a)]),
  // d(a/b)/db = -a/b² = -y/b.
  Div: binary((g, _a, b, y, ctx) => [() => ctx.e.div(g, b), () => ctx.e.neg(ctx.e.div(ctx.e.mul(g, y), b))]),
  Sum: {
    diff: 'all',
    backward(node, [g], ctx) {
      const gd = ctx.dims(out(node));
      return (node.input ?? []).map((x) => (ctx.needs(x) ? ctx.reduceTo(g!, gd, x) : undefined));
    },
  },
  // The condition is piecewise constant: the gradient goes to the branch that was chosen.
  Where: {
    diff: [1, 2],
    backward(node, [g], ctx) {
      const [c, a, b] = node.input!;
      const gd = ctx.dims(out(node));
      return [
        undefined,
        ctx.needs(a) ? ctx.reduceTo(ctx.e.where(c, g!), gd, a) : undefined,
        ctx.needs(b) ? ctx.reduceTo(ctx.e.where(c, ctx.e.scalar(0), g!), gd, b) : undefined,
      ];
    },
  },
  Max: extremum('Less'),
  Min: extremum('Greater'),
  Expand: { diff: [0], backward: (node, [g], ctx) => [ctx.reduceTo(g!, ctx.dims(out(node)), inp(node, 0))] },
  // Pow(x, p) with p not depending on the input: dx = g·p·x^(p-1).
  Pow: {
    diff: [0],
    backward(node, [g], ctx) {
      const [x, p] = node.input!;
      const e = ctx.e;
      const c = ctx.constant(p);
      let dx: string;
      if (c && c.values.length === 1) {
        const v = c.values[0];
        dx =
          v === 1
            ? g!
            : v === 2
              ? e.mul(g!, e.mul(x, e.scalar(2)))
              : v === 0.5
                ? e.div(e.mul(g!, e.scalar(0.5)), out(node))
                : e.mul(g!, e.mul(e.scalar(v), e.op('Pow', [x, e.scalar(v - 1)])));
      } else {
        const pf = e.cast(p, DataType.FLOAT);
        dx = e.mul(g!, e.mul(pf, e.op('Pow', [x, e.sub(pf, e.scalar(1))])));
      }
      return [ctx.reduceTo(dx, ctx.dims(out(node)), x)];
    },
  },

  Neg: unary((g, _x, _y, ctx) => ctx.e.neg(g)),
  Identity: unary((g) => g),
  // Inference: Dropout is the identity (its mask output carries no gradient).
  Dropout: unary((g) => g, {
    nondiffOutputs: [1],
    outputs: [0],
    check(node, info) {
      const training = node.input?.[2];
      if (info.modelOpset < 12 || !training) return undefined;
      const v = info.constant(training);
      if (v ? v.values[0] !== 0 : info.strict) return 'training_mode is not a constant false';
      return undefined;
    },
  }),
  // Cast between float types would need typed backward constants; float→float32 is the identity.
  Cast: unary((g) => g, {
    check: (node) =>
      attrInt(node, 'to', DataType.FLOAT) === DataType.FLOAT
        ? undefined
        : `Cast to ${DataType[attrInt(node, 'to', 0)] ?? 'a non-float32 type'} on the differentiable path`,
  }),
  Relu: unary((g, _x, y, ctx) => ctx.e.where(gt(ctx, y, 0), g)),
  // For alpha ≥ 0, y > 0 ⇔ x > 0.
  LeakyRelu: unary((g, x, y, ctx, node) => {
    const alpha = attrFloat(node, 'alpha', 0.01);
    return ctx.e.where(gt(ctx, alpha >= 0 ? y : x, 0), g, ctx.e.mul(g, ctx.e.scalar(alpha)));
  }),
  // y = x > 0 ? x : slope·x (slope broadcast to x): d slope = g·x where x ≤ 0, summed back to the slope's shape.
  PRelu: {
    diff: [0, 1],
    backward(node, [g], ctx) {
      const [x, slope] = node.input!;
      const e = ctx.e;
      const positive = gt(ctx, x, 0);
      return [
        ctx.needs(x) ? e.where(positive, g!, e.mul(g!, slope)) : undefined,
        ctx.needs(slope) ? ctx.reduceTo(e.where(positive, e.scalar(0), e.mul(g!, x)), ctx.dims(out(node)), slope) : undefined,
      ];
    },
  },
  // x ≤ 0: y = α(eˣ-1), dy/dx = y + α.
  Elu: unary((g, x, y, ctx, node) => {
    const e = ctx.e;
    return e.where(gt(ctx, x, 0), g, e.mul(g, e.add(y, e.scalar(attrFloat(node, 'alpha', 1)))));
  }),
  // y = γ·(x > 0 ? x : α(eˣ-1)); x ≤ 0: dy/dx = y + γα.
  Selu: unary((g, x, y, ctx, node) => {
    const e = ctx.e;
    const alpha = attrFloat(node, 'alpha', 1.67326319217681884765625),
      gamma = attrFloat(node, 'gamma', 1.05070102214813232421875);
    return e.where(gt(ctx, x, 0), e.mul(g, e.scalar(gamma)), e.mul(g, e.add(y, e.scalar(gamma * alpha))));
  }),
  Sigmoid: unary((g, _x, y, ctx) => ctx.e.mul(g, ctx.e.mul(y, ctx.e.sub(ctx.e.scalar(1), y)))),
  Tanh: unary((g, _x, y, ctx) => ctx.e.mul(g, ctx.e.sub(ctx.e.scalar(1), ctx.e.mul(y, y)))),
  Softplus: unary((g, x, _y, ctx) => ctx.e.mul(g, ctx.e.op('Sigmoid', [x]))),
  // y = clip(αx+β, 0, 1): slope α where 0 < y < 1.
  HardSigmoid: unary((g, _x, y, ctx, node) => {
    const e = ctx.e;
    return e.where(e.and(gt(ctx, y, 0), lt(ctx, y, 1)), e.mul(g, e.scalar(attrFloat(node, 'alpha', 0.2))));
  }),
  // y = x·clip(x/6 + 1/2, 0, 1): dy/dx = 0 below -3, 1 above 3, x/3 + 1/2 between.
  HardSwish: unary((g, x, _y, ctx) => {
    const e = ctx.e;
    const mid = e.mul(g, e.add(e.mul(x, e.scalar(1 / 3)), e.scalar(0.5)));
    return e.where(lt(ctx, x, -3), e.scalar(0), e.where(gt(ctx, x, 3), g, mid));
  }),
  // Gradient passes where the output is strictly inside (min, max). Bounds are attributes before opset 11, optional inputs from 11.
  Clip: {
    diff: [0],
    backward(node, [g], ctx) {
      const e = ctx.e;
      const y = out(node);
      const conds: string[] = [];
      if (ctx.modelOpset < 11) {
        const min = node.attribute?.find((a) => a.name === 'min')?.f;
        const max = node.attribute?.find((a) => a.name === 'max')?.f;
        if (min !== undefined) conds.push(gt(ctx, y, min));
        if (max !== undefined) conds.push(lt(ctx, y, max));
      } else {
        const [, min, max] = node.input!;
        if (min) conds.push(e.op('Greater', [y, min]));
        if (max) conds.push(e.op('Less', [y, max]));
      }
      if (conds.length === 0) return [g];
      return [e.where(conds.length === 2 ? e.and(conds[0], conds[1]) : conds[0], g!)];
    },
  },
  Sqrt: unary((g, _x, y, ctx) => ctx.e.div(ctx.e.mul(g, ctx.e.scalar(0.5)), y)),
  Exp: unary((g, _x, y, ctx) => ctx.e.mul(g, y)),
  Log: unary((g, x, _y, ctx) => ctx.e.div(g, x)),
  Reciprocal: unary((g, _x, y, ctx) => ctx.e.neg(ctx.e.mul(g, ctx.e.mul(y, y)))),
  Abs: unary((g, x, _y, ctx) => ctx.e.where(lt(ctx, x, 0), ctx.e.neg(g), g)),
};

/**
 * One L∞ ascent step of BIM/PGD appended to a loss-gradient model, so an attack iteration is a
 * single onnxruntime run with no gradient round trip through JavaScript:
 *
 *   next = clip(clip(x + α·sign(∇ₓL), x0 − ε, x0 + ε), lo, hi)
 *
 * the same order of clips as attacks/common.ts (ascentStep, then project). A negative α descends
 * (targeted attacks). Float32 arithmetic, as in onnxruntime and PyTorch; the JavaScript path rounds
 * once from float64, so the two can differ in the last bit of a coordinate.
 */
import { tensorValueInfo } from '../cut';
import { tensorNames, unusedPrefix } from '../graph-utils';
import { GraphBuilder } from '../builder';
import { DataType, opsetVersion } from '../proto';
import type { GradientModel } from './types';

export interface LinfStepModel extends GradientModel {
  /** Extra inputs: the clean batch (same shape as the input) and float32 scalars. */
  x0: string;
  alpha: string;
  eps: string;
  lo: string;
  hi: string;
  /** Output: the next iterate, same shape as the input. */
  next: string;
}

/** Sign exists from opset 9: older models keep the JavaScript step (undefined). */
export function withLinfStep(g: GradientModel, inputDims: (number | string)[]): LinfStepModel | undefined {
  if (!g.labels || opsetVersion(g.model) < 9) return undefined;
  const graph = g.model.graph!;
  const prefix = unusedPrefix(tensorNames(graph), 'step');
  const [x0, alpha, eps, lo, hi, next] = ['x0', 'alpha', 'eps', 'lo', 'hi', 'next'].map((n) => prefix + n);
  const b = new GraphBuilder(prefix);
  const stepped = b.op('Add', [g.input, b.op('Mul', [b.op('Sign', [g.grad]), alpha])]);
  const inBall = b.op('Min', [b.op('Max', [stepped, b.op('Sub', [x0, eps])]), b.op('Add', [x0, eps])]);
  b.node('Min', [b.op('Max', [inBall, lo]), hi], {}, [next]);
  const scalarInputs = [alpha, eps, lo, hi].map((n) => tensorValueInfo(n, [], DataType.FLOAT));
  return {
    ...g,
    x0,
    alpha,
    eps,
    lo,
    hi,
    next,
    model: {
      ...g.model,
      graph: {
        ...graph,
        node: [...(graph.node ?? []), ...b.nodes],
        input: [...(graph.input ?? []), tensorValueInfo(x0, inputDims), ...scalarInputs],
        output: [...(graph.output ?? []), tensorValueInfo(next, inputDims)],
      },
    },
  };
}

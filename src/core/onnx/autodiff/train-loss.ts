/**
 * Training losses: scalar objectives of a model's output y and a target input, emitted in ONNX
 * with their gradient dL/dy, for buildObjectiveGradientModel (parameter gradients) and the fused
 * training step (train-step.ts). Means, as Keras, TensorFlow.js and PyTorch reduce by default:
 *   mse         L = 1/|y| · Σ (y − t)²              dL/dy = 2(y − t)/|y|      t float, shaped like y
 *   softmax-ce  L = 1/N · Σᵢ −log softmax(yᵢ)[lᵢ]    dL/dy = (softmax(y) − onehot(l))/N
 *                                                     l int64 [N] class indices, y [N, C] logits
 * |y| and N are read from the runtime shape, so one model serves every batch size. The one-hot is
 * Equal(labels, range(C)), standard ops at every opset from 7. Adding a loss: one more case here.
 *
 *   softmax-ce-isometric  (the metric-preservation loss of arXiv:2211.01236, as its code
 *   MetricPreservationLoss computes it; docs/papers.md §4). y [N, C + H] is the logits (first C
 *   columns) beside the representation z (the other H), as the isometric head's training model
 *   concatenates them; a second input x [N, D] holds the flattened network inputs:
 *     L = CE(y[:, :C], l) + λ1/N² · Σᵢⱼ Mᵢⱼ (λ2‖zᵢ − zⱼ‖ − ‖xᵢ − xⱼ‖)²,   Mᵢⱼ = [lᵢ = lⱼ]
 *     dL/dz = z ⊙ rowsum(K) − K·z,   Kᵢⱼ = 4λ1λ2/N² · Mᵢⱼ (λ2‖zᵢ − zⱼ‖ − ‖xᵢ − xⱼ‖) / ‖zᵢ − zⱼ‖
 *   (0 where ‖zᵢ − zⱼ‖ = 0, the diagonal: its residual is 0 too, and PyTorch's norm has a zero
 *   subgradient there). Distances are of explicit differences [N, N, ·], not of a Gram matrix,
 *   whose cancellation would cost float32 digits.
 */
import { UserError } from '../../errors';
import { tensorValueInfo } from '../cut';
import { DataType } from '../proto';
import type { ObjectiveEmission } from './build';
import type { BackwardContext } from './context';

export type TrainingLoss = { kind: 'mse' } | { kind: 'softmax-ce' } | IsometricTrainingLoss;

/** Softmax cross-entropy plus the metric-preservation term (see the header). */
export interface IsometricTrainingLoss {
  kind: 'softmax-ce-isometric';
  /** C: the first C columns of the output are the logits, the rest the representation z. */
  classes: number;
  /** D: values per sample of the auxiliary input x (the flattened network input). */
  inputSize: number;
  /** λ1, the weight of the metric term. */
  weight: number;
  /** λ2, the scale of the representation distances. */
  scale: number;
}

/** The dtype of the loss's target input: float (shaped like the output) or int64 class indices [N]. */
export function lossTargetType(loss: TrainingLoss): 'float32' | 'int64' {
  return loss.kind === 'softmax-ce' || loss.kind === 'softmax-ce-isometric' ? 'int64' : 'float32';
}

/** Name prefix of the auxiliary input (the isometric loss's x); the trainer feeds it per batch. */
export const AUX_INPUT_BASE = 'isometric_x';

/** Emits `loss` of output `y`; its target input is named by `unique('target')`. */
export function emitTrainingLoss(ctx: BackwardContext, y: string, loss: TrainingLoss, unique: (base: string) => string): ObjectiveEmission {
  const e = ctx.e;
  const dims = ctx.dims(y);
  const rank = dims.length;
  const allAxes = Array.from({ length: rank }, (_, i) => i);
  switch (loss.kind) {
    case 'mse': {
      const target = unique('target');
      const diff = e.sub(y, target);
      return {
        loss: e.reduce('ReduceMean', e.mul(diff, diff), allAxes, false),
        inputs: [tensorValueInfo(target, dims)],
        doutput: () => e.div(e.mul(diff, e.scalar(2)), e.cast(e.op('Size', [y]), DataType.FLOAT)),
      };
    }
    case 'softmax-ce': {
      const classes = dims[1];
      if (rank !== 2 || typeof classes !== 'number') {
        throw new UserError(`The softmax cross-entropy loss needs logits of shape [N, classes]; '${y}' has shape [${dims.join(', ')}].`);
      }
      const labels = unique('labels');
      const range = e.ints(
        Array.from({ length: classes }, (_, i) => i),
        [1, classes],
      );
      const onehot = e.cast(e.op('Equal', [e.unsqueeze(labels, [1]), range]), DataType.FLOAT);
      const logp = e.op('LogSoftmax', [y], { axis: 1 });
      const perSample = e.reduce('ReduceSum', e.mul(logp, onehot), [1], false);
      return {
        loss: e.neg(e.reduce('ReduceMean', perSample, [0], false)),
        inputs: [tensorValueInfo(labels, [dims[0]], DataType.INT64)],
        doutput: () => {
          const n = e.cast(e.op('Gather', [e.shapeOf(y), e.ints([0], [])]), DataType.FLOAT);
          return e.div(e.sub(e.op('Exp', [logp]), onehot), n);
        },
      };
    }
    case 'softmax-ce-isometric':
      return emitIsometric(ctx, y, loss, unique);
    default:
      throw new UserError(`Unknown training loss '${(loss as { kind: string }).kind}'.`, "Use 'mse' or 'softmax-ce'.");
  }
}

function emitIsometric(ctx: BackwardContext, y: string, loss: IsometricTrainingLoss, unique: (base: string) => string): ObjectiveEmission {
  const e = ctx.e;
  const dims = ctx.dims(y);
  const C = loss.classes;
  const width = dims[1];
  if (dims.length !== 2 || typeof width !== 'number' || width <= C) {
    throw new UserError(
      `The isometric loss needs an output [N, classes + hidden] (logits beside the representation); '${y}' has shape [${dims.join(', ')}] for ${C} classes.`,
    );
  }
  const labels = unique('labels');
  const x = unique(AUX_INPUT_BASE);
  const logits = e.slice(y, [0], [C], [1]);
  const z = e.slice(y, [C], [width], [1]);
  // Cross-entropy, as the softmax-ce case.
  const onehot = e.cast(
    e.op('Equal', [
      e.unsqueeze(labels, [1]),
      e.ints(
        Array.from({ length: C }, (_, i) => i),
        [1, C],
      ),
    ]),
    DataType.FLOAT,
  );
  const logp = e.op('LogSoftmax', [logits], { axis: 1 });
  const ce = e.neg(e.reduce('ReduceMean', e.reduce('ReduceSum', e.mul(logp, onehot), [1], false), [0], false));
  // Pairwise distances ‖aᵢ − aⱼ‖ as [N, N].
  const distances = (a: string) => {
    const d = e.sub(e.unsqueeze(a, [1]), e.unsqueeze(a, [0]));
    return e.op('Sqrt', [e.reduce('ReduceSum', e.mul(d, d), [2], false)]);
  };
  const dz = distances(z);
  const dx = distances(x);
  const same = e.cast(e.op('Equal', [e.unsqueeze(labels, [1]), e.unsqueeze(labels, [0])]), DataType.FLOAT);
  const residual = e.sub(e.mul(dz, e.scalar(loss.scale)), dx);
  const n = e.cast(e.op('Gather', [e.shapeOf(y), e.ints([0], [])]), DataType.FLOAT);
  const n2 = e.mul(n, n);
  const masked = e.mul(same, residual);
  const sumSq = e.reduce('ReduceSum', e.mul(masked, residual), [0, 1], false);
  const iso = e.div(e.mul(sumSq, e.scalar(loss.weight)), n2);
  return {
    loss: e.add(ce, iso),
    inputs: [tensorValueInfo(labels, [dims[0]], DataType.INT64), tensorValueInfo(x, [dims[0], loss.inputSize])],
    doutput: () => {
      const dlogits = e.div(e.sub(e.op('Exp', [logp]), onehot), n);
      // K = 4λ1λ2/N² · M·r / ‖zᵢ − zⱼ‖, zero where the distance is zero (there r = 0 as well).
      const safe = e.op('Max', [dz, e.scalar(1e-30)]);
      const k = e.div(e.mul(e.div(masked, safe), e.scalar(4 * loss.weight * loss.scale)), n2);
      const dzOut = e.sub(e.mul(z, e.reduce('ReduceSum', k, [1], true)), e.op('MatMul', [k, z]));
      return e.op('Concat', [dlogits, dzOut], { axis: 1 });
    },
  };
}

/** The loss as an Objective for buildObjectiveGradientModel. */
export function trainingObjective(loss: TrainingLoss) {
  return (ctx: BackwardContext, y: string, unique: (base: string) => string): ObjectiveEmission => emitTrainingLoss(ctx, y, loss, unique);
}

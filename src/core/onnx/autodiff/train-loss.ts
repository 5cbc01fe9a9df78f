/**
 * Training losses: scalar objectives of a model's output y and a target input, emitted in ONNX
 * with their gradient dL/dy, for buildObjectiveGradientModel (parameter gradients) and the fused
 * training step (train-step.ts). Means, as Keras, TensorFlow.js and PyTorch reduce by default:
 *   mse         L = 1/|y| · Σ (y − t)²              dL/dy = 2(y − t)/|y|      t float, shaped like y
 *   softmax-ce  L = 1/N · Σᵢ −log softmax(yᵢ)[lᵢ]    dL/dy = (softmax(y) − onehot(l))/N
 *                                                     l int64 [N] class indices, y [N, C] logits
 * |y| and N are read from the runtime shape, so one model serves every batch size. The one-hot is
 * Equal(labels, range(C)), standard ops at every opset from 7. Adding a loss: one more case here.
 */
import { UserError } from '../../errors';
import { tensorValueInfo } from '../cut';
import { DataType } from '../proto';
import type { ObjectiveEmission } from './build';
import type { BackwardContext } from './context';

export type TrainingLoss = { kind: 'mse' } | { kind: 'softmax-ce' };

/** The dtype of the loss's target input: float (shaped like the output) or int64 class indices [N]. */
export function lossTargetType(loss: TrainingLoss): 'float32' | 'int64' {
  return loss.kind === 'softmax-ce' ? 'int64' : 'float32';
}

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
    default:
      throw new UserError(`Unknown training loss '${(loss as { kind: string }).kind}'.`, "Use 'mse' or 'softmax-ce'.");
  }
}

/** The loss as an Objective for buildObjectiveGradientModel. */
export function trainingObjective(loss: TrainingLoss) {
  return (ctx: BackwardContext, y: string, unique: (base: string) => string): ObjectiveEmission => emitTrainingLoss(ctx, y, loss, unique);
}

/**
 * Losses on logits z [N, C] with int64 labels y [N], and their gradient with respect to z, built
 * in ONNX so one run returns logits, loss and input gradient.
 *   ce-sum  = Σᵢ −log softmax(zᵢ)[yᵢ]        dz = softmax(z) − onehot(y)
 *   ce-mean = ce-sum / N                      dz = (softmax(z) − onehot(y)) / N
 *   cw      = Σᵢ (max_{j≠yᵢ} zᵢⱼ − zᵢ,yᵢ)     dz = onehot(argmax_{j≠y} z) − onehot(y)  (first argmax: a subgradient at ties)
 * The one-hot is Equal(labels, range(C)): standard ops at every opset from 7.
 */
import { UserError } from '../../errors';
import { DataType } from '../proto';
import type { BackwardContext } from './context';
import type { LossKind } from './types';

export function emitLoss(ctx: BackwardContext, logits: string, kind: LossKind, labels: string): { loss: string; dlogits: string } {
  const e = ctx.e;
  const dims = ctx.dims(logits);
  const classes = dims[1];
  if (dims.length !== 2 || typeof classes !== 'number') {
    throw new UserError(`The ${kind} loss needs logits of shape [N, classes]; output '${logits}' has shape [${dims.join(', ')}].`, 'Pick the logits output, or use the vjp target.');
  }
  const range = e.ints(Array.from({ length: classes }, (_, i) => i), [1, classes]);
  const onehot = e.cast(e.op('Equal', [e.unsqueeze(labels, [1]), range]), DataType.FLOAT);
  if (kind === 'cw') {
    // Excluding the true class: push its logit down by 1e30 (other entries are unchanged exactly).
    const others = e.sub(logits, e.mul(onehot, e.scalar(1e30)));
    const best = e.reduce('ReduceMax', others, [1], true);
    const trueLogit = e.reduce('ReduceSum', e.mul(logits, onehot), [1], true);
    const loss = e.reduce('ReduceSum', e.sub(best, trueLogit), [0, 1], false);
    const first = e.op('ArgMax', [others], { axis: 1, keepdims: 1 });
    const dlogits = e.sub(e.cast(e.op('Equal', [first, range]), DataType.FLOAT), onehot);
    return { loss, dlogits };
  }
  const logp = e.op('LogSoftmax', [logits], { axis: 1 });
  const perSample = e.neg(e.reduce('ReduceSum', e.mul(logp, onehot), [1], false));
  const diff = e.sub(e.op('Exp', [logp]), onehot);
  if (kind === 'ce-sum') return { loss: e.reduce('ReduceSum', perSample, [0], false), dlogits: diff };
  const n = e.cast(e.op('Gather', [e.shapeOf(logits), e.ints([0], [])]), DataType.FLOAT);
  return { loss: e.reduce('ReduceMean', perSample, [0], false), dlogits: e.div(diff, n) };
}

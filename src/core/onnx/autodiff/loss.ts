/**
 * Losses on logits z [N, C] with int64 labels y [N], and their gradient with respect to z, built
 * in ONNX so one run returns logits, loss and input gradient.
 *   ce-sum  = Σᵢ −log softmax(zᵢ)[yᵢ]        dz = softmax(z) − onehot(y)
 *   ce-mean = ce-sum / N                      dz = (softmax(z) − onehot(y)) / N
 *   cw      = Σᵢ (max_{j≠yᵢ} zᵢⱼ − zᵢ,yᵢ)     dz = onehot(argmax_{j≠y} z) − onehot(y)  (first argmax: a subgradient at ties)
 * and the Difference of Logits Ratio losses of Croce & Hein (ICML 2020), π the classes by
 * decreasing logit, m = max_{j≠y} z_j reached at j*:
 *   dlr          = Σᵢ −(z_y − m) / D,  D = z_π1 − z_π3 + 1e-12                  (C ≥ 3)
 *                  dz = (onehot(j*) − onehot(y)) / D + (z_y − m)/D² · (onehot(π1) − onehot(π3))
 *   dlr-targeted = Σᵢ −(z_y − z_t) / D,  D = z_π1 − (z_π3 + z_π4)/2 + 1e-12       (C ≥ 4; t from a second int64 input)
 *                  dz = (onehot(t) − onehot(y)) / D + (z_y − z_t)/D² · (onehot(π1) − ½ onehot(π3) − ½ onehot(π4))
 * π is taken by repeated ArgMax (first index) with the classes found so far masked out, i.e. a
 * descending sort that puts the lower index first among equal logits; j* is the first argmax of
 * the logits without y. At ties every one of these choices is the gradient of the DLR piece for
 * one fixed ordering of the classes, so dz is an element of the (Clarke) generalised gradient; away
 * from ties it is the gradient.
 * The one-hot is Equal(labels, range(C)): standard ops at every opset from 7.
 */
import { UserError } from '../../errors';
import { DataType } from '../proto';
import type { BackwardContext } from './context';
import type { LossKind } from './types';

/** Classes a loss needs at least (DLR divides by a gap between sorted logits). */
const MIN_CLASSES: Partial<Record<LossKind, number>> = { dlr: 3, 'dlr-targeted': 4 };

/** Losses that read a second int64 input of target labels. */
export function lossNeedsTargets(kind: LossKind): boolean {
  return kind === 'dlr-targeted';
}

/** `targets`: the int64 [N] target-label input that 'dlr-targeted' reads (buildGradientModel declares it). */
export function emitLoss(ctx: BackwardContext, logits: string, kind: LossKind, labels: string, targets?: string): { loss: string; dlogits: string } {
  const e = ctx.e;
  const dims = ctx.dims(logits);
  const classes = dims[1];
  if (dims.length !== 2 || typeof classes !== 'number') {
    throw new UserError(
      `The ${kind} loss needs logits of shape [N, classes]; output '${logits}' has shape [${dims.join(', ')}].`,
      'Pick the logits output, or use the vjp target.',
    );
  }
  const minClasses = MIN_CLASSES[kind];
  if (minClasses !== undefined && classes < minClasses) {
    throw new UserError(`The ${kind} loss needs at least ${minClasses} classes; output '${logits}' has ${classes}.`, "Use the 'ce-sum' or 'cw' loss.");
  }
  const range = e.ints(
    Array.from({ length: classes }, (_, i) => i),
    [1, classes],
  );
  const oneHotOf = (indices: string) => e.cast(e.op('Equal', [indices, range]), DataType.FLOAT);
  const onehot = oneHotOf(e.unsqueeze(labels, [1]));
  // Excluding classes: push their logits down by 1e30 (other entries are unchanged exactly).
  const big = e.scalar(1e30);
  const without = (z: string, mask: string) => e.sub(z, e.mul(mask, big));
  const pick = (mask: string) => e.reduce('ReduceSum', e.mul(logits, mask), [1], true); // [N, 1]
  if (kind === 'cw') {
    const others = without(logits, onehot);
    const best = e.reduce('ReduceMax', others, [1], true);
    const trueLogit = e.reduce('ReduceSum', e.mul(logits, onehot), [1], true);
    const loss = e.reduce('ReduceSum', e.sub(best, trueLogit), [0, 1], false);
    const first = e.op('ArgMax', [others], { axis: 1, keepdims: 1 });
    const dlogits = e.sub(e.cast(e.op('Equal', [first, range]), DataType.FLOAT), onehot);
    return { loss, dlogits };
  }
  if (kind === 'dlr' || kind === 'dlr-targeted') {
    // The top 3 (dlr) or 4 (dlr-targeted) classes, one ArgMax at a time.
    const sorted: string[] = [];
    let rest = logits;
    for (let r = 0; r < minClasses!; r++) {
      const mask = oneHotOf(e.op('ArgMax', [rest], { axis: 1, keepdims: 1 }));
      sorted.push(mask);
      if (r + 1 < minClasses!) rest = without(rest, mask);
    }
    // dD: the gradient of the denominator's logit gap.
    const dGap = kind === 'dlr' ? e.sub(sorted[0], sorted[2]) : e.sub(sorted[0], e.mul(e.add(sorted[2], sorted[3]), e.scalar(0.5)));
    const gap = e.add(e.reduce('ReduceSum', e.mul(logits, dGap), [1], true), e.scalar(1e-12)); // D, [N, 1]
    // The numerator's other class: j* = argmax_{j≠y} (dlr) or the target t (dlr-targeted).
    let other: string;
    if (kind === 'dlr') {
      other = oneHotOf(e.op('ArgMax', [without(logits, onehot)], { axis: 1, keepdims: 1 }));
    } else {
      if (!targets) throw new Error('the dlr-targeted loss needs a target-label input');
      other = oneHotOf(e.unsqueeze(targets, [1]));
    }
    const diff = e.sub(pick(onehot), pick(other)); // z_y − z_other, [N, 1]
    const perSample = e.neg(e.div(diff, gap));
    const loss = e.reduce('ReduceSum', perSample, [0, 1], false);
    // d(−diff/D) = −d(diff)/D + diff/D² · dD, d(diff) = onehot(y) − onehot(other).
    const dlogits = e.add(e.div(e.sub(other, onehot), gap), e.mul(e.div(e.div(diff, gap), gap), dGap));
    return { loss, dlogits };
  }
  const logp = e.op('LogSoftmax', [logits], { axis: 1 });
  const perSample = e.neg(e.reduce('ReduceSum', e.mul(logp, onehot), [1], false));
  const diff = e.sub(e.op('Exp', [logp]), onehot);
  if (kind === 'ce-sum') return { loss: e.reduce('ReduceSum', perSample, [0], false), dlogits: diff };
  const n = e.cast(e.op('Gather', [e.shapeOf(logits), e.ints([0], [])]), DataType.FLOAT);
  return { loss: e.reduce('ReduceMean', perSample, [0], false), dlogits: e.div(diff, n) };
}

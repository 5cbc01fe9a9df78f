/** The public types of the ONNX autodiff and the shape of a gradient rule. */
import type { ModelProto, NodeProto } from '../proto';
import type { BackwardContext } from './context';

/** See loss.ts. 'dlr-targeted' needs a second int64 input of target labels (GradientModel.targets). */
export type LossKind = 'ce-sum' | 'ce-mean' | 'cw' | 'dlr' | 'dlr-targeted';
export type GradientTarget = { kind: 'vjp' } | { kind: 'loss'; loss: LossKind };

export interface GradientModel {
  /** One model: forward + backward. */
  model: ModelProto;
  /** The model's (single) float input, name unchanged. */
  input: string;
  /** The forward output (logits), name unchanged, still an output. */
  output: string;
  /** Output: d/d input, same shape as the input. */
  grad: string;
  /** vjp: extra float input dy, same shape as the output: grad = d<dy, output>/d input. */
  cotangent?: string;
  /** loss: extra int64 input [N] of class indices. */
  labels?: string;
  /** loss 'dlr-targeted': extra int64 input [N] of target class indices (declared by buildGradientModel). */
  targets?: string;
  /** loss: output, the scalar loss value. */
  loss?: string;
}

export interface GradientOptions {
  input?: string;
  output?: string;
}

export interface UnsupportedOp {
  op: string;
  nodes: string[];
}

export type { CheckInfo, State } from './state';
import type { CheckInfo } from './state';

export interface GradRule {
  /** Input slots gradients flow into; a differentiable tensor in any other slot makes the node unsupported. */
  diff: number[] | 'all';
  /** Input slots that must not depend on the input at all (their values are read at build time or define the map). */
  constant?: number[];
  /** Outputs that are piecewise constant (indices, masks): they carry no gradient. */
  nondiffOutputs?: number[];
  /** Outputs whose gradient `backward` handles (default: all differentiable outputs). */
  outputs?: number[];
  /** Why this node cannot be differentiated, or undefined. */
  check?(node: NodeProto, info: CheckInfo): string | undefined;
  /** An opset the backward wants (e.g. 16 for ScatterElements' add reduction); the model may be raised to it. */
  wantsOpset?(node: NodeProto, info: CheckInfo): number | undefined;
  /**
   * Emits the backward nodes. `gy[k]` is the gradient of output k (undefined if none reaches it).
   * Returns the gradient of each input slot (undefined where `ctx.needs(input)` is false).
   */
  backward(node: NodeProto, gy: (string | undefined)[], ctx: BackwardContext): (string | undefined)[];
}

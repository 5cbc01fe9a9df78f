/** The public types of the ONNX autodiff and the shape of a gradient rule. */
import type { Dim } from '../../model/shapes';
import type { ModelProto, NodeProto } from '../proto';
import type { ConstTensor } from './constants';
import type { BackwardContext } from './context';

export type LossKind = 'ce-sum' | 'ce-mean' | 'cw';
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

/** 'diff': depends differentiably on the input; 'nondiff': depends on it piecewise-constantly (masks, indices). Constants have no state. */
export type State = 'diff' | 'nondiff';

/** What a rule may ask while checking a node (before any work; shapes may be unknown). */
export interface CheckInfo {
  /** The model's own opset. */
  readonly modelOpset: number;
  /** Static dims of a tensor (batch symbolic), undefined when unknown. */
  shape(name: string): Dim[] | undefined;
  /** A constant tensor's value, folded at build time; undefined if not constant or not foldable. */
  constant(name: string): ConstTensor | undefined;
  /** True when shapes are known: checks that need shapes or folded values may refuse; otherwise they must be lenient. */
  readonly strict: boolean;
}

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

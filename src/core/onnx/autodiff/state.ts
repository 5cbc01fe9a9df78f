/** The analysis states and the check-time view of the graph, shared by the rules and the backward context. */
import type { Dim } from '../../../protocol/model';
import type { ConstTensor } from './constants';

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

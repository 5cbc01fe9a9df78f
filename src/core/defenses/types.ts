/**
 * Defenses are ONNX graphs. A fitted defense is a standalone ONNX model that the pipeline splices
 * between the head (input → T) and the tail (T → logits) of the cut classifier, so that the
 * defended classifier is ONE ONNX model: it runs on any execution provider, it exports as is, and
 * its true ('direct') gradient comes from the same autodiff as the undefended model's.
 */
import type { ModelProto } from '../onnx/proto';

/** Tensor names a defense model uses for its inputs and outputs. */
export const DEFENSE_IO = {
  /** Input: the activation at the insertion point T, [N, ...shape of T]. */
  activation: 'defense_activation',
  /** Input (after-tail defenses only): the undefended tail's logits for the same activation, [N, C]. */
  logits: 'defense_logits',
  /** Output (before-tail): the defended activation, same shape as the input activation; the tail runs on it. */
  activationOut: 'defense_activation_out',
  /** Output (after-tail): what the pipeline outputs instead of the tail's logits, [N, C]. */
  scores: 'defense_scores',
  /** Optional output: 1 where the defense accepts the sample, 0 where it rejects it (bool [N]). */
  accepted: 'defense_accepted',
  /** Optional output (LESCI vote): 1 where the vote passed and the voted label was output (bool [N]). */
  projected: 'defense_projected',
} as const;

export interface DefenseStage {
  /** A kind of the defense registry (registry.ts). */
  kind: string;
  /** The tensor T of the undefended model the defense sits on. */
  layer: string;
  /**
   * before-tail: x → head → T → defense → activationOut → tail → logits.
   * after-tail:  x → head → T → tail → logits; (T, logits) → defense → scores.
   */
  placement: 'before-tail' | 'after-tail';
  /** What the pipeline's class scores are: logits, or probabilities (the dAE's c · softmax). */
  scores: 'logits' | 'probabilities';
  /** The defense graph with the inputs and outputs named in DEFENSE_IO. */
  model: ModelProto;
  /** Parameters as fitted (k, r, thresholds, sizes, seeds...), for results and the artifact cache. */
  params: Record<string, unknown>;
}

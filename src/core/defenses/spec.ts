/**
 * What a defense declares about itself. Each defense exports one DefenseSpec; defenses/registry.ts
 * lists them. CLI flags and help, the experiment JSON schema, the wizard's questions and the
 * generated catalogue (src/protocol/catalogue.ts) derive from the specs.
 */
import type { ParamSpec } from '../../protocol/params';
import type { InspectedModel, ReferenceActivations } from './activations';
import type { DefenseStage } from './types';

export interface DefenseFitContext {
  /** The tensor T the defense sits on. */
  layer: string;
  seed: number;
  threads: number;
  signal?: AbortSignal;
  log(line: string): void;
  /** Defenses that train report their epochs here (shown as the fit's progress). */
  onProgress?(done: number, total: number): void;
  /**
   * The classifier and the raw reference images beside the activations, for defenses that retrain
   * part of the network (the isometric head retrains the tail on the images' distances).
   */
  sources?: { model: InspectedModel; inputs: { x: Float32Array; count: number } };
}

/** What an adaptive surrogate may use besides the fitted stage. */
export interface AdaptiveContext {
  /**
   * The attacker's own labelled data as activations at T: the evaluation samples (the attacker
   * holds them and their labels), not the defense's private reference set.
   */
  attackerActivations(): Promise<ReferenceActivations>;
  threads: number;
}

/**
 * One more adaptive attack for a defense, run as its own threat model `adaptive/<id>` beside
 * `adaptive`; the worst case takes every variant into account per sample.
 */
export interface AdaptiveVariant {
  id: string;
  description: string;
  /** Whether the variant applies to this fitted stage (e.g. only to LESCI's vote mode). */
  applies?(stage: DefenseStage): boolean;
  surrogate(stage: DefenseStage, ctx: AdaptiveContext): Promise<DefenseStage> | DefenseStage;
}

export interface DefenseSpec<Kind extends string = string> {
  kind: Kind;
  title: string;
  description: string;
  /** The paper, as a citation (the papers' formulas are in docs/). */
  reference: string;
  params: readonly ParamSpec[];
  /**
   * The adaptive threat model: an attack that knows the defense. `surrogate` turns a fitted stage
   * into a differentiable stage whose gradient the attacks follow (success is still judged on the
   * real defended model); without it the adaptive threat follows the defended model's own
   * gradient, which for this defense already is the adaptive objective.
   */
  adaptive: { description: string; surrogate?(stage: DefenseStage): DefenseStage; variants?: readonly AdaptiveVariant[] };
  /** Fits the defense on reference activations at the layer; `params` are the plan's, checked against `params`. */
  fit(ref: ReferenceActivations, params: Record<string, unknown>, ctx: DefenseFitContext): Promise<DefenseStage>;
}

export function defineDefense<const Kind extends string>(spec: DefenseSpec<Kind>): DefenseSpec<Kind> {
  return spec;
}

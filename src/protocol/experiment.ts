/**
 * What to evaluate: the one description of an experiment that the CLI builds from its flags, the
 * extension sends to its worker process, and experiment files (*.rlab.json) hold.
 */
export interface EvaluationConfig {
  /** The experiment this run comes from, when it comes from an experiment file (recorded in the RunResult). */
  experiment?: { name: string; file: string };
  model: string;
  data: string;
  labels?: string;
  /** Evaluate only the first N samples. */
  limit?: number;
  batchSize: number;
  threads: number;
  /**
   * Copies of the model in worker threads that attack whole batches at the same time (CPU only),
   * each with threads / lanes onnxruntime threads. Default 'auto': picked from the cores, the
   * model's size and the batch (src/core/runtime/lane-count.ts); 1 is one session on every thread.
   */
  lanes?: number | 'auto';
  ep: 'auto' | 'cpu' | 'cuda';
  seed: number;
  preprocessing?: { scale?: number; mean?: number[]; std?: number[] };
  /** Attacks to run after the clean evaluation: every attack at every epsilon. */
  attacks?: AttackPlan;
  /** A defense to insert at a layer, fit on a reference set, and evaluate beside the undefended model. */
  defense?: DefensePlan;
  /** Folder for cached defense fits (default: .rlab-cache next to the model). */
  cacheDir?: string;
  /** The fooling generator of the dAE paper, on the undefended model and on the dAE-scaled one. */
  fooling?: FoolingPlan;
  /** Open-set recognition: inputs of classes the model never learnt, scored against the test data. */
  unknown?: UnknownPlan;
  /** Isometry per insertion point on the test data (pairs drawn from it). */
  isometry?: IsometryPlan;
  /**
   * The layer sweep (LESCI paper, section 4): the config's defense at each of these insertion
   * points in turn (its own `layer` is then ignored), against one baseline attacked once.
   */
  sweep?: SweepPlan;
  /** Where to write the RunResult JSON (atomically); nothing is written when absent. */
  out?: string;
  /** Limit on what a compressed dataset may expand to (default 2 GiB). */
  maxDecompressedBytes?: number;
  /** Accept NaN or infinite pixels (default: an error naming the file and the count). */
  allowNonFinite?: boolean;
  /** Accept NaN or infinite weights (default: an error naming the tensors). */
  allowNonFiniteWeights?: boolean;
}

export interface AttackPlan {
  /** Attack names of the registry (listed in src/protocol/catalogue.ts). */
  names: string[];
  eps: number[];
  norm: 'linf' | 'l2';
  steps?: number;
  /** Absolute step size; default a multiple of eps / steps per attack. */
  stepSize?: number;
  restarts?: number;
  randomStart?: boolean;
  /** Gradient-free attacks: forward passes per sample. */
  queries?: number;
  loss?: 'ce' | 'cw';
  /** Targeted towards a seeded random label different from the true one. */
  targeted?: boolean;
  /**
   * Per eps, each attack runs only on the samples that no earlier attack of the list broke, as
   * AutoAttack runs its ensemble: the same per-sample worst case, less work; each entry's accuracy
   * is then cumulative.
   */
  sequential?: boolean;
  /** A preset (quick, standard, thorough: src/core/attacks/strength.ts); what the plan sets overrides it. */
  strength?: string;
}

export const DEFAULT_CONFIG = { batchSize: 100, threads: 0, ep: 'auto', seed: 0 } as const;

export interface FoolingPlan {
  /** Target classes (default: every class). */
  targets?: number[];
  /** Seeds per target (default 1). */
  seeds?: number;
  /** Step limit per run (default 1000). */
  maxSteps?: number;
  /** Confidence thresholds to reach (default 0.9 and 0.99). */
  thresholds?: number[];
  learningRate?: number;
}

/** Inputs of classes the model never learnt (open-set recognition, dAE paper). */
export interface UnknownPlan {
  /** Images in any supported format; labels are not needed (they are read only when given, to check the file). */
  data: string;
  labels?: string;
  /** Use only the first N unknown images. */
  limit?: number;
  /** Thresholds on the top probability (default 0, 0.5, 0.9, 0.99, plus the dAE's own). */
  thresholds?: number[];
}

export const DEFAULT_OPEN_SET_THRESHOLDS: readonly number[] = [0, 0.5, 0.9, 0.99];

/** Isometry per layer (isometric-representations paper): distances of sampled pairs at each insertion point. */
export interface IsometryPlan {
  /** Pairs of each kind (within-class, between-class); default 2000. */
  pairs?: number;
  /** Insertion tensors (or the nodes producing them) to measure; default every insertion point. */
  layers?: string[];
  /** Seed of the pair sampling; default the run's seed. */
  seed?: number;
}

export const DEFAULT_ISOMETRY_PAIRS = 2000;

/** The layer sweep: one defense at several insertion points, with each layer's isometry. */
export interface SweepPlan {
  /** Insertion tensors (or the nodes producing them); absent or empty: every insertion point after the input. */
  layers?: string[];
  /** Pairs of each kind for each layer's isometry; default DEFAULT_ISOMETRY_PAIRS. */
  pairs?: number;
}

export type ThreatModel = 'transfer' | 'bpda' | 'direct' | 'adaptive' | 'gradient-free';
export const THREAT_MODELS: readonly ThreatModel[] = ['transfer', 'bpda', 'direct', 'adaptive', 'gradient-free'];

/**
 * The threat model of a result entry's `threat`: a defense's further adaptive attacks run as
 * `adaptive/<variant>` (e.g. adaptive/soft-vote) and belong to the adaptive threat model.
 */
export function threatModelOf(threat: string): string {
  return threat.split('/')[0];
}

export interface DefensePlan {
  /** A defense of the registry (src/core/defenses/registry.ts; listed in src/protocol/catalogue.ts). */
  kind: string;
  /** The tensor T (an insertion point) the defense goes after; the model input is allowed. */
  layer: string;
  /** Reference images (and labels) the defense is fitted on. */
  reference: string;
  referenceLabels?: string;
  referenceLimit?: number;
  /** Threat models to attack the defended model under (default: all). */
  threats?: ThreatModel[];
  /** Seed of the fit (initial weights, projections, shuffling); default: the run's seed. */
  seed?: number;
  /**
   * The defense's own parameters sit under its kind, e.g. "lesci": { "mode": "vote", "k": 5 }; each
   * defense's parameters, with types and defaults, are in the catalogue.
   */
  [kindParameters: string]: unknown;
}

/** The parameter object of a plan's defense (under its kind's key), empty when none is set. */
export function defenseParams(plan: DefensePlan): Record<string, unknown> {
  const v = plan[plan.kind];
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/**
 * An experiment file (*.rlab.json): what to evaluate, with paths relative to the file. Runtime
 * settings (execution provider, threads, batch size) come from the user's settings or flags.
 */
export interface ExperimentFile {
  name?: string;
  model: string;
  data: string;
  labels?: string;
  limit?: number;
  seed?: number;
  attacks?: AttackPlan;
  defense?: DefensePlan;
  fooling?: FoolingPlan;
  /** Open-set recognition: unknown images, relative to the file. */
  unknown?: UnknownPlan;
}

/** A phase of a run, for progress displays. */
export interface Progress {
  phase: string;
  done: number;
  total: number;
  /**
   * The whole run: work done and planned, in gradient evaluations (attack budgets × samples), and
   * the seconds left when they can be estimated (src/core/eval/progress.ts).
   */
  overall?: { done: number; total: number; etaSeconds?: number };
}

/**
 * RunResult: the one result schema. The CLI and the extension write it, the webview and the report
 * exporter read it. Bump SCHEMA_VERSION on any incompatible change and keep readers tolerant of
 * fields they do not know.
 */
import type { AttackPlan } from './experiment';

export const RUN_RESULT_SCHEMA_VERSION = 2;
/**
 * Versions readers accept. 2 added per-sample outcomes (AttackResult.robust), the per-sample union
 * worst case (WorstCase.method, firstBroken) and RunResult.worstCase; version 1 files lack them.
 */
export const READABLE_SCHEMA_VERSIONS: readonly number[] = [1, 2];

export interface DatasetDescription {
  format: string;
  path: string;
  labelsPath?: string;
  count: number;
  /** SHA-256 over the dataset files' bytes. */
  sha256: string;
  sampleShape: number[];
  preprocessing: { scale: number; mean?: number[]; std?: number[]; layout: string };
  classNames?: string[];
}

export interface AttackResult {
  /** Which classifier was attacked: the undefended baseline or the model with the defense inserted. */
  target: 'baseline' | 'defended';
  attack: string;
  /** whitebox (no defense), or the threat model against a defense: transfer, bpda, direct, gradient-free. */
  threat: string;
  norm: 'linf' | 'l2';
  eps: number;
  /** Robust accuracy over all evaluated samples, in [0,1]. */
  accuracy: number;
  /** Among samples classified correctly when clean, the share the attack fooled. */
  successRate: number;
  meanPerturbation: number;
  maxPerturbation: number;
  gradientEvaluations: number;
  queries: number;
  seconds: number;
  params: Record<string, unknown>;
  /** Defenses that reject: the share of adversarial inputs rejected, and accuracy among the accepted. */
  rejection?: { rejectionRate: number; acceptedAccuracy: number | null; accuracyOverAll: number };
  /** dAE: accuracy and rejection of the adversarial inputs at each confidence threshold. */
  thresholds?: ThresholdRow[];
  /** LESCI vote: share of adversarial inputs whose vote passed. */
  projectionRate?: number;
  /**
   * Per-sample outcome (schema 2): bit i set when sample i is still classified correctly after the
   * attack (a sample misclassified clean is never set). Encoded by protocol/bitset.ts.
   */
  robust?: string;
  /** Iterative attacks: samples first broken at or after step `fromStep` of runs of `steps` (schema 2). */
  convergence?: { steps: number; fromStep: number; lateBroken: number };
}

export interface ThresholdRow {
  threshold: number;
  /** Accuracy among the accepted samples (null when none is accepted). */
  acceptedAccuracy: number | null;
  /** Share of all samples rejected. */
  rejectionRate: number;
  /** Correct and accepted, over all samples (a rejection counts as an error). */
  accuracyOverAll: number;
  /**
   * Accepted and misclassified, over all samples: what an attack on a detector is after (fooled
   * and not caught). Schema 2.
   */
  acceptedWrong?: number;
  accepted: number;
  total: number;
}

/**
 * Per norm and epsilon, the worst case over every attack and threat model that ran. Since schema 2
 * it is the per-sample union (method 'per-sample-union', the AutoAttack convention): a sample
 * counts as robust only if it survived every attack; schema 1 files hold the lowest accuracy of a
 * single attack.
 */
export interface WorstCase {
  eps: number;
  norm: 'linf' | 'l2';
  /** Robust accuracy over all samples: the per-sample union (schema 2) or the strongest single attack (schema 1). */
  accuracy: number;
  /** The strongest single attack and its threat model (lowest robust accuracy on its own). */
  attack: string;
  threat: string;
  method?: 'per-sample-union' | 'strongest-single';
  /** The strongest single attack's own robust accuracy (schema 2). */
  singleAccuracy?: number;
  /**
   * Which attack broke each non-robust sample first, in the order the attacks ran; 'clean' counts
   * samples already misclassified without an attack (schema 2).
   */
  firstBroken?: { attack: string; threat: string; count: number }[];
  /** The undefended model's worst case at the same epsilon, when it was attacked. */
  baselineAccuracy?: number;
  /** The defense adds no robustness here: its worst case is no better than the baseline's (within 1 point). */
  broken: boolean;
}

/**
 * A check on the evaluation itself (src/core/eval/checks.ts): a masked gradient, a white-box attack
 * weaker than a black-box one, a flat curve, an unbounded attack that fails, a randomised model.
 * A fired check is a warning; on the defended model it makes the verdict "inconclusive".
 */
export interface CheckResult {
  id: 'zero-gradient' | 'weaker-whitebox' | 'flat-curve' | 'unbounded' | 'nondeterministic' | (string & {});
  target: 'baseline' | 'defended';
  /** The threat model the check looked at ('' when it concerns the model itself). */
  threat: string;
  eps?: number;
  fired: boolean;
  /** The measured quantity (a share, a difference, an accuracy). */
  value: number;
  message: string;
}

export interface FoolingSummary {
  threshold: number;
  /** Share of (target, seed) runs that reached the threshold within the step limit. */
  foolingRate: number;
  /** Mean steps of the successful runs (null when none succeeded). */
  averageSteps: number | null;
  runs: { target: number; seed: number; success: boolean; steps: number; finalConfidence: number }[];
}

export interface DefenseResult {
  /** A defense kind of the registry. */
  kind: string;
  layer: string;
  placement: 'before-tail' | 'after-tail';
  scores: 'logits' | 'probabilities';
  params: Record<string, unknown>;
  reference: { path: string; labelsPath?: string; count: number; sha256: string };
  fitSeconds: number;
  /** True when the fit came from the workspace cache. */
  cached: boolean;
  clean: {
    accuracy: number;
    baselineAccuracy: number;
    /** LESCI vote: share of inputs whose vote passed. */
    projectionRate?: number;
    rejectionRate?: number;
    acceptedAccuracy?: number | null;
    confusion: number[][];
  };
  /** dAE: clean accuracy at confidence thresholds, for the undefended softmax and the dAE-scaled output. */
  thresholds?: { baseline: ThresholdRow[]; defended: ThresholdRow[] };
  /** What each threat model's gradient is (BPDA's surrogate etc.). */
  threats: Record<string, string>;
  worstCase: WorstCase[];
  /** The defended model's clean and worst-case accuracy per class (optional; absent in older files). */
  perClass?: PerClassAccuracy;
  /** The defended model's adversarial confusion matrix at the largest epsilon (optional; absent in older files). */
  adversarialConfusion?: AdversarialConfusion;
  /**
   * holds: an adaptive attack ran, no check fired and the worst case beats the baseline at every
   * epsilon; broken: no better at any epsilon; partial: no better at some; inconclusive: no epsilon
   * broken, but a check fired or no adaptive attack ran (see verdictReasons).
   */
  verdict: 'holds' | 'partial' | 'broken' | 'inconclusive' | 'not attacked';
  /** Why the verdict is what it is, in sentences. */
  verdictReasons?: string[];
}

/**
 * Clean and worst-case accuracy per class, as counts (index = class label), so that the weighted
 * mean over classes is exactly the overall accuracy.
 */
export interface PerClassAccuracy {
  /** Evaluated samples per class. */
  count: number[];
  /** Samples of each class classified correctly without an attack. */
  cleanCorrect: number[];
  /**
   * Per norm and epsilon, samples of each class that survived every attack (and every threat model
   * for the defended model): the per-sample union worst case of WorstCase.accuracy, split by class.
   */
  robust: { norm: 'linf' | 'l2'; eps: number; correct: number[] }[];
}

/**
 * True class × prediction under attack at one epsilon, for the per-sample worst case: each sample
 * counts under the prediction of the first attack (in run order, over every threat model) that
 * fooled it; a sample no attack fooled counts under its true class, and a sample misclassified
 * without an attack under its clean prediction. The diagonal over the sample count is therefore the
 * union worst case's robust accuracy.
 */
export interface AdversarialConfusion {
  norm: 'linf' | 'l2';
  eps: number;
  method: 'per-sample-union-first-break';
  /** matrix[true][predicted under attack] counts. */
  matrix: number[][];
}

/** A few samples for the results view: clean and adversarial inputs with their predictions. */
export interface ExampleImage {
  index: number;
  label: number;
  cleanPrediction: number;
  attack: string;
  eps: number;
  threat: string;
  target: 'baseline' | 'defended';
  /** The prediction on the stored (rounded) adversarial input. */
  adversarialPrediction: number;
  /**
   * True when the attack fooled this sample: classified correctly clean (by the attacked model),
   * misclassified on the stored adversarial input. Examples are chosen among fooled samples; false
   * only when the attack fooled too few (optional; absent in older files).
   */
  fooled?: boolean;
  shape: number[];
  clean: number[];
  adversarial: number[];
}

export interface RunResult {
  schemaVersion: number;
  tool: { name: 'robustness-lab'; version: string };
  createdAt: string;
  /** The experiment file the run comes from (its name and path), when it comes from one. */
  experiment?: { name: string; file: string };
  model: {
    path: string;
    sha256: string;
    input: string;
    /** The tensor attacked as logits (for a model that ends in a Softmax, the Softmax's input). */
    output: string;
    /** Which tensor the logits are, in words (schema 2). */
    logits?: string;
    inputShape: (number | string)[];
    opset: number;
  };
  dataset: DatasetDescription;
  seed: number;
  runtime: {
    executionProvider: 'cpu' | 'cuda';
    requested: string;
    fallbackReason?: string;
    threads: number;
    batchSize: number;
    /** Lanes the attacks ran in (1: one session) and why that many (e.g. "auto: 2 lanes, limited by 2 threads"). */
    lanes?: number;
    lanesChoice?: string;
  };
  timings: { loadSeconds: number; cleanSeconds: number; totalSeconds: number; cleanImagesPerSecond: number };
  clean: {
    accuracy: number;
    correct: number;
    count: number;
    /** confusion[true][predicted] counts. */
    confusion: number[][];
  };
  /** The attack plan as it ran: names, epsilons and budgets, the strength preset resolved (schema 2). */
  attackPlan?: AttackPlan;
  attacks?: AttackResult[];
  /** The undefended model's worst case per norm and epsilon: the per-sample union over its attacks (schema 2). */
  worstCase?: WorstCase[];
  /** Checks on the evaluation itself, on the undefended and the defended model (schema 2). */
  checks?: CheckResult[];
  /** The undefended model's clean and worst-case accuracy per class (optional; absent in older files). */
  perClass?: PerClassAccuracy;
  /** The undefended model's adversarial confusion matrix at the largest epsilon (optional; absent in older files). */
  adversarialConfusion?: AdversarialConfusion;
  defense?: DefenseResult;
  /** The fooling generator (dAE paper): undefended, and dAE-scaled when a dAE defense ran. */
  fooling?: { baseline: FoolingSummary[]; defended?: FoolingSummary[]; params: Record<string, unknown> };
  /**
   * Clean and adversarial inputs of a few samples the attacks fooled, at the largest epsilon: for
   * the undefended model a few per attack, for the defended model a few per threat model (from its
   * strongest attack there).
   */
  examples?: ExampleImage[];
  /** Isometry per insertion point (isometric-representations paper): `robustness-lab isometry`. */
  isometry?: IsometryResult;
  /** Open-set recognition (dAE paper): known test inputs against inputs of classes never learnt. */
  openSet?: OpenSetResult;
  /**
   * The layer sweep (LESCI paper, section 4): one defense at several insertion points against the
   * same baseline (`attacks`, `worstCase` and `checks` hold the baseline's; each layer's defended
   * numbers are in its entry). `robustness-lab sweep`.
   */
  sweep?: SweepResult;
}

/**
 * Input against activation distances over sampled pairs of one kind (within-class or
 * between-class). Null where a statistic is undefined (a constant distance, no pairs).
 */
export interface IsometryPairStats {
  pairs: number;
  /** Pearson correlation of d_x = ‖x_i − x_j‖ and d_z = ‖z_i − z_j‖. */
  pearson: number | null;
  /** Spearman correlation (Pearson of the ranks, ties given their average rank). */
  spearman: number | null;
  /** Least-squares s in d_z ≈ s·d_x (through the origin): Σ d_x d_z / Σ d_x². */
  scale: number | null;
  /**
   * Relative distortion mean((s·d_x − d_z)²) / mean(d_z²) at the best-fit s: the paper's
   * metric-preservation term, made free of scale; 0 for an isometry up to scale, at most 1.
   */
  distortion: number | null;
  /** Mean input and activation distances of the pairs. */
  meanInputDistance: number;
  meanActivationDistance: number;
}

export interface IsometryLayer {
  /** The insertion tensor T (the layer's output). */
  tensor: string;
  /** The node that produces it, and its op. */
  layer: string;
  op: string;
  /** 1-based position of the node in the graph (the input is depth 0). */
  depth: number;
  /** Values per sample at T. */
  size: number;
  within: IsometryPairStats;
  between: IsometryPairStats;
}

export interface IsometryResult {
  /** Samples the pairs were drawn from (the evaluated data, after --limit). */
  referenceCount: number;
  /** Pairs asked for of each kind (fewer are drawn only when the data cannot give them). */
  pairsRequested: number;
  seed: number;
  /** Distances are Euclidean on the flattened model input (after preprocessing) and activation. */
  inputSize: number;
  /** How pairs were drawn, in words. */
  sampling: string;
  layers: IsometryLayer[];
  seconds: number;
}

export interface OpenSetThresholdRow {
  threshold: number;
  /** Share of the unknown inputs whose top score is below the threshold (rejected: good). */
  unknownRejectionRate: number;
  /** Share of the known inputs rejected (a cost). */
  knownRejectionRate: number;
  /** Accuracy among the accepted known inputs (null when none is accepted). */
  acceptedAccuracy: number | null;
  knownAccepted: number;
  unknownAccepted: number;
}

/** One scorer (the undefended max softmax, or the dAE's scaled probabilities) on known against unknown inputs. */
export interface OpenSetScorer {
  /** max-softmax: the undefended model's top softmax probability; dae-confidence: the dAE's top scaled probability. */
  score: 'max-softmax' | 'dae-confidence';
  /** P(score of a known input > score of an unknown one), ties counting one half. */
  auroc: number;
  /** Share of unknown inputs accepted at the highest threshold that keeps at least 95% of the known inputs. */
  fprAt95Tpr: number;
  /** That threshold. */
  thresholdAt95Tpr: number;
  thresholds: OpenSetThresholdRow[];
  /** The ROC curve (known inputs positive), at most a few hundred points, from (0,0) to (1,1). */
  roc: { fpr: number[]; tpr: number[] };
}

export interface OpenSetResult {
  unknown: { path: string; format: string; count: number; sha256: string };
  knownCount: number;
  baseline: OpenSetScorer;
  /** Present when the defense outputs probabilities (the dAE). */
  defended?: OpenSetScorer;
}

/** One attack on the defended model at one layer of a sweep, without its per-sample outcomes. */
export interface SweepAttack {
  attack: string;
  threat: string;
  norm: 'linf' | 'l2';
  eps: number;
  accuracy: number;
  /** LESCI vote: share of adversarial inputs whose vote passed. */
  projectionRate?: number;
  seconds: number;
}

/** The defense at one insertion point of a sweep. */
export interface SweepLayer {
  /** The insertion tensor T the defense went after. */
  tensor: string;
  /** The node that produces T and its op ('' and 'input' for the model input). */
  layer: string;
  op: string;
  /** 1-based position of the node in the graph (the model input is depth 0), as in the isometry section. */
  depth: number;
  /** Clean accuracy of the defended model. */
  cleanAccuracy: number;
  /** LESCI vote: share of clean inputs whose vote passed. */
  projectionRate?: number;
  /** Rejecting defenses: share of clean inputs rejected. */
  rejectionRate?: number;
  /** Per norm and epsilon, the per-sample union worst case over every attack and threat model (adaptive included). */
  worstCase: WorstCase[];
  verdict: DefenseResult['verdict'];
  verdictReasons?: string[];
  /** Isometry of T on the test data (null where undefined: the model input, a constant distance). */
  isometry: { withinPearson: number | null; withinSpearman: number | null; withinDistortion: number | null; betweenPearson: number | null } | null;
  placement: DefenseResult['placement'];
  /** Each threat model's gradient, as in DefenseResult.threats. */
  threats: Record<string, string>;
  fitSeconds: number;
  /** True when the fit came from the cache. */
  cached: boolean;
  /** Wall time of this layer: fit, clean pass, checks and attacks. */
  seconds: number;
  attacks: SweepAttack[];
  /** Checks on the defended model at this layer that fired. */
  checks: CheckResult[];
  /** On the Pareto front of (clean accuracy, worst case at SweepResult.paretoAt): no other layer is at least as good in both and better in one. */
  pareto: boolean;
  /** The epsilons (of paretoAt's norm) at which the layer is on the front of (clean accuracy, worst case at that eps). */
  paretoEps: number[];
}

export interface SweepResult {
  /** The defense kind and its parameters (the same at every layer). */
  kind: string;
  params: Record<string, unknown>;
  reference: { path: string; labelsPath?: string; count: number; sha256: string };
  /** What was asked for: 'all' insertion points, or the names given. */
  requested: 'all' | string[];
  /** The robustness objective of `pareto`: the worst case at the largest epsilon of this norm; null when nothing was attacked (clean accuracy alone). */
  paretoAt: { norm: 'linf' | 'l2'; eps: number } | null;
  /** Pairs of each kind behind each layer's isometry. */
  isometryPairs: number;
  /** In graph order. */
  layers: SweepLayer[];
  seconds: number;
}

/** Checks the parts every reader relies on; returns a list of problems (empty when fine). */
export function validateRunResult(value: unknown): string[] {
  const problems: string[] = [];
  const r = value as Partial<RunResult> | null;
  if (!r || typeof r !== 'object') return ['not a JSON object'];
  if (!READABLE_SCHEMA_VERSIONS.includes(r.schemaVersion as number)) {
    problems.push(`schemaVersion is ${String(r.schemaVersion)}; this version reads ${READABLE_SCHEMA_VERSIONS.join(' and ')}`);
  }
  if (!r.model || typeof r.model.sha256 !== 'string') problems.push('model.sha256 missing');
  if (!r.dataset || typeof r.dataset.sha256 !== 'string') problems.push('dataset.sha256 missing');
  const acc = r.clean?.accuracy;
  if (typeof acc !== 'number' || !(acc >= 0 && acc <= 1)) problems.push(`clean.accuracy must be a number in [0,1], found ${String(acc)}`);
  if (r.attacks !== undefined && !Array.isArray(r.attacks)) problems.push('attacks must be an array');
  return problems;
}

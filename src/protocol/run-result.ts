/**
 * RunResult: the one result schema. The CLI and the extension write it, the webview and the report
 * exporter read it. Bump SCHEMA_VERSION on any incompatible change and keep readers tolerant of
 * fields they do not know.
 */
export const RUN_RESULT_SCHEMA_VERSION = 1;

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
}

export interface ThresholdRow {
  threshold: number;
  /** Accuracy among the accepted samples (null when none is accepted). */
  acceptedAccuracy: number | null;
  /** Share of all samples rejected. */
  rejectionRate: number;
  /** Correct and accepted, over all samples (a rejection counts as an error). */
  accuracyOverAll: number;
  accepted: number;
  total: number;
}

/** Per epsilon, the strongest attack on the defended model over every threat model that ran. */
export interface WorstCase {
  eps: number;
  norm: 'linf' | 'l2';
  accuracy: number;
  attack: string;
  threat: string;
  /** The undefended model's worst robust accuracy at the same epsilon (whitebox), when attacked. */
  baselineAccuracy?: number;
  /** The defense adds no robustness here: its worst case is no better than the baseline's (within 1 point). */
  broken: boolean;
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
  kind: 'lesci' | 'dae' | 'retrieval';
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
  /** holds: better than the baseline at every epsilon; broken: no better at any; partial: in between. */
  verdict: 'holds' | 'partial' | 'broken' | 'not attacked';
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
  adversarialPrediction: number;
  shape: number[];
  clean: number[];
  adversarial: number[];
}

export interface RunResult {
  schemaVersion: number;
  tool: { name: 'robustness-lab'; version: string };
  createdAt: string;
  model: { path: string; sha256: string; input: string; output: string; inputShape: (number | string)[]; opset: number };
  dataset: DatasetDescription;
  seed: number;
  runtime: { executionProvider: 'cpu' | 'cuda'; requested: string; fallbackReason?: string; threads: number; batchSize: number; lanes?: number };
  timings: { loadSeconds: number; cleanSeconds: number; totalSeconds: number; cleanImagesPerSecond: number };
  clean: {
    accuracy: number;
    correct: number;
    count: number;
    /** confusion[true][predicted] counts. */
    confusion: number[][];
  };
  attacks?: AttackResult[];
  defense?: DefenseResult;
  /** The fooling generator (dAE paper): undefended, and dAE-scaled when a dAE defense ran. */
  fooling?: { baseline: FoolingSummary[]; defended?: FoolingSummary[]; params: Record<string, unknown> };
  examples?: ExampleImage[];
}

/** Checks the parts every reader relies on; returns a list of problems (empty when fine). */
export function validateRunResult(value: unknown): string[] {
  const problems: string[] = [];
  const r = value as Partial<RunResult> | null;
  if (!r || typeof r !== 'object') return ['not a JSON object'];
  if (r.schemaVersion !== RUN_RESULT_SCHEMA_VERSION) problems.push(`schemaVersion is ${String(r.schemaVersion)}, expected ${RUN_RESULT_SCHEMA_VERSION}`);
  if (!r.model || typeof r.model.sha256 !== 'string') problems.push('model.sha256 missing');
  if (!r.dataset || typeof r.dataset.sha256 !== 'string') problems.push('dataset.sha256 missing');
  const acc = r.clean?.accuracy;
  if (typeof acc !== 'number' || !(acc >= 0 && acc <= 1)) problems.push(`clean.accuracy must be a number in [0,1], found ${String(acc)}`);
  if (r.attacks !== undefined && !Array.isArray(r.attacks)) problems.push('attacks must be an array');
  return problems;
}

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
}

export interface RunResult {
  schemaVersion: number;
  tool: { name: 'robustness-lab'; version: string };
  createdAt: string;
  model: { path: string; sha256: string; input: string; output: string; inputShape: (number | string)[]; opset: number };
  dataset: DatasetDescription;
  seed: number;
  runtime: { executionProvider: 'cpu' | 'cuda'; requested: string; fallbackReason?: string; threads: number; batchSize: number };
  timings: { loadSeconds: number; cleanSeconds: number; totalSeconds: number; cleanImagesPerSecond: number };
  clean: {
    accuracy: number;
    correct: number;
    count: number;
    /** confusion[true][predicted] counts. */
    confusion: number[][];
  };
  attacks?: AttackResult[];
  defense?: Record<string, unknown>;
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

/**
 * What to evaluate: the one description of an experiment that the CLI builds from its flags, the
 * extension sends to its worker process, and experiment files (*.rlab.json) hold.
 */
export interface EvaluationConfig {
  model: string;
  data: string;
  labels?: string;
  /** Evaluate only the first N samples. */
  limit?: number;
  batchSize: number;
  threads: number;
  ep: 'auto' | 'cpu' | 'cuda';
  seed: number;
  preprocessing?: { scale?: number; mean?: number[]; std?: number[] };
  /** Where to write the RunResult JSON (atomically); nothing is written when absent. */
  out?: string;
}

export const DEFAULT_CONFIG = { batchSize: 100, threads: 0, ep: 'auto', seed: 0 } as const;

/** A phase of a run, for progress displays. */
export interface Progress {
  phase: string;
  done: number;
  total: number;
}

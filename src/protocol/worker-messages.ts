/**
 * Messages between the extension host and its compute process (child_process.fork + IPC).
 * Every request carries an id; the worker answers each with exactly one terminal message
 * (`result`, `inspected` or `error`), after any number of `progress` and `log` messages.
 */
import type { ModelSummary } from './model';
import type { EvaluationConfig, Progress } from './experiment';
import type { RunResult } from './run-result';

export type { ModelSummary } from './model';

export type ToWorker =
  | { type: 'evaluate'; id: number; config: EvaluationConfig }
  | { type: 'inspect'; id: number; model: string }
  /** Fit the config's defense and write the defended classifier as one ONNX model to `out`. */
  | { type: 'exportDefended'; id: number; config: EvaluationConfig; out: string }
  | { type: 'cancel'; id: number };

export type FromWorker =
  | { type: 'progress'; id: number; progress: Progress }
  | { type: 'log'; id: number; line: string }
  | { type: 'result'; id: number; result: RunResult }
  | { type: 'inspected'; id: number; model: ModelSummary }
  | { type: 'exported'; id: number; path: string }
  | { type: 'error'; id: number; message: string; userError: boolean; cancelled: boolean };

/** The terminal answer each request type expects. */
export interface WorkerAnswers {
  evaluate: RunResult;
  inspect: ModelSummary;
  exportDefended: string;
}

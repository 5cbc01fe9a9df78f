/** Messages between the extension host and its compute process (child_process.fork + IPC). */
import type { EvaluationConfig, Progress } from './experiment';
import type { RunResult } from './run-result';

export type ToWorker =
  | { type: 'evaluate'; id: number; config: EvaluationConfig }
  | { type: 'cancel'; id: number };

export type FromWorker =
  | { type: 'progress'; id: number; progress: Progress }
  | { type: 'log'; id: number; line: string }
  | { type: 'result'; id: number; result: RunResult }
  | { type: 'error'; id: number; message: string; userError: boolean; cancelled: boolean };

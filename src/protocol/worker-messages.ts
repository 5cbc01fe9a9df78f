/**
 * Messages between the extension host and its compute process (child_process.fork + IPC).
 * Every request carries an id; the worker answers each with exactly one terminal message
 * (`result`, `inspected`, `nodeAttributes` or `error`), after any number of `progress` and `log` messages.
 */
import type { NodeAttributes } from './graph-view';
import type { ModelSummary } from './model';
import type { EvaluationConfig, Progress } from './experiment';
import type { RunResult } from './run-result';

export type { ModelSummary } from './model';

export type ToWorker =
  | { type: 'evaluate'; id: number; config: EvaluationConfig }
  | { type: 'inspect'; id: number; model: string }
  /** Every node's attributes, formatted for display (the graph editor's node details). */
  | { type: 'nodeAttributes'; id: number; model: string }
  /** Fit the config's defense and write the defended classifier as one ONNX model to `out`. */
  | { type: 'exportDefended'; id: number; config: EvaluationConfig; out: string }
  /** What a dataset holds (count, image size, whether it carries labels), with its labels file checked against it. */
  | { type: 'describeData'; id: number; data: string; labels?: string }
  | { type: 'cancel'; id: number };

export type FromWorker =
  | { type: 'progress'; id: number; progress: Progress }
  | { type: 'log'; id: number; line: string }
  | { type: 'result'; id: number; result: RunResult }
  | { type: 'inspected'; id: number; model: ModelSummary }
  | { type: 'nodeAttributes'; id: number; attributes: NodeAttributes[] }
  | { type: 'exported'; id: number; path: string }
  | { type: 'dataDescribed'; id: number; description: DataDescription }
  | { type: 'error'; id: number; message: string; userError: boolean; cancelled: boolean };

/** The terminal answer each request type expects. */
export interface WorkerAnswers {
  evaluate: RunResult;
  inspect: ModelSummary;
  nodeAttributes: NodeAttributes[];
  exportDefended: string;
  describeData: DataDescription;
}

/** A dataset as the wizard checks it when it is picked. */
export interface DataDescription {
  count: number;
  height: number;
  width: number;
  channels: number;
  /** The labels came with the data (NPZ, image folder) or from the labels file given. */
  labelled: boolean;
  format: 'idx' | 'npy' | 'npz' | 'folder';
}

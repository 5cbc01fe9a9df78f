/**
 * Messages between the extension host and the results webview, both ways, with the guards each
 * side runs on receipt (a webview message is untrusted input; so is a restored state).
 */
import { validateRunResult, type RunResult } from './run-result';

/** A run as the panel shows it: the result, a display name and the file it came from. */
export interface PanelRun {
  name: string;
  /** The RunResult file; absent for results that were never saved. */
  file?: string;
  result: RunResult;
}

export type ReportFormat = 'markdown' | 'html' | 'json';
export const REPORT_FORMATS: readonly ReportFormat[] = ['markdown', 'html', 'json'];

export type ToWebview =
  /** Show one run, or two side by side. */
  { type: 'show'; runs: PanelRun[] };

export type FromWebview =
  | { type: 'ready' }
  /** Export the runs on show as a report file. */
  | { type: 'export'; format: ReportFormat }
  /** Pick another run to show beside the first. */
  | { type: 'compare' }
  /** Back to the first run alone. */
  | { type: 'closeCompare' }
  /** Open the JSON file of run `run` (an index into the runs on show). */
  | { type: 'openJson'; run: number }
  /** An error inside the webview, for the output channel. */
  | { type: 'error'; message: string };

/** What the webview keeps with setState, and what the panel serializer restores after a reload. */
export interface WebviewState {
  runs: PanelRun[];
}

export const MAX_RUNS = 2;

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Problems with a list of runs (empty when it is fine to render). */
export function panelRunsProblems(runs: unknown): string[] {
  if (!Array.isArray(runs) || runs.length < 1 || runs.length > MAX_RUNS) return [`expected 1 to ${MAX_RUNS} runs`];
  return runs.flatMap((r, i) => {
    if (!isObject(r) || typeof r.name !== 'string' || (r.file !== undefined && typeof r.file !== 'string')) return [`run ${i + 1}: malformed`];
    return validateRunResult(r.result).map((p) => `run ${i + 1} (${r.name}): ${p}`);
  });
}

export function isToWebview(x: unknown): x is ToWebview {
  return isObject(x) && x.type === 'show' && panelRunsProblems(x.runs).length === 0;
}

export function isWebviewState(x: unknown): x is WebviewState {
  return isObject(x) && panelRunsProblems(x.runs).length === 0;
}

export function isFromWebview(x: unknown): x is FromWebview {
  if (!isObject(x)) return false;
  switch (x.type) {
    case 'ready':
    case 'compare':
    case 'closeCompare':
      return true;
    case 'export':
      return REPORT_FORMATS.includes(x.format as ReportFormat);
    case 'openJson':
      return Number.isInteger(x.run) && (x.run as number) >= 0 && (x.run as number) < MAX_RUNS;
    case 'error':
      return typeof x.message === 'string' && x.message.length < 10_000;
    default:
      return false;
  }
}

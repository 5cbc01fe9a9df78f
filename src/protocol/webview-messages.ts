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

// ---------------------------------------------------------------------------------------------
// The runs-table webview (src/extension/runs-table.ts, webview-ui/src/runs-table.ts): every run of
// the results folders as a row; 2 to 7 of them compared.

/** Runs the table lists at most (a results folder with more shows the newest). */
export const MAX_TABLE_RUNS = 2000;
/** Runs one comparison shows at most. */
export const MAX_COMPARED_RUNS = 7;

/** A result file that is not a readable RunResult, listed so that the user sees why it is missing. */
export interface UnreadableRun {
  file: string;
  problem: string;
}

export type ToRunsTable =
  /**
   * The runs of the results folders, newest first. `compare` (files of listed runs, 2 to 7, the
   * first the baseline) opens the comparison of those runs, as Compare Runs asks.
   */
  { type: 'runs'; runs: PanelRun[]; unreadable: UnreadableRun[]; compare?: string[] };

export type FromRunsTable =
  | { type: 'ready' }
  /** List the runs again. */
  | { type: 'refresh' }
  /** Open one run (by its file) in the results panel. */
  | { type: 'showRun'; file: string }
  /** Open a run's JSON file. */
  | { type: 'openJson'; file: string }
  /** An error inside the webview, for the output channel. */
  | { type: 'error'; message: string };

/** What the runs-table webview keeps across a reload: the view, not the runs (those are listed again). */
export interface RunsTableState {
  sort?: { key: string; direction: 'asc' | 'desc' };
  filter?: string;
  selected?: string[];
  comparing?: boolean;
  allCurves?: boolean;
}

export function isToRunsTable(x: unknown): x is ToRunsTable {
  if (!isObject(x) || x.type !== 'runs' || !Array.isArray(x.runs) || x.runs.length > MAX_TABLE_RUNS || !Array.isArray(x.unreadable)) return false;
  const runsOk = x.runs.every(
    (r) => isObject(r) && typeof r.name === 'string' && (r.file === undefined || typeof r.file === 'string') && validateRunResult(r.result).length === 0,
  );
  const unreadableOk = x.unreadable.every((u) => isObject(u) && typeof u.file === 'string' && typeof u.problem === 'string');
  const compareOk =
    x.compare === undefined || (Array.isArray(x.compare) && x.compare.length <= MAX_COMPARED_RUNS && x.compare.every((f) => typeof f === 'string'));
  return runsOk && unreadableOk && compareOk;
}

export function isFromRunsTable(x: unknown): x is FromRunsTable {
  if (!isObject(x)) return false;
  switch (x.type) {
    case 'ready':
    case 'refresh':
      return true;
    case 'showRun':
    case 'openJson':
      return typeof x.file === 'string' && x.file.length > 0 && x.file.length < 4096;
    case 'error':
      return typeof x.message === 'string' && x.message.length < 10_000;
    default:
      return false;
  }
}

/**
 * The runs table: a webview panel listing every run of the results folders as a row (sortable,
 * filterable), where 2 to 7 runs are selected and compared (a merged table with Δ columns against
 * the first, the chart overlaid, a warning when the data differ). The table and the comparison
 * are computed in the webview from src/report/runs-table.ts; the host lists the runs (the Runs
 * view's listing), keeps the list current and opens runs in the results panel.
 *
 * Same rules as the results panel: a strict CSP with a nonce, assets from dist/webview only,
 * messages checked on receipt, files named by the webview accepted only when they are listed runs.
 */
import * as vscode from 'vscode';
import { webviewHtml } from './webview-html';
import type { RunResult } from '../protocol/run-result';
import { isFromRunsTable, MAX_TABLE_RUNS, type FromRunsTable, type PanelRun, type ToRunsTable, type UnreadableRun } from '../protocol/webview-messages';
import { runTitle } from '../report/analysis';
import { loadRun, type RunsProvider } from './runs-view';

export const RUNS_TABLE_VIEW_TYPE = 'robustnessLab.runsTable';

export interface RunsTableDeps {
  readonly extensionUri: vscode.Uri;
  readonly runs: RunsProvider;
  /** Shows runs in the results panel. */
  showRuns(shown: PanelRun[]): void;
  log(message: string): void;
}

/** A result without what the table and the comparison never read (example pixels, per-sample bitsets): smaller messages. */
function slim(result: RunResult): RunResult {
  const { examples: _examples, ...rest } = result;
  return { ...rest, attacks: Array.isArray(result.attacks) ? result.attacks.map(({ robust: _robust, ...a }) => a) : result.attacks };
}

export class RunsTablePanel implements vscode.Disposable {
  private static current: RunsTablePanel | undefined;
  private readonly disposables: vscode.Disposable[] = [];
  /** Files of the runs last posted: the only files the webview may ask to open. */
  private listed = new Set<string>();
  private pendingCompare: string[] | undefined;
  private ready = false;
  private posting: Promise<void> = Promise.resolve();
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;

  /** Opens the runs table (or brings it to the front); `compare` (2 to 7 run files) opens their comparison. */
  static show(deps: RunsTableDeps, compare?: string[]): RunsTablePanel {
    const existing = RunsTablePanel.current;
    if (existing) {
      existing.panel.reveal(existing.panel.viewColumn ?? vscode.ViewColumn.Active);
      existing.pendingCompare = compare;
      existing.schedulePost(0);
      return existing;
    }
    const panel = vscode.window.createWebviewPanel(RUNS_TABLE_VIEW_TYPE, 'Runs', vscode.ViewColumn.Active, RunsTablePanel.options(deps.extensionUri));
    return (RunsTablePanel.current = new RunsTablePanel(panel, deps, compare));
  }

  /** Brings the table back after a window reload (its view state is kept by the webview). */
  static register(deps: RunsTableDeps): vscode.Disposable {
    return vscode.window.registerWebviewPanelSerializer(RUNS_TABLE_VIEW_TYPE, {
      async deserializeWebviewPanel(panel: vscode.WebviewPanel) {
        panel.webview.options = RunsTablePanel.options(deps.extensionUri);
        RunsTablePanel.current?.panel.dispose();
        RunsTablePanel.current = new RunsTablePanel(panel, deps, undefined);
      },
    });
  }

  private static options(extensionUri: vscode.Uri): vscode.WebviewPanelOptions & vscode.WebviewOptions {
    return {
      enableScripts: true,
      enableCommandUris: false,
      retainContextWhenHidden: false,
      localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist', 'webview')],
    };
  }

  private constructor(
    private readonly panel: vscode.WebviewPanel,
    private readonly deps: RunsTableDeps,
    compare: string[] | undefined,
  ) {
    this.pendingCompare = compare;
    panel.iconPath = vscode.Uri.joinPath(deps.extensionUri, 'media', 'robustness-lab.svg');
    panel.title = 'Runs';
    panel.webview.html = this.html();
    this.disposables.push(
      panel.webview.onDidReceiveMessage((m: unknown) => {
        if (isFromRunsTable(m)) void this.onMessage(m);
        else deps.log(`Runs table: ignored an unexpected message ${JSON.stringify(m)?.slice(0, 200)}`);
      }),
      // New, changed and deleted result files: list again (debounced: a run writes once, a sweep of deletes many times).
      deps.runs.onDidChangeTreeData(() => this.schedulePost(500)),
      panel.onDidDispose(() => this.dispose()),
    );
  }

  dispose(): void {
    if (RunsTablePanel.current === this) RunsTablePanel.current = undefined;
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.panel.dispose();
    for (const d of this.disposables.splice(0)) d.dispose();
  }

  private schedulePost(delay: number): void {
    if (!this.ready) return; // 'ready' posts.
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = undefined;
      this.posting = this.posting.then(() => this.postRuns()).catch((e) => this.deps.log(`Runs table: ${(e as Error).message}`));
    }, delay);
  }

  private async postRuns(): Promise<void> {
    const nodes = await this.deps.runs.listRuns();
    const runs: PanelRun[] = [];
    const unreadable: UnreadableRun[] = [];
    for (const node of nodes) {
      if (node.result && runs.length < MAX_TABLE_RUNS) runs.push({ name: runTitle(node.result), file: node.uri.fsPath, result: slim(node.result) });
      else if (!node.result) unreadable.push({ file: node.uri.fsPath, problem: node.problem ?? 'not a readable result' });
    }
    this.listed = new Set(runs.map((r) => r.file!));
    const compare = this.pendingCompare?.filter((f) => this.listed.has(f));
    this.pendingCompare = undefined;
    const message: ToRunsTable = { type: 'runs', runs, unreadable, ...(compare && compare.length ? { compare } : {}) };
    this.panel.title = compare && compare.length > 1 ? `Compare ${compare.length} Runs` : 'Runs';
    await this.panel.webview.postMessage(message);
  }

  private async onMessage(m: FromRunsTable): Promise<void> {
    switch (m.type) {
      case 'ready':
        this.ready = true;
        this.schedulePost(0);
        return;
      case 'refresh':
        this.schedulePost(0);
        return;
      case 'showRun':
      case 'openJson': {
        if (!this.listed.has(m.file)) {
          this.deps.log(`Runs table: refused to open ${m.file}: not a listed run.`);
          return;
        }
        const uri = vscode.Uri.file(m.file);
        try {
          if (m.type === 'openJson') await vscode.window.showTextDocument(uri, { preview: true, viewColumn: vscode.ViewColumn.Beside });
          else this.deps.showRuns([await loadRun(uri)]);
        } catch (e) {
          void vscode.window.showErrorMessage(`Robustness Lab: ${(e as Error).message}`);
        }
        return;
      }
      case 'error':
        this.deps.log(`Runs table: ${m.message}`);
        return;
    }
  }

  private html(): string {
    return webviewHtml(this.panel.webview, this.deps.extensionUri, { entry: 'runs-table', title: 'Robustness Lab Runs' });
  }
}

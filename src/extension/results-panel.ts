/**
 * The results webview panel: one panel, showing one run or two side by side. Strict CSP with a
 * nonce, scripts and styles from dist/webview only, typed messages checked on receipt, and a
 * serializer so that the panel comes back after a window reload.
 */
import * as vscode from 'vscode';
import { webviewHtml } from './webview-html';
import { isFromWebview, isWebviewState, type FromWebview, type PanelRun, type ReportFormat, type ToWebview } from '../protocol/webview-messages';
import { runTitle } from '../report/analysis';

export const RESULTS_VIEW_TYPE = 'robustnessLab.results';

export interface PanelActions {
  exportReport(runs: PanelRun[], format: ReportFormat): Promise<void>;
  /** Another run to compare `current` with, chosen by the user. */
  pickRunToCompare(current: PanelRun): Promise<PanelRun | undefined>;
  log(message: string): void;
}

export class ResultsPanel implements vscode.Disposable {
  private static current: ResultsPanel | undefined;
  private runs: PanelRun[];
  private readonly disposables: vscode.Disposable[] = [];

  /** Shows runs in the results panel, creating it or bringing it to the front. */
  static show(extensionUri: vscode.Uri, actions: PanelActions, runs: PanelRun[]): ResultsPanel {
    const existing = ResultsPanel.current;
    if (existing) {
      existing.update(runs);
      existing.panel.reveal(existing.panel.viewColumn ?? vscode.ViewColumn.Active);
      return existing;
    }
    const panel = vscode.window.createWebviewPanel(RESULTS_VIEW_TYPE, 'Results', vscode.ViewColumn.Active, ResultsPanel.options(extensionUri));
    return (ResultsPanel.current = new ResultsPanel(panel, extensionUri, actions, runs));
  }

  static register(extensionUri: vscode.Uri, actions: PanelActions): vscode.Disposable {
    return vscode.window.registerWebviewPanelSerializer(RESULTS_VIEW_TYPE, {
      async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: unknown) {
        panel.webview.options = ResultsPanel.options(extensionUri);
        if (!isWebviewState(state)) {
          panel.dispose(); // Nothing valid to show; an empty panel would only confuse.
          return;
        }
        ResultsPanel.current?.panel.dispose();
        ResultsPanel.current = new ResultsPanel(panel, extensionUri, actions, await refreshed(state.runs));
      },
    });
  }

  static get active(): ResultsPanel | undefined {
    return ResultsPanel.current;
  }

  private static options(extensionUri: vscode.Uri): vscode.WebviewPanelOptions & vscode.WebviewOptions {
    return {
      enableScripts: true,
      enableCommandUris: false,
      localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist', 'webview')],
    };
  }

  private constructor(
    private readonly panel: vscode.WebviewPanel,
    private readonly extensionUri: vscode.Uri,
    private readonly actions: PanelActions,
    runs: PanelRun[],
  ) {
    this.runs = runs;
    panel.iconPath = vscode.Uri.joinPath(extensionUri, 'media', 'robustness-lab.svg');
    panel.webview.html = this.html();
    this.setTitle();
    this.disposables.push(
      panel.webview.onDidReceiveMessage((m: unknown) => {
        if (isFromWebview(m)) void this.onMessage(m);
        else actions.log(`Results panel: ignored an unexpected message ${JSON.stringify(m)?.slice(0, 200)}`);
      }),
      panel.onDidDispose(() => this.dispose()),
    );
  }

  get shownRuns(): readonly PanelRun[] {
    return this.runs;
  }

  update(runs: PanelRun[]): void {
    this.runs = runs;
    this.setTitle();
    this.post({ type: 'show', runs });
  }

  dispose(): void {
    if (ResultsPanel.current === this) ResultsPanel.current = undefined;
    this.panel.dispose();
    for (const d of this.disposables.splice(0)) d.dispose();
  }

  private setTitle(): void {
    this.panel.title = this.runs.length > 1 ? `Compare: ${this.runs.map((r) => r.name).join(' vs ')}` : `Results: ${this.runs[0]?.name ?? ''}`;
  }

  private post(message: ToWebview): void {
    void this.panel.webview.postMessage(message);
  }

  private async onMessage(m: FromWebview): Promise<void> {
    switch (m.type) {
      case 'ready':
        this.post({ type: 'show', runs: this.runs });
        return;
      case 'export':
        await this.actions.exportReport(this.runs, m.format);
        return;
      case 'compare': {
        const other = await this.actions.pickRunToCompare(this.runs[0]);
        if (other) this.update([this.runs[0], other]);
        return;
      }
      case 'closeCompare':
        this.update(this.runs.slice(0, 1));
        return;
      case 'openJson': {
        const file = this.runs[m.run]?.file;
        if (file) await vscode.window.showTextDocument(vscode.Uri.file(file), { preview: true, viewColumn: vscode.ViewColumn.Beside });
        return;
      }
      case 'error':
        this.actions.log(`Results panel: ${m.message}`);
        return;
    }
  }

  private html(): string {
    return webviewHtml(this.panel.webview, this.extensionUri, { entry: 'main', title: 'Robustness Lab Results' });
  }
}

/** After a reload, prefer what is on disk now (a run re-written since) over the saved state. */
async function refreshed(runs: PanelRun[]): Promise<PanelRun[]> {
  return Promise.all(
    runs.map(async (run) => {
      if (!run.file) return run;
      try {
        const result = JSON.parse(Buffer.from(await vscode.workspace.fs.readFile(vscode.Uri.file(run.file))).toString('utf8'));
        return isWebviewState({ runs: [{ ...run, result }] }) ? { ...run, result } : run;
      } catch {
        return run;
      }
    }),
  );
}

export function panelRun(file: vscode.Uri | undefined, result: PanelRun['result']): PanelRun {
  return { name: runTitle(result), file: file?.fsPath, result };
}

/** The Runs view: RunResult files in the workspace's results folder(s), newest first. */
import * as vscode from 'vscode';
import type { PanelRun } from '../protocol/webview-messages';
import { validateRunResult, type RunResult } from '../protocol/run-result';
import { basename, percent, runHeadline, runLabel, summaryRows } from '../report/analysis';
import { panelRun } from './results-panel';
import { allResultsFolders } from './settings';

export interface RunNode {
  uri: vscode.Uri;
  result?: RunResult;
  /** Why the file is not a readable result. */
  problem?: string;
  mtime: number;
}

/** Reads a RunResult file; throws with a message naming the file and what is wrong. */
export async function loadRun(uri: vscode.Uri): Promise<PanelRun> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(await vscode.workspace.fs.readFile(uri)).toString('utf8'));
  } catch (e) {
    throw new Error(`Cannot read ${basename(uri.fsPath)}: ${(e as Error).message}`);
  }
  const problems = validateRunResult(value);
  if (problems.length) throw new Error(`${basename(uri.fsPath)} is not a Robustness Lab result: ${problems.join('; ')}.`);
  return panelRun(uri, value as RunResult);
}

export class RunsProvider implements vscode.TreeDataProvider<RunNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly cache = new Map<string, RunNode>();
  private watchers: vscode.Disposable[] = [];
  private nodes: RunNode[] = [];

  constructor(private readonly context: vscode.ExtensionContext) {
    this.watch();
  }

  refresh(): void {
    this.changed.fire();
  }

  /** The results folder setting changed: watch the new folders. */
  rewatch(): void {
    this.watch();
    this.refresh();
  }

  /** The runs most recently listed, newest first. */
  get runs(): readonly RunNode[] {
    return this.nodes;
  }

  async listRuns(): Promise<RunNode[]> {
    const found: RunNode[] = [];
    for (const folder of allResultsFolders(this.context)) {
      let entries: [string, vscode.FileType][];
      try {
        entries = await vscode.workspace.fs.readDirectory(folder);
      } catch {
        continue; // No results folder yet.
      }
      for (const [name, type] of entries) {
        if (type !== vscode.FileType.File || !name.endsWith('.json')) continue;
        const node = await this.read(vscode.Uri.joinPath(folder, name));
        if (node) found.push(node);
      }
    }
    const time = (n: RunNode) => Date.parse(n.result?.createdAt ?? '') || n.mtime;
    found.sort((a, b) => time(b) - time(a));
    this.nodes = found;
    const valid = found.filter((n) => n.result);
    void vscode.commands.executeCommand('setContext', 'robustnessLab.hasRuns', valid.length > 0);
    // Explorer menus test `resourcePath in robustnessLab.resultFiles`: URI paths, not file-system paths.
    void vscode.commands.executeCommand(
      'setContext',
      'robustnessLab.resultFiles',
      valid.map((n) => n.uri.path),
    );
    return found;
  }

  /** A run chosen from the view's list (newest first), loaded; undefined when there is none or the user cancels. */
  async pickRun(title: string, exclude?: string): Promise<PanelRun | undefined> {
    const list = (await this.listRuns()).filter((n) => n.result && n.uri.fsPath !== exclude);
    if (list.length === 0) {
      void vscode.window.showInformationMessage('Robustness Lab: no other runs in the results folder yet. Evaluate a model or run an experiment first.');
      return undefined;
    }
    const choice = await vscode.window.showQuickPick(
      list.map((node) => {
        const item = this.getTreeItem(node);
        return { label: String(item.label), description: String(item.description ?? ''), detail: vscode.workspace.asRelativePath(node.uri), node };
      }),
      { title, matchOnDetail: true },
    );
    return choice ? loadRun(choice.node.uri) : undefined;
  }

  getChildren(node?: RunNode): Promise<RunNode[]> | RunNode[] {
    return node ? [] : this.listRuns();
  }

  getTreeItem(node: RunNode): vscode.TreeItem {
    const file = basename(node.uri.fsPath);
    if (!node.result) {
      const item = new vscode.TreeItem(file);
      item.description = 'not a readable result';
      item.tooltip = node.problem;
      item.iconPath = new vscode.ThemeIcon('warning');
      item.contextValue = 'run.invalid';
      item.command = { command: 'vscode.open', title: 'Open', arguments: [node.uri] };
      return item;
    }
    const r = node.result;
    const headline = runHeadline(r);
    const item = new vscode.TreeItem(runLabel(r));
    item.id = node.uri.toString();
    const when = new Date(r.createdAt);
    // A defended run shows the defended model's numbers, never the undefended model's.
    item.description = [
      headline.setup,
      when.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' }),
      headline.clean !== undefined ? `${r.defense ? 'defended ' : ''}clean ${percent(headline.clean, 1)}` : undefined,
      headline.worst !== undefined ? `worst ${percent(headline.worst, 1)}` : undefined,
      headline.verdict,
    ]
      .filter(Boolean)
      .join(' · ');
    const tooltip = new vscode.MarkdownString(`**${file}**\n\n`);
    for (const [k, v] of summaryRows(r)) tooltip.appendMarkdown(`- ${k}: `).appendText(v).appendMarkdown('\n');
    item.tooltip = tooltip;
    item.iconPath = new vscode.ThemeIcon(r.defense ? 'shield' : 'graph-line');
    item.contextValue = 'run';
    item.resourceUri = node.uri;
    item.command = { command: 'robustnessLab.showResults', title: 'Show Results', arguments: [node.uri] };
    return item;
  }

  dispose(): void {
    for (const w of this.watchers) w.dispose();
    this.changed.dispose();
  }

  private async read(uri: vscode.Uri): Promise<RunNode | undefined> {
    let mtime = 0;
    try {
      mtime = (await vscode.workspace.fs.stat(uri)).mtime;
    } catch {
      return undefined;
    }
    const cached = this.cache.get(uri.toString());
    if (cached && cached.mtime === mtime) return cached;
    let node: RunNode;
    try {
      node = { uri, mtime, result: (await loadRun(uri)).result };
    } catch (e) {
      node = { uri, mtime, problem: (e as Error).message };
    }
    this.cache.set(uri.toString(), node);
    return node;
  }

  private watch(): void {
    for (const w of this.watchers) w.dispose();
    this.watchers = allResultsFolders(this.context).map((folder) => {
      const w = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(folder, '*.json'));
      const refresh = () => this.refresh();
      w.onDidCreate(refresh);
      w.onDidChange(refresh);
      w.onDidDelete(refresh);
      return w;
    });
  }
}

/** The Experiments view: *.rlab.json files in the workspace, each with Run. */
import * as vscode from 'vscode';
import type { ExperimentFile } from '../protocol/experiment';
import { basename } from '../report/analysis';
import { EXPERIMENT_SUFFIX, parseExperiment } from '../protocol/experiment-file';

export interface ExperimentNode {
  uri: vscode.Uri;
  experiment?: ExperimentFile;
  problem?: string;
}

const EXCLUDE = '**/{node_modules,.git,.rlab-cache,.vscode-test}/**';

/** Reads and checks an experiment file (from the open editor if it has unsaved changes). */
export async function readExperiment(uri: vscode.Uri): Promise<ExperimentFile> {
  const open = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
  const text = open ? open.getText() : Buffer.from(await vscode.workspace.fs.readFile(uri)).toString('utf8');
  return parseExperiment(text, uri.fsPath);
}

export function experimentName(node: ExperimentNode): string {
  return node.experiment?.name || basename(node.uri.fsPath).slice(0, -EXPERIMENT_SUFFIX.length);
}

export class ExperimentsProvider implements vscode.TreeDataProvider<ExperimentNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly disposables: vscode.Disposable[] = [];

  constructor() {
    const watcher = vscode.workspace.createFileSystemWatcher(`**/*${EXPERIMENT_SUFFIX}`);
    const refresh = () => this.refresh();
    this.disposables.push(watcher, watcher.onDidCreate(refresh), watcher.onDidChange(refresh), watcher.onDidDelete(refresh));
  }

  refresh(): void {
    this.changed.fire();
  }

  async listExperiments(): Promise<ExperimentNode[]> {
    const uris = await vscode.workspace.findFiles(`**/*${EXPERIMENT_SUFFIX}`, EXCLUDE);
    const nodes = await Promise.all(
      uris.map(async (uri): Promise<ExperimentNode> => {
        try {
          return { uri, experiment: await readExperiment(uri) };
        } catch (e) {
          return { uri, problem: (e as Error).message };
        }
      }),
    );
    return nodes.sort((a, b) => experimentName(a).localeCompare(experimentName(b)));
  }

  getChildren(node?: ExperimentNode): Promise<ExperimentNode[]> | ExperimentNode[] {
    return node ? [] : this.listExperiments();
  }

  getTreeItem(node: ExperimentNode): vscode.TreeItem {
    const item = new vscode.TreeItem(experimentName(node));
    item.id = node.uri.toString();
    item.resourceUri = node.uri;
    item.command = { command: 'vscode.open', title: 'Open', arguments: [node.uri] };
    const e = node.experiment;
    if (!e) {
      item.description = 'invalid';
      item.tooltip = node.problem;
      item.iconPath = new vscode.ThemeIcon('warning', new vscode.ThemeColor('problemsWarningIcon.foreground'));
      item.contextValue = 'experiment.invalid';
      return item;
    }
    const attacks = e.attacks ? `${e.attacks.names.join(', ')} (${e.attacks.norm}) at eps ${e.attacks.eps.join(', ')}` : 'clean only';
    item.description = [e.defense ? `${e.defense.kind} after ${e.defense.layer}` : 'no defense', e.attacks?.names.join('+')].filter(Boolean).join(' · ');
    const tip = new vscode.MarkdownString();
    tip
      .appendMarkdown(`**${experimentName(node)}** (`)
      .appendText(vscode.workspace.asRelativePath(node.uri))
      .appendMarkdown(')\n\n');
    tip
      .appendMarkdown('- model: ')
      .appendText(e.model)
      .appendMarkdown('\n- data: ')
      .appendText(`${e.data}${e.limit ? ` (first ${e.limit})` : ''}`);
    tip.appendMarkdown('\n- attacks: ').appendText(attacks);
    if (e.defense) tip.appendMarkdown('\n- defense: ').appendText(`${e.defense.kind} after ${e.defense.layer}, fitted on ${e.defense.reference}`);
    if (e.fooling) tip.appendMarkdown('\n- fooling generator: ').appendText(`thresholds ${(e.fooling.thresholds ?? [0.9, 0.99]).join(', ')}`);
    item.tooltip = tip;
    item.iconPath = new vscode.ThemeIcon(e.defense ? 'shield' : 'beaker');
    item.contextValue = e.defense ? 'experiment.defended' : 'experiment';
    return item;
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
    this.changed.dispose();
  }
}

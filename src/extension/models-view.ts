/**
 * The Models view: every *.onnx in the workspace (and models opened from elsewhere), each
 * expanding to its inputs, outputs and layers as the compute process inspects them. Layers are
 * grouped by module path, Constant nodes are left out, and a toggle shows insertion points only.
 */
import * as vscode from 'vscode';
import { groupByModule, listedLayers, type LayerGroup, type LayerTreeEntry, type NodeAttributes } from '../protocol/graph-view';
import type { GraphIO, Layer } from '../protocol/model';
import type { IsometryResult } from '../protocol/run-result';
import type { ModelSummary } from '../protocol/worker-messages';
import { basename } from '../report/analysis';
import type { Inspector } from './worker-client';

export interface ModelNode {
  kind: 'model';
  uri: vscode.Uri;
}
export interface GroupNode {
  kind: 'group';
  model: ModelNode;
  group: 'inputs' | 'outputs' | 'layers';
  summary: ModelSummary;
}
/** A module of the model (`features`, `layer1/layer1.0`): the layers whose names lie inside its path. */
export interface ModuleNode {
  kind: 'module';
  model: ModelNode;
  group: LayerGroup<Layer>;
}
/** A tensor a defense can be inserted after: a layer's output, or a model input. */
export interface LayerNode {
  kind: 'layer';
  model: ModelNode;
  layer: Layer;
  /** The name relative to its module (`features.0/Conv` inside `features`); the full name when absent. */
  label?: string;
}
export interface IoNode {
  kind: 'io';
  model: ModelNode;
  role: 'input' | 'output';
  io: GraphIO;
  insertionPoint: boolean;
}
export interface MessageNode {
  kind: 'message';
  model: ModelNode;
  text: string;
  detail: string;
}
export type ModelTreeNode = ModelNode | GroupNode | ModuleNode | LayerNode | IoNode | MessageNode;

/** What the defense commands need from a tree node. */
export interface InsertionTarget {
  model: vscode.Uri;
  /** The tensor T the defense goes after. */
  tensor: string;
  /** The layer's name, for titles. */
  label: string;
}

export function insertionTarget(node: ModelTreeNode): InsertionTarget | undefined {
  if (node.kind === 'layer' && node.layer.insertionPoint) return { model: node.model.uri, tensor: node.layer.outputs[0], label: node.layer.name };
  if (node.kind === 'io' && node.insertionPoint) return { model: node.model.uri, tensor: node.io.name, label: `input ${node.io.name}` };
  return undefined;
}

const EXCLUDE = '**/{node_modules,.git,.rlab-cache,.vscode-test}/**';
/** JSON files looked at for TensorFlow.js models, and the largest one read (a model.json holds the topology, not the weights). */
const MAX_JSON_FILES = 2000;
const MAX_MODEL_JSON_BYTES = 16 * 1024 * 1024;

/** A TensorFlow.js model.json: any *.json whose content has a model topology and a weights manifest. */
async function tfjsModels(candidates: vscode.Uri[]): Promise<vscode.Uri[]> {
  const out: vscode.Uri[] = [];
  for (const uri of candidates) {
    if (uri.fsPath.endsWith('.rlab.json') || /(^|[\\/])(package(-lock)?|tsconfig)\.json$/.test(uri.fsPath)) continue;
    try {
      if ((await vscode.workspace.fs.stat(uri)).size > MAX_MODEL_JSON_BYTES) continue;
      const text = new TextDecoder().decode(await vscode.workspace.fs.readFile(uri));
      if (text.includes('"modelTopology"') && text.includes('"weightsManifest"')) out.push(uri);
    } catch {
      // unreadable: not listed
    }
  }
  return out;
}

function isTfjsUri(uri: vscode.Uri): boolean {
  return /\.json$/i.test(uri.fsPath);
}

/** "fashion-cnn.onnx", or "fashion-layers/model.json" for a TensorFlow.js model (its folder names it). */
export function modelLabel(uri: vscode.Uri): string {
  const name = basename(uri.fsPath);
  return isTfjsUri(uri) ? `${basename(uri.fsPath.slice(0, -name.length - 1))}/${name}` : name;
}
const OPENED_KEY = 'robustnessLab.openedModels';
/** Isometry per insertion point of each model, from its last "Measure Isometry per Layer" run. */
const ISOMETRY_KEY = 'robustnessLab.isometry';

/** What the Models view keeps of an isometry run: within-class numbers per insertion tensor, for the model file as it was. */
interface LayerIsometry {
  /** The model file's modification time when measured: a changed model drops the badges. */
  mtime: number;
  layers: Record<string, { pearson: number | null; spearman: number | null; distortion: number | null }>;
}
/** Context key of the view title's filter toggle. */
export const INSERTION_POINTS_ONLY_KEY = 'robustnessLab.insertionPointsOnly';

function shape(dims: (number | string)[] | undefined): string {
  return dims ? `[${dims.join(', ')}]` : '[?]';
}

export class ModelsProvider implements vscode.TreeDataProvider<ModelTreeNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<ModelTreeNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly models = new Map<string, ModelNode>();
  private readonly inspections = new Map<string, { mtime: number; summary: Promise<ModelSummary> }>();
  private readonly disposables: vscode.Disposable[] = [];
  private onlyInsertionPoints = false;

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly inspector: Inspector,
  ) {
    const watcher = vscode.workspace.createFileSystemWatcher('**/*.{onnx,json}');
    this.disposables.push(
      watcher,
      watcher.onDidCreate(() => this.refresh()),
      watcher.onDidDelete((uri) => {
        this.inspections.delete(uri.toString());
        this.refresh();
      }),
      watcher.onDidChange((uri) => {
        this.inspections.delete(uri.toString());
        const node = this.models.get(uri.toString());
        this.changed.fire(node);
      }),
    );
  }

  refresh(): void {
    this.inspections.clear();
    this.changed.fire(undefined);
  }

  get insertionPointsOnly(): boolean {
    return this.onlyInsertionPoints;
  }

  /** Shows only the layers a defense can go after (or every layer again); the view title's toggle follows. */
  setInsertionPointsOnly(on: boolean): void {
    this.onlyInsertionPoints = on;
    void vscode.commands.executeCommand('setContext', INSERTION_POINTS_ONLY_KEY, on);
    this.changed.fire(undefined);
  }

  /** Adds a model from outside the workspace to the view; returns its node for reveal(). */
  async open(uri: vscode.Uri): Promise<ModelNode> {
    const opened = this.context.workspaceState.get<string[]>(OPENED_KEY, []);
    if (!vscode.workspace.getWorkspaceFolder(uri) && !opened.includes(uri.toString())) {
      await this.context.workspaceState.update(OPENED_KEY, [...opened, uri.toString()]);
      this.changed.fire(undefined);
    }
    return this.modelNode(uri);
  }

  /** Every model the view lists. */
  async findModels(): Promise<vscode.Uri[]> {
    const onnx = await vscode.workspace.findFiles('**/*.onnx', EXCLUDE);
    const tfjs = await tfjsModels(await vscode.workspace.findFiles('**/*.json', EXCLUDE, MAX_JSON_FILES));
    const inWorkspace = [...onnx, ...tfjs];
    const opened = this.context.workspaceState.get<string[]>(OPENED_KEY, []).map((s) => vscode.Uri.parse(s));
    const all = [...new Map([...inWorkspace, ...opened].map((u) => [u.toString(), u])).values()];
    return all.sort((a, b) => vscode.workspace.asRelativePath(a).localeCompare(vscode.workspace.asRelativePath(b)));
  }

  /** The model's inspection (cached until the file changes). */
  async inspect(uri: vscode.Uri): Promise<ModelSummary> {
    const key = uri.toString();
    const mtime = (await vscode.workspace.fs.stat(uri)).mtime;
    const cached = this.inspections.get(key);
    if (cached && cached.mtime === mtime) return cached.summary;
    const summary = this.inspector.inspect(uri.fsPath);
    this.inspections.set(key, { mtime, summary });
    summary.catch(() => this.inspections.delete(key)); // Retry on the next expand.
    return summary;
  }

  /** Records a model's isometry per insertion point (from a run), shown as a badge on its layers. */
  async setIsometry(model: vscode.Uri, isometry: IsometryResult): Promise<void> {
    const mtime = (await vscode.workspace.fs.stat(model)).mtime;
    const layers = Object.fromEntries(
      isometry.layers.map((l) => [l.tensor, { pearson: l.within.pearson, spearman: l.within.spearman, distortion: l.within.distortion }]),
    );
    const all = this.context.workspaceState.get<Record<string, LayerIsometry>>(ISOMETRY_KEY, {});
    await this.context.workspaceState.update(ISOMETRY_KEY, { ...all, [model.toString()]: { mtime, layers } });
    this.changed.fire(undefined);
  }

  /** The within-class isometry of a layer's output, when measured on the model as it is now. */
  private isometryOf(model: vscode.Uri, tensor: string | undefined): LayerIsometry['layers'][string] | undefined {
    const stored = this.context.workspaceState.get<Record<string, LayerIsometry>>(ISOMETRY_KEY, {})[model.toString()];
    const inspected = this.inspections.get(model.toString());
    if (!stored || !tensor || !inspected || inspected.mtime !== stored.mtime) return undefined;
    return stored.layers[tensor];
  }

  /** Every node's attributes, formatted for display (read from the model file, not cached). */
  nodeAttributes(uri: vscode.Uri): Promise<NodeAttributes[]> {
    return this.inspector.nodeAttributes(uri.fsPath);
  }

  modelNode(uri: vscode.Uri): ModelNode {
    const key = uri.toString();
    let node = this.models.get(key);
    if (!node) this.models.set(key, (node = { kind: 'model', uri }));
    return node;
  }

  async getChildren(node?: ModelTreeNode): Promise<ModelTreeNode[]> {
    if (!node) {
      const uris = await this.findModels();
      void vscode.commands.executeCommand('setContext', 'robustnessLab.hasModels', uris.length > 0);
      return uris.map((u) => this.modelNode(u));
    }
    switch (node.kind) {
      case 'model': {
        let summary: ModelSummary;
        try {
          summary = await this.inspect(node.uri);
        } catch (e) {
          const detail = (e as Error).message;
          return [{ kind: 'message', model: node, text: `Cannot inspect: ${detail.split('\n')[0]}`, detail }];
        }
        return (['inputs', 'outputs', 'layers'] as const).map((group) => ({ kind: 'group', model: node, group, summary }));
      }
      case 'group': {
        const { summary, model } = node;
        const insertable = new Set(summary.insertionTensors);
        if (node.group === 'layers') {
          return this.entries(
            model,
            groupByModule(listedLayers(summary.layers, this.onlyInsertionPoints), (l) => l.name),
          );
        }
        const list = node.group === 'inputs' ? summary.inputs : summary.outputs;
        const role = node.group === 'inputs' ? 'input' : 'output';
        return list.map((io) => ({ kind: 'io', model, role, io, insertionPoint: role === 'input' && insertable.has(io.name) }));
      }
      case 'module':
        return this.entries(node.model, node.group.children);
      default:
        return [];
    }
  }

  private entries(model: ModelNode, entries: LayerTreeEntry<Layer>[]): ModelTreeNode[] {
    return entries.map((e) => (e.kind === 'group' ? { kind: 'module', model, group: e } : { kind: 'layer', model, layer: e.item, label: e.label }));
  }

  getParent(node: ModelTreeNode): ModelTreeNode | undefined {
    if (node.kind === 'model') return undefined;
    if (node.kind === 'group' || node.kind === 'message') return node.model;
    return undefined; // Layers and tensors are revealed through their model only.
  }

  getTreeItem(node: ModelTreeNode): vscode.TreeItem {
    const C = vscode.TreeItemCollapsibleState;
    switch (node.kind) {
      case 'model': {
        const tfjs = isTfjsUri(node.uri);
        const item = new vscode.TreeItem(modelLabel(node.uri), C.Collapsed);
        item.id = `model:${node.uri.toString()}`;
        const folder = vscode.workspace.getWorkspaceFolder(node.uri);
        item.description = folder
          ? vscode.workspace.asRelativePath(node.uri, (vscode.workspace.workspaceFolders?.length ?? 0) > 1).replace(/\/?[^/]*$/, '')
          : 'outside the workspace';
        item.tooltip = node.uri.fsPath;
        item.resourceUri = node.uri;
        item.accessibilityInformation = {
          label: `${modelLabel(node.uri)}, ${tfjs ? 'TensorFlow.js' : 'ONNX'} model${item.description ? ` in ${item.description}` : ''}`,
        };
        item.iconPath = new vscode.ThemeIcon('circuit-board');
        item.contextValue = 'model';
        return item;
      }
      case 'group': {
        const s = node.summary;
        const layers = listedLayers(s.layers, false).length;
        const count = node.group === 'layers' ? layers : node.group === 'inputs' ? s.inputs.length : s.outputs.length;
        const title = { inputs: 'Inputs', outputs: 'Outputs', layers: 'Layers' }[node.group];
        const item = new vscode.TreeItem(title, node.group === 'layers' ? C.Expanded : C.Collapsed);
        item.id = `group:${node.model.uri.toString()}:${node.group}`;
        const constants = s.layers.length - layers;
        item.description =
          node.group === 'layers'
            ? `${count} · ${s.totalParams.toLocaleString('en-US')} params · ${s.insertionTensors.length} insertion points${this.onlyInsertionPoints ? ' (shown alone)' : ''}`
            : String(count);
        if (node.group === 'layers' && constants) item.tooltip = `${constants} Constant node${constants > 1 ? 's' : ''} not listed.`;
        item.iconPath = new vscode.ThemeIcon({ inputs: 'sign-in', outputs: 'sign-out', layers: 'layers' }[node.group]);
        item.contextValue = `group.${node.group}`;
        return item;
      }
      case 'module': {
        const g = node.group;
        // Expanded: the layers stay one click away, as in the flat list this replaces.
        const item = new vscode.TreeItem(g.label, C.Expanded);
        item.id = `module:${node.model.uri.toString()}:${g.path}`;
        item.description = `${g.count} layers`;
        item.tooltip = `Module ${g.path}: ${g.count} layers whose names lie inside it.`;
        item.accessibilityInformation = { label: `${g.label}, module, ${g.count} layers` };
        item.iconPath = new vscode.ThemeIcon('symbol-namespace');
        item.contextValue = 'module';
        return item;
      }
      case 'layer':
        return this.layerItem(node);
      case 'io': {
        const item = new vscode.TreeItem(node.io.name, C.None);
        item.id = `${node.role}:${node.model.uri.toString()}:${node.io.name}`;
        item.description = `${node.io.elemType} ${shape(node.io.shape)}`;
        const tip = new vscode.MarkdownString(
          `**${node.role === 'input' ? 'Input' : 'Output'}** \`${node.io.name}\`\n\n${node.io.elemType} ${shape(node.io.shape)}`,
        );
        if (node.insertionPoint) tip.appendMarkdown('\n\n$(target) **Insertion point**: a defense can go right on the input.');
        tip.supportThemeIcons = true;
        item.tooltip = tip;
        item.iconPath = node.insertionPoint ? insertionIcon() : new vscode.ThemeIcon(node.role === 'input' ? 'arrow-right' : 'arrow-left');
        item.contextValue = node.insertionPoint ? 'tensor.insertable' : 'tensor';
        return item;
      }
      case 'message': {
        const item = new vscode.TreeItem(node.text, C.None);
        item.tooltip = node.detail;
        item.iconPath = new vscode.ThemeIcon('error', new vscode.ThemeColor('errorForeground'));
        item.contextValue = 'message';
        return item;
      }
    }
  }

  private layerItem(node: LayerNode): vscode.TreeItem {
    const l = node.layer;
    const item = new vscode.TreeItem(node.label ?? l.name, vscode.TreeItemCollapsibleState.None);
    item.id = `layer:${node.model.uri.toString()}:${l.index}`;
    const iso = this.isometryOf(node.model.uri, l.outputs[0]);
    item.description = `${l.op} ${shape(l.shape)}${l.params ? ` · ${l.params.toLocaleString('en-US')} params` : ''}${iso?.pearson != null ? ` · iso r ${iso.pearson.toFixed(2)}` : ''}`;
    // Screen readers (and searches by name) get the full node name, not the part under the module.
    item.accessibilityInformation = { label: `${l.name} ${item.description}${l.insertionPoint ? ', insertion point' : ''}` };
    const tip = new vscode.MarkdownString('', true);
    tip.appendMarkdown(`**${l.name}** · ${l.op} (node ${l.index})\n\n`);
    tip.appendMarkdown(`- inputs: ${l.inputs.map((i) => `\`${i}\``).join(', ') || '–'}\n`);
    tip.appendMarkdown(`- outputs: ${l.outputs.map((o) => `\`${o}\``).join(', ') || '–'}\n`);
    tip.appendMarkdown(`- output shape: ${shape(l.shape)}\n`);
    tip.appendMarkdown(`- parameters: ${l.params.toLocaleString('en-US')}\n\n`);
    tip.appendMarkdown(
      l.insertionPoint
        ? `$(target) **Insertion point**: every path from the input to the output passes through \`${l.outputs[0]}\`, so a defense can go right after this layer (right-click to insert one).`
        : `Not an insertion point: some path to the output bypasses \`${l.outputs[0] ?? '?'}\` (e.g. a skip connection), so a defense here would not see everything.`,
    );
    if (iso)
      tip.appendMarkdown(
        `\n\n**Isometry** (within-class pairs, last *Measure Isometry per Layer*): Pearson r ${iso.pearson?.toFixed(3) ?? '–'}, Spearman ρ ${iso.spearman?.toFixed(3) ?? '–'}, relative distortion ${iso.distortion?.toFixed(3) ?? '–'}: how well distances between inputs of the same class survive to this layer.`,
      );
    item.tooltip = tip;
    item.iconPath = l.insertionPoint ? insertionIcon() : new vscode.ThemeIcon('symbol-operator');
    item.contextValue = l.insertionPoint ? 'layer.insertable' : 'layer';
    return item;
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
    this.changed.dispose();
  }
}

function insertionIcon(): vscode.ThemeIcon {
  return new vscode.ThemeIcon('target', new vscode.ThemeColor('charts.green'));
}

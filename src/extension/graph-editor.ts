/**
 * The model graph editor: a read-only custom editor for *.onnx files and TensorFlow.js model.json
 * files (priority "option", so it sits beside Netron and the like and is offered by Reopen With).
 * The compute process inspects the model (as for the Models view); the webview (webview-ui/src/
 * graph.ts) lays it out with dagre and draws it, insertion points highlighted, skip connections
 * marked. "Insert defense here" runs the Insert Defense command on that layer, as the tree's
 * context menu does. Also here: the Models view's "insertion points only" toggle.
 *
 * The model file is hostile input: every failure is shown in the editor, none is thrown.
 */
import * as vscode from 'vscode';
import { webviewHtml } from './webview-html';
import { buildGraphView, isFromGraphWebview, type FromGraphWebview, type GraphView, type ToGraphWebview } from '../protocol/graph-view';
import type { ModelSummary } from '../protocol/model';
import { modelLabel, type IoNode, type LayerNode } from './models-view';
import { pickModel } from './pickers';
import { registerCommands, uriOf, type Services } from './services';

export const MODEL_GRAPH_VIEW_TYPE = 'robustnessLab.modelGraph';

class ModelDocument implements vscode.CustomDocument {
  constructor(readonly uri: vscode.Uri) {}
  dispose(): void {}
}

/** The tree node the Insert Defense command takes for a graph node, or undefined when it is no insertion point. */
export function insertionNode(s: Services, uri: vscode.Uri, summary: ModelSummary, view: GraphView, nodeId: string): LayerNode | IoNode | undefined {
  const node = view.nodes.find((n) => n.id === nodeId);
  if (!node?.insertionPoint) return undefined;
  const model = s.models.modelNode(uri);
  if (node.kind === 'input') {
    const io = summary.inputs.find((i) => i.name === node.name);
    return io && { kind: 'io', model, role: 'input', io, insertionPoint: true };
  }
  const layer = summary.layers.find((l) => l.index === node.index);
  return layer?.insertionPoint ? { kind: 'layer', model, layer } : undefined;
}

class ModelGraphEditorProvider implements vscode.CustomReadonlyEditorProvider<ModelDocument> {
  constructor(private readonly s: Services) {}

  openCustomDocument(uri: vscode.Uri): ModelDocument {
    return new ModelDocument(uri);
  }

  resolveCustomEditor(document: ModelDocument, panel: vscode.WebviewPanel): void {
    const { s } = this;
    const { uri } = document;
    const webview = panel.webview;
    webview.options = { enableScripts: true, enableCommandUris: false, localResourceRoots: [vscode.Uri.joinPath(s.context.extensionUri, 'dist', 'webview')] };
    webview.html = html(webview, s.context.extensionUri);
    const title = modelLabel(uri);
    let shown: { summary: ModelSummary; view: GraphView } | undefined;
    let loading: Promise<void> | undefined;
    const post = (m: ToGraphWebview) => void webview.postMessage(m);

    const load = () =>
      (loading ??= (async () => {
        try {
          const [summary, attributes] = await Promise.all([
            s.models.inspect(uri),
            // Attributes only add detail: a model that inspects but whose attributes fail still draws.
            s.models.nodeAttributes(uri).catch((e: Error) => void s.output.warn(`Graph editor: no attributes for ${uri.fsPath}: ${e.message}`)),
          ]);
          const view = buildGraphView(summary, attributes ?? undefined);
          shown = { summary, view };
          post({ type: 'graph', title, view, canInsert: vscode.workspace.isTrusted });
        } catch (e) {
          shown = undefined;
          const message = (e as Error).message ?? String(e);
          s.output.warn(`Graph editor: cannot show ${uri.fsPath}: ${message}`);
          post({ type: 'error', title, message });
        } finally {
          loading = undefined;
        }
      })());

    const onMessage = async (m: FromGraphWebview) => {
      switch (m.type) {
        case 'ready':
          // A webview that was hidden and shown again asks anew: the inspection is cached by the Models view.
          return load();
        case 'insertDefense': {
          if (!shown) return;
          const target = insertionNode(s, uri, shown.summary, shown.view, m.node);
          if (!target) return void s.output.warn(`Graph editor: ${m.node} is not an insertion point of ${uri.fsPath}.`);
          if (!s.requireTrust('insert a defense')) return;
          await vscode.commands.executeCommand('robustnessLab.insertDefense', target);
          return;
        }
        case 'error':
          s.output.warn(`Graph editor: ${m.message}`);
          return;
      }
    };

    const watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.joinPath(uri, '..'), uri.path.split('/').pop() ?? ''));
    const disposables = [
      watcher,
      watcher.onDidChange(() => void load()),
      watcher.onDidCreate(() => void load()),
      webview.onDidReceiveMessage((m: unknown) => {
        if (isFromGraphWebview(m)) void onMessage(m);
        else s.output.warn(`Graph editor: ignored an unexpected message ${JSON.stringify(m)?.slice(0, 200)}`);
      }),
      vscode.workspace.onDidGrantWorkspaceTrust(() => post({ type: 'trust', canInsert: true })),
    ];
    panel.onDidDispose(() => disposables.forEach((d) => d.dispose()));
  }
}

function html(webview: vscode.Webview, extensionUri: vscode.Uri): string {
  return webviewHtml(webview, extensionUri, { entry: 'graph', title: 'Model Graph', placeholder: '<p class="loading">Inspecting the model…</p>' });
}

/** The graph editor, the command that opens a model in it, and the Models view's filter toggle. */
export function registerGraphEditor(s: Services): void {
  s.context.subscriptions.push(
    vscode.window.registerCustomEditorProvider(MODEL_GRAPH_VIEW_TYPE, new ModelGraphEditorProvider(s), {
      supportsMultipleEditorsPerDocument: true,
    }),
  );
  registerCommands(s, {
    'robustnessLab.openModelGraph': async (arg?: unknown) => {
      // From the palette: the model in the active editor (a .onnx shows as a binary-file page), else a pick.
      const active = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
      const activeUri = active instanceof vscode.TabInputText || active instanceof vscode.TabInputCustom ? active.uri : undefined;
      const uri =
        uriOf(arg) ??
        (activeUri && /\.(onnx|json)$/i.test(activeUri.path) ? activeUri : undefined) ??
        (await pickModel(await s.models.findModels(), 'Open which model as a graph?'));
      if (!uri) return;
      await vscode.commands.executeCommand('vscode.openWith', uri, MODEL_GRAPH_VIEW_TYPE);
    },
    'robustnessLab.showInsertionPointsOnly': () => s.models.setInsertionPointsOnly(true),
    'robustnessLab.showAllLayers': () => s.models.setInsertionPointsOnly(false),
  });
}

/** The user's settings (robustnessLab.*) and where results go. */
import { resultsFolderInside, ResultsFolderError } from '../worker/launch';
import * as vscode from 'vscode';
import type { EvaluationConfig } from '../protocol/experiment';

export interface RuntimeSettings {
  ep: EvaluationConfig['ep'];
  threads: number;
  lanes: number | 'auto';
  batchSize: number;
  /** 0: every sample. */
  sampleLimit: number;
}

export function runtimeSettings(scope?: vscode.Uri): RuntimeSettings {
  const c = vscode.workspace.getConfiguration('robustnessLab', scope);
  const ep = c.get<string>('executionProvider', 'auto');
  const int = (key: string, fallback: number, min: number) => {
    const v = c.get<number>(key, fallback);
    return Number.isInteger(v) && v >= min ? v : fallback;
  };
  return {
    ep: ep === 'cpu' || ep === 'cuda' ? ep : 'auto',
    threads: int('threads', 0, 0),
    lanes: c.get<unknown>('lanes', 'auto') === 'auto' ? 'auto' : int('lanes', 1, 1),
    batchSize: int('batchSize', 100, 1),
    sampleLimit: int('sampleLimit', 0, 0),
  };
}

/**
 * The results folder for runs of files under `scope` (the first workspace folder by default);
 * relative settings are relative to that workspace folder. Without a workspace: global storage.
 */
export function resultsFolder(context: vscode.ExtensionContext, scope?: vscode.Uri): vscode.Uri {
  const folder = (scope && vscode.workspace.getWorkspaceFolder(scope)) ?? vscode.workspace.workspaceFolders?.[0];
  const setting = vscode.workspace.getConfiguration('robustnessLab', folder?.uri).get<string>('resultsFolder', 'rlab-results');
  if (!folder) return vscode.Uri.joinPath(context.globalStorageUri, 'runs');
  try {
    return vscode.Uri.file(resultsFolderInside(folder.uri.fsPath, setting));
  } catch (e) {
    if (!(e instanceof ResultsFolderError)) throw e;
    void vscode.window.showWarningMessage(`Robustness Lab: ${e.message} Using rlab-results instead.`);
    return vscode.Uri.joinPath(folder.uri, 'rlab-results');
  }
}

/** Every results folder of the workspace (one per workspace folder, deduplicated). */
export function allResultsFolders(context: vscode.ExtensionContext): vscode.Uri[] {
  const folders = vscode.workspace.workspaceFolders ?? [];
  const uris = folders.length ? folders.map((f) => resultsFolder(context, f.uri)) : [resultsFolder(context)];
  return [...new Map(uris.map((u) => [u.toString(), u])).values()];
}

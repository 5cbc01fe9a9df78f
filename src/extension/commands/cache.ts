/**
 * Clear Fit Cache: fitted defenses are cached in a .rlab-cache folder next to each model (the
 * engine's default cache folder), so that a rerun skips the fit. The command lists every cache
 * folder of the workspace's models with its size, and deletes the ones picked after a confirmation.
 */
import path from 'node:path';
import * as vscode from 'vscode';
import type { Commands, Services } from '../services';

/** The engine's default cache folder for a model (src/core/defenses/fit.ts: defaultCacheDir). */
const CACHE_FOLDER = '.rlab-cache';

async function folderBytes(uri: vscode.Uri): Promise<number> {
  let total = 0;
  for (const [name, type] of await vscode.workspace.fs.readDirectory(uri).then(undefined, () => [] as [string, vscode.FileType][])) {
    const child = vscode.Uri.joinPath(uri, name);
    if (type & vscode.FileType.SymbolicLink) continue; // never follow links out of the folder
    if (type === vscode.FileType.Directory) total += await folderBytes(child);
    else total += (await vscode.workspace.fs.stat(child).then(undefined, () => ({ size: 0 }))).size;
  }
  return total;
}

export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GB`;
}

/** The cache folders that exist next to the workspace's models, with their sizes. */
export async function fitCaches(models: vscode.Uri[]): Promise<{ uri: vscode.Uri; bytes: number }[]> {
  const folders = [...new Set(models.map((m) => path.join(path.dirname(m.fsPath), CACHE_FOLDER)))].map((p) => vscode.Uri.file(p));
  const found: { uri: vscode.Uri; bytes: number }[] = [];
  for (const uri of folders) {
    const stat = await vscode.workspace.fs.stat(uri).then(undefined, () => undefined);
    if (stat?.type === vscode.FileType.Directory) found.push({ uri, bytes: await folderBytes(uri) });
  }
  return found;
}

async function clearCache(s: Services): Promise<void> {
  const caches = await fitCaches(await s.models.findModels());
  if (caches.length === 0) return void vscode.window.showInformationMessage('Robustness Lab: no fit cache in this workspace.');
  const total = caches.reduce((a, c) => a + c.bytes, 0);
  const picked = await vscode.window.showQuickPick(
    caches.map((c) => ({ label: vscode.workspace.asRelativePath(c.uri), description: formatSize(c.bytes), picked: true, cache: c })),
    {
      title: `Clear Fit Cache (${formatSize(total)} in ${caches.length} folder${caches.length === 1 ? '' : 's'})`,
      canPickMany: true,
      placeHolder: 'Fitted defenses; the next run fits them again',
    },
  );
  if (!picked?.length) return;
  const bytes = picked.reduce((a, p) => a + p.cache.bytes, 0);
  const ok = await vscode.window.showWarningMessage(
    `Delete ${picked.length === 1 ? picked[0].label : `${picked.length} cache folders`} (${formatSize(bytes)})? Defenses are fitted again on the next run.`,
    { modal: true },
    'Delete',
  );
  if (ok !== 'Delete') return;
  for (const p of picked) await vscode.workspace.fs.delete(p.cache.uri, { recursive: true, useTrash: false });
  s.output.info(`Fit cache cleared: ${picked.map((p) => p.cache.uri.fsPath).join(', ')} (${formatSize(bytes)}).`);
  void vscode.window.showInformationMessage(`Robustness Lab: fit cache cleared (${formatSize(bytes)}).`);
}

export function cacheCommands(s: Services): Commands {
  return { 'robustnessLab.clearCache': () => clearCache(s) };
}

/**
 * The walkthrough's "Open the demo": copies the bundled demo model and data, with an experiment
 * file, into a folder and opens it (or reveals it when it is already in the workspace).
 */
import * as vscode from 'vscode';

export const DEMO_FOLDER = 'robustness-lab-demo';
/** The demo experiment ships in media/demo/ (npm run serve uses the same file). */
export const DEMO_EXPERIMENT = 'fashion-cnn-fgsm.rlab.json';

async function exists(uri: vscode.Uri): Promise<boolean> {
  return vscode.workspace.fs.stat(uri).then(
    () => true,
    () => false,
  );
}

export async function openDemo(extensionUri: vscode.Uri): Promise<void> {
  let parent = vscode.workspace.workspaceFolders?.[0]?.uri;
  if (!parent) {
    const picked = await vscode.window.showOpenDialog({
      title: `Create the folder ${DEMO_FOLDER} in…`,
      canSelectFiles: false,
      canSelectFolders: true,
      openLabel: 'Create Demo Here',
    });
    if (!picked?.[0]) return;
    parent = picked[0];
  }
  const target = vscode.Uri.joinPath(parent, DEMO_FOLDER);
  if (!(await exists(target))) {
    const source = vscode.Uri.joinPath(extensionUri, 'demo');
    for (const name of ['fashion-cnn.onnx', 'fashion-cnn.md', 'data']) {
      await vscode.workspace.fs.copy(vscode.Uri.joinPath(source, name), vscode.Uri.joinPath(target, name), { overwrite: false });
    }
    await vscode.workspace.fs.copy(vscode.Uri.joinPath(extensionUri, 'media', 'demo', DEMO_EXPERIMENT), vscode.Uri.joinPath(target, DEMO_EXPERIMENT));
  }
  if (!vscode.workspace.getWorkspaceFolder(target)) {
    await vscode.commands.executeCommand('vscode.openFolder', target);
    return;
  }
  await vscode.commands.executeCommand('robustnessLab.models.focus');
  const readme = vscode.Uri.joinPath(target, 'fashion-cnn.md');
  await vscode.commands.executeCommand('markdown.showPreview', readme).then(undefined, () => vscode.window.showTextDocument(readme, { preview: true }));
  void vscode.window.showInformationMessage(
    `The demo is in ${vscode.workspace.asRelativePath(target)}: expand fashion-cnn.onnx in the Models view, right-click a layer to insert a defense, or run ${DEMO_EXPERIMENT}.`,
  );
}

/**
 * Workspace Trust: in Restricted Mode models can be inspected (their graph is read and shapes are
 * probed in the compute process) but not evaluated, because evaluating runs the model and reads
 * data files that the workspace names.
 */
import * as vscode from 'vscode';

export const RESTRICTED_MESSAGE =
  'Restricted Mode: models can be inspected but not evaluated. Evaluating runs the model with onnxruntime on data files this workspace names; trust the workspace to run it.';

/** True when running is allowed; otherwise says why and offers to manage trust. */
export function requireTrust(action: string): boolean {
  if (vscode.workspace.isTrusted) return true;
  void vscode.window
    .showWarningMessage(`Robustness Lab cannot ${action} in Restricted Mode. ${RESTRICTED_MESSAGE.split('. ').slice(1).join('. ')}`, 'Manage Workspace Trust')
    .then((choice) => choice && vscode.commands.executeCommand('workbench.trust.manage'));
  return false;
}

/** Shows `message` on a view while the workspace is in Restricted Mode. */
export function explainRestrictedMode(view: vscode.TreeView<unknown>, message: string): vscode.Disposable {
  const update = () => (view.message = vscode.workspace.isTrusted ? undefined : message);
  update();
  return vscode.workspace.onDidGrantWorkspaceTrust(update);
}

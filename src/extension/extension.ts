/**
 * The VS Code front end. Kept thin: commands gather inputs, the worker process computes.
 * (The sidebar inspector, experiments and results panel arrive with the UI work.)
 */
import * as vscode from 'vscode';
import { DEFAULT_CONFIG, type EvaluationConfig } from '../protocol/experiment';
import { WorkerClient } from './worker-client';

export function activate(context: vscode.ExtensionContext): void {
  const output = vscode.window.createOutputChannel('Robustness Lab');
  const worker = new WorkerClient(vscode.Uri.joinPath(context.extensionUri, 'dist').fsPath);
  context.subscriptions.push(output, { dispose: () => worker.dispose() });

  context.subscriptions.push(
    vscode.commands.registerCommand('robustnessLab.evaluateModel', async (modelUri?: vscode.Uri) => {
      const model = modelUri ?? (await pickFile('Select an ONNX model', { 'ONNX models': ['onnx'] }));
      if (!model) return;
      const data = await pickFile('Select the test images (IDX, NPY, NPZ)', undefined);
      if (!data) return;
      const labels = await pickFile('Select the labels file (cancel if the dataset holds its labels)', undefined);
      const config: EvaluationConfig = { ...DEFAULT_CONFIG, model: model.fsPath, data: data.fsPath, labels: labels?.fsPath };
      await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: 'Robustness Lab', cancellable: true },
        async (progress, token) => {
          try {
            const result = await worker.run(
              config,
              {
                onProgress: (p) => progress.report({ message: `${p.phase} ${p.done}/${p.total}` }),
                onLog: (line) => output.appendLine(line),
              },
              { onCancel: (listener) => token.onCancellationRequested(listener) },
            );
            const summary = `Clean accuracy ${(100 * result.clean.accuracy).toFixed(2)}% on ${result.clean.count} samples (${result.runtime.executionProvider}).`;
            output.appendLine(summary);
            void vscode.window.showInformationMessage(summary);
          } catch (e) {
            const err = e as Error & { cancelled?: boolean };
            if (err.cancelled) return;
            output.appendLine(err.message);
            void vscode.window.showErrorMessage(`Robustness Lab: ${err.message.split('\n')[0]}`, 'Show Log').then((choice) => choice && output.show());
          }
        },
      );
    }),
  );
}

async function pickFile(title: string, filters: Record<string, string[]> | undefined): Promise<vscode.Uri | undefined> {
  const picked = await vscode.window.showOpenDialog({ title, canSelectMany: false, filters });
  return picked?.[0];
}

export function deactivate(): void {}

/** Open Model: an ONNX file (from anywhere) added to the Models view and revealed there. */
import * as vscode from 'vscode';
import { uriOf, type Commands, type Services } from '../services';

export function openModelCommands(s: Services): Commands {
  return {
    'robustnessLab.openModel': async (arg?: unknown) => {
      const uri =
        uriOf(arg) ??
        (
          await vscode.window.showOpenDialog({
            title: 'Open Model',
            canSelectMany: false,
            filters: { 'Models (ONNX, TensorFlow.js model.json)': ['onnx', 'json'] },
          })
        )?.[0];
      if (!uri) return;
      const node = await s.models.open(uri);
      await vscode.commands.executeCommand('robustnessLab.models.focus');
      await s.modelsView.reveal(node, { expand: true, select: true, focus: true });
    },
  };
}

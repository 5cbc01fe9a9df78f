/** Export Defended Model: fits an experiment's defense and writes the defended classifier as one ONNX model. */
import path from 'node:path';
import * as vscode from 'vscode';
import { experimentToConfig } from '../../protocol/experiment-file';
import { basename } from '../../report/analysis';
import { readExperiment } from '../experiments-view';
import type { Commands, Services } from '../services';
import { chooseExperiment } from './run-experiment';

export function exportDefendedModelCommands(s: Services): Commands {
  return {
    'robustnessLab.exportDefendedModel': async (arg?: unknown) => {
      const uri = await chooseExperiment(s, arg, (n) => !!n.experiment?.defense, 'Export the defended model of which experiment?');
      if (!uri) return;
      let experiment;
      try {
        experiment = await readExperiment(uri);
      } catch (e) {
        return void vscode.window.showErrorMessage(`Robustness Lab: ${(e as Error).message}`);
      }
      if (!experiment.defense)
        return void vscode.window.showWarningMessage(`Robustness Lab: ${basename(uri.fsPath)} has no defense to export; insert one at a layer first.`);
      const model = path.resolve(path.dirname(uri.fsPath), experiment.model);
      const out = await vscode.window.showSaveDialog({
        title: 'Export Defended Model',
        defaultUri: vscode.Uri.file(model.replace(/(\.onnx|[\\/]model\.json)$/i, `-${experiment.defense.kind}.onnx`)),
        filters: { 'ONNX models': ['onnx'] },
      });
      if (!out) return;
      if (await s.runner.exportDefended({ title: basename(out.fsPath), config: experimentToConfig(experiment, uri.fsPath), scope: uri }, out)) {
        s.models.refresh();
        void vscode.window.showInformationMessage(`Defended model written to ${vscode.workspace.asRelativePath(out)}.`);
      }
    },
  };
}

/**
 * Insert Defense at Layer (robustnessLab.insertDefense: any defense, any layer) and one command
 * per defense of the catalogue for a layer's context menu (robustnessLab.insertLesci, …).
 */
import * as vscode from 'vscode';
import { basename } from '../../report/analysis';
import { DEFENSES, insertCommand, insertDefense } from '../defense-wizard';
import { insertionTarget, type InsertionTarget, type ModelTreeNode } from '../models-view';
import { pickModel } from '../pickers';
import { uriOf, type Commands, type Services } from '../services';
import { completeStep } from '../walkthrough';
import { runExperimentFile } from './run-experiment';

/** The layer to insert at: from the tree, or picked among the model's insertion points. */
async function chooseInsertionTarget(s: Services, arg: unknown): Promise<InsertionTarget | undefined> {
  const node = arg as ModelTreeNode | undefined;
  if (node && typeof node === 'object' && 'kind' in node) {
    const target = insertionTarget(node);
    if (target) return target;
  }
  const model = uriOf(arg) ?? (await pickModel(await s.models.findModels(), 'Insert a defense into which model?'));
  if (!model) return undefined;
  const summary = await vscode.window.withProgress({ location: { viewId: 'robustnessLab.models' }, title: 'Inspecting' }, () => s.models.inspect(model));
  const points = [
    ...summary.inputs
      .filter((i) => summary.insertionTensors.includes(i.name))
      .map((i) => ({ label: `$(target) input ${i.name}`, description: `[${i.shape.join(', ')}]`, tensor: i.name, name: `input ${i.name}` })),
    ...summary.layers
      .filter((l) => l.insertionPoint)
      .map((l) => ({ label: `$(target) ${l.name}`, description: `${l.op} [${l.shape?.join(', ') ?? '?'}]`, tensor: l.outputs[0], name: l.name })),
  ];
  const choice = await vscode.window.showQuickPick(points, {
    title: `Insert a defense into ${basename(model.fsPath)}`,
    placeHolder: 'After which layer? (insertion points only)',
  });
  return choice && { model, tensor: choice.tensor, label: choice.name };
}

/** Inserts a defense (`kind`, or one the user picks) at the layer of `arg` (or one the user picks). */
async function insertAt(s: Services, kind: string | undefined, arg: unknown): Promise<void> {
  let target: InsertionTarget | undefined;
  try {
    target = await chooseInsertionTarget(s, arg);
  } catch (e) {
    return void vscode.window.showErrorMessage(`Robustness Lab: cannot inspect the model: ${(e as Error).message.split('\n')[0]}`);
  }
  if (!target) return;
  const chosenKind =
    kind ??
    (
      await vscode.window.showQuickPick(
        DEFENSES.map((d) => ({ label: d.title, description: d.description, defense: d.kind })),
        { title: `Insert a defense after ${target.label}`, placeHolder: 'Which defense?' },
      )
    )?.defense;
  if (!chosenKind) return;
  try {
    const file = await insertDefense(chosenKind, target, await s.experiments.listExperiments(), {
      describeData: (data, labels) => s.inspector.describeData(data, labels),
      state: s.context.workspaceState,
    });
    if (!file) return;
    completeStep('defenseInserted');
    s.experiments.refresh();
    void vscode.window
      .showInformationMessage(`Defense written to ${vscode.workspace.asRelativePath(file)}.`, 'Run Experiment')
      .then((choice) => choice && runExperimentFile(s, file));
  } catch (e) {
    void vscode.window.showErrorMessage(`Robustness Lab: ${(e as Error).message}`);
  }
}

export function insertDefenseCommands(s: Services): Commands {
  const commands: Commands = { 'robustnessLab.insertDefense': (arg?: unknown) => insertAt(s, undefined, arg) };
  for (const d of DEFENSES) commands[insertCommand(d.kind)] = (arg?: unknown) => insertAt(s, d.kind, arg);
  return commands;
}

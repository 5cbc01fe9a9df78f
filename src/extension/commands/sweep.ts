/**
 * Sweep Defense over Layers… (robustnessLab.sweepLayers): a defense of the catalogue, the insertion
 * points to try (all by default), the reference set it is fitted on, the test data and the
 * attacks; then one run in the compute process (an evaluation with the `sweep` section: the
 * baseline attacked once, the defense fitted, cached and attacked at each layer in turn, progress
 * per layer, cancellable) and the results panel with the accuracy-against-robustness chart.
 */
import * as vscode from 'vscode';
import { CATALOGUE } from '../../protocol/catalogue';
import type { ModelSummary } from '../../protocol/model';
import { basename } from '../../report/analysis';
import { askDefenseParams } from '../defense-wizard';
import { inputNumber, pickAttacks, pickDataset, pickLabels, pickModel, type Step } from '../pickers';
import { panelRun } from '../results-panel';
import { uriOf, type Commands, type Services } from '../services';

const TOTAL_STEPS = 10;

/** The insertion points to sweep: every one is picked at first; undefined on cancel, [] for all. */
async function pickLayers(step: Step, summary: ModelSummary): Promise<string[] | undefined> {
  const points = [
    ...summary.inputs
      .filter((i) => summary.insertionTensors.includes(i.name))
      .map((i) => ({ label: `input ${i.name}`, description: `[${i.shape.join(', ')}]`, tensor: i.name, picked: false })),
    ...summary.layers
      .filter((l) => l.insertionPoint)
      .map((l) => ({ label: l.outputs[0], description: `${l.index + 1} · ${l.op} [${l.shape?.join(', ') ?? '?'}]`, tensor: l.outputs[0], picked: true })),
  ];
  if (points.length === 0) {
    void vscode.window.showErrorMessage(`Robustness Lab: ${basename(summary.path)} has no insertion point to sweep.`);
    return undefined;
  }
  const picked = await vscode.window.showQuickPick(points, {
    title: `${step.title} (${step.step}/${step.totalSteps})`,
    placeHolder: 'Insertion points to put the defense after (all after the input are picked)',
    canPickMany: true,
    ignoreFocusOut: true,
    matchOnDescription: true,
  });
  if (!picked || picked.length === 0) return undefined;
  const all = points.filter((p) => p.picked);
  const sameAsAll = picked.length === all.length && picked.every((p) => p.picked);
  return sameAsAll ? [] : picked.map((p) => p.tensor);
}

export function sweepCommands(s: Services): Commands {
  return {
    'robustnessLab.sweepLayers': async (arg?: unknown) => {
      if (!s.requireTrust('sweep a defense over layers')) return; // before asking for anything
      const model = uriOf(arg) ?? (await pickModel(await s.models.findModels(), 'Sweep Defense over Layers'));
      if (!model) return;
      const title = `Sweep layers of ${basename(model.fsPath)}`;
      const step = (n: number): Step => ({ title, step: n, totalSteps: TOTAL_STEPS });
      const defense = await vscode.window.showQuickPick(
        CATALOGUE.defenses.map((d) => ({ label: d.title, description: d.description, detail: d.reference, defense: d.kind })),
        { title: `${title} (1/${TOTAL_STEPS})`, placeHolder: 'Which defense to insert at each layer (its main parameters come next)?', ignoreFocusOut: true },
      );
      if (!defense) return;
      const params = await askDefenseParams(defense.defense, `${title}: ${defense.label} parameters`);
      if (!params) return;
      let summary: ModelSummary;
      try {
        summary = await vscode.window.withProgress({ location: { viewId: 'robustnessLab.models' }, title: 'Inspecting' }, () => s.models.inspect(model));
      } catch (e) {
        return void vscode.window.showErrorMessage(`Robustness Lab: cannot inspect the model: ${(e as Error).message.split('\n')[0]}`);
      }
      const layers = await pickLayers(step(2), summary);
      if (!layers) return;
      const reference = await pickDataset(step(3), `Reference images the ${defense.label} defense is fitted on at each layer`, /train/i);
      if (!reference) return;
      const referenceLabels = await pickLabels(step(4), reference);
      if (!referenceLabels) return;
      const referenceLimit = await inputNumber(step(5), {
        prompt: 'Use the first N reference images (empty: all of them)',
        integer: true,
        min: 1,
        optional: true,
      });
      if (referenceLimit === undefined) return;
      const data = await pickDataset(step(6), 'Test images to evaluate on', /test|t10k|val/i);
      if (!data) return;
      const labels = await pickLabels(step(7), data);
      if (!labels) return;
      const attacks = await pickAttacks(step(8));
      if (!attacks) return;
      const outcome = await s.runner.run({
        title,
        config: {
          model: model.fsPath,
          data: data.fsPath,
          labels: labels.uri?.fsPath,
          attacks: attacks.plan,
          defense: {
            kind: defense.defense,
            // Each layer of the sweep in turn; this one is not used on its own.
            layer: layers[0] ?? summary.insertionTensors[0] ?? '',
            reference: reference.fsPath,
            ...(referenceLabels.uri && { referenceLabels: referenceLabels.uri.fsPath }),
            ...(referenceLimit !== null && { referenceLimit }),
            ...(Object.keys(params).length && { [defense.defense]: params }),
          },
          sweep: layers.length ? { layers } : {},
        },
        scope: model,
      });
      if (outcome) s.showRuns([panelRun(outcome.file, outcome.result)]);
    },
  };
}

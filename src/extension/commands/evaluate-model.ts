/** Evaluate Robustness: a model, test data, labels and attacks, then a run and the results panel. */
import { basename } from '../../report/analysis';
import { pickAttacks, pickDataset, pickLabels, pickModel } from '../pickers';
import { panelRun } from '../results-panel';
import { uriOf, type Commands, type Services } from '../services';

export function evaluateModelCommands(s: Services): Commands {
  return {
    'robustnessLab.evaluateModel': async (arg?: unknown) => {
      if (!s.requireTrust('evaluate a model')) return; // before asking for anything
      const model = uriOf(arg) ?? (await pickModel(await s.models.findModels(), 'Evaluate Robustness'));
      if (!model) return;
      const title = `Evaluate ${basename(model.fsPath)}`;
      const step = (n: number) => ({ title, step: n, totalSteps: 5 });
      const data = await pickDataset(step(1), 'Test images to evaluate on', /test|t10k|val/i);
      if (!data) return;
      const labels = await pickLabels(step(2), data);
      if (!labels) return;
      const attacks = await pickAttacks(step(3));
      if (!attacks) return;
      const outcome = await s.runner.run({
        title: basename(model.fsPath),
        config: { model: model.fsPath, data: data.fsPath, labels: labels.uri?.fsPath, attacks: attacks.plan },
        scope: model,
      });
      if (outcome) s.showRuns([panelRun(outcome.file, outcome.result)]);
    },
  };
}

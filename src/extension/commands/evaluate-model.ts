/** Evaluate Robustness: a model, then the evaluation steps of the defense wizard (with Back), a run and the results panel. */
import { basename } from '../../report/analysis';
import { askEvaluation } from '../defense-wizard';
import { pickModel } from '../pickers';
import { panelRun } from '../results-panel';
import { uriOf, type Commands, type Services } from '../services';

export function evaluateModelCommands(s: Services): Commands {
  return {
    'robustnessLab.evaluateModel': async (arg?: unknown) => {
      if (!s.requireTrust('evaluate a model')) return; // before asking for anything
      const model = uriOf(arg) ?? (await pickModel(await s.models.findModels(), 'Evaluate Robustness'));
      if (!model) return;
      const asked = await askEvaluation(model, { describeData: (data, labels) => s.inspector.describeData(data, labels), state: s.context.workspaceState });
      if (!asked) return;
      const outcome = await s.runner.run({
        title: basename(model.fsPath),
        config: { model: model.fsPath, ...asked },
        scope: model,
      });
      if (outcome) s.showRuns([panelRun(outcome.file, outcome.result)]);
    },
  };
}

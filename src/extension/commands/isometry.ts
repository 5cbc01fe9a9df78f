/**
 * Measure Isometry per Layer: a model, data and labels, then a run in the compute process (an
 * evaluation with the isometry section, no attacks) and the results panel, which charts the
 * within-class correlation and distortion against depth.
 */
import { DEFAULT_ISOMETRY_PAIRS } from '../../protocol/experiment';
import { basename } from '../../report/analysis';
import { inputNumber, pickDataset, pickLabels, pickModel } from '../pickers';
import { panelRun } from '../results-panel';
import { uriOf, type Commands, type Services } from '../services';

export function isometryCommands(s: Services): Commands {
  return {
    'robustnessLab.measureIsometry': async (arg?: unknown) => {
      if (!s.requireTrust('measure isometry')) return; // before asking for anything
      const model = uriOf(arg) ?? (await pickModel(await s.models.findModels(), 'Measure Isometry per Layer'));
      if (!model) return;
      const title = `Isometry of ${basename(model.fsPath)}`;
      const step = (n: number) => ({ title, step: n, totalSteps: 3 });
      const data = await pickDataset(step(1), 'Images to draw the pairs from (labels tell within-class from between-class pairs)', /test|t10k|val/i);
      if (!data) return;
      const labels = await pickLabels(step(2), data);
      if (!labels) return;
      const pairs = await inputNumber(step(3), {
        prompt: 'Pairs of each kind (within-class and between-class), drawn with the run seed',
        value: DEFAULT_ISOMETRY_PAIRS,
        integer: true,
        min: 1,
        max: 10_000_000,
      });
      if (pairs === undefined) return;
      const outcome = await s.runner.run({
        title,
        config: { model: model.fsPath, data: data.fsPath, labels: labels.uri?.fsPath, isometry: { pairs: pairs ?? DEFAULT_ISOMETRY_PAIRS } },
        scope: model,
      });
      if (!outcome) return;
      if (outcome.result.isometry) await s.models.setIsometry(model, outcome.result.isometry);
      s.showRuns([panelRun(outcome.file, outcome.result)]);
    },
  };
}

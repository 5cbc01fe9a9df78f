/** Cancel Evaluation, Refresh and Show Log. */
import type { Commands, Services } from '../services';

export function miscCommands(s: Services): Commands {
  return {
    'robustnessLab.cancelEvaluation': () => s.runner.cancel(),
    'robustnessLab.refresh': () => {
      s.models.refresh();
      s.experiments.refresh();
      s.runs.refresh();
    },
    'robustnessLab.showLog': () => s.output.show(),
  };
}

/** Open Demo (also the walkthrough's step): the bundled demo model and data in a folder of their own. */
import { openDemo } from '../demo';
import type { Commands, Services } from '../services';
import { completeStep } from '../walkthrough';

export function demoCommands(s: Services): Commands {
  return {
    'robustnessLab.openDemo': async () => {
      await openDemo(s.context.extensionUri);
      completeStep('demoOpened');
    },
  };
}

/**
 * The command-line front end: parses flags into the same configs the extension uses, calls the
 * engine, prints tables. No logic of its own beyond presentation.
 */
import { UserError } from '../core/errors';
import { CancelledError } from '../core/eval/evaluate';
import { TOOL_VERSION } from '../core/version';
import { EVALUATE_USAGE, evaluateCommand } from './commands/evaluate';
import { EXPORT_USAGE, exportCommand } from './commands/export';
import { GRADCHECK_USAGE, GRADIENT_USAGE, gradcheckCommand, gradientCommand } from './commands/gradient';
import { INSPECT_USAGE, inspectCommand } from './commands/inspect';

const USAGE = `robustness-lab ${TOOL_VERSION}: adversarial robustness of ONNX image classifiers

Usage:
  ${INSPECT_USAGE}
  ${EVALUATE_USAGE}
  ${GRADIENT_USAGE}
  ${GRADCHECK_USAGE}
  ${EXPORT_USAGE}
  robustness-lab fool --model <model.onnx> --data <images> --labels <file> [--defense dae ...] [--fool-targets ...]

Datasets: IDX (raw or .gz), .npy, .npz, or a folder with one sub-folder of PNG/JPEG images per class.
Run 'robustness-lab <command> --help' for the flags of one command.`;

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  inspect: inspectCommand,
  evaluate: evaluateCommand,
  gradient: gradientCommand,
  gradcheck: gradcheckCommand,
  export: exportCommand,
  // The fooling generator of the dAE paper: an evaluation with --fool and no attacks.
  fool: (argv) => evaluateCommand([...argv, '--fool']),
};

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command && COMMANDS[command]) return COMMANDS[command](rest);
  if (command === 'version' || command === '--version') {
    console.log(TOOL_VERSION);
    return 0;
  }
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    console.log(USAGE);
    return command ? 0 : 2;
  }
  console.error(`Unknown command '${command}'.\n\n${USAGE}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof UserError || e instanceof CancelledError) {
      console.error(`error: ${e.message}`);
      process.exitCode = e instanceof CancelledError ? 130 : 2;
    } else {
      console.error(e);
      process.exitCode = 1;
    }
  },
);

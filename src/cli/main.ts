/**
 * The command-line front end: parses flags into the same configs the extension uses, calls the
 * engine, prints tables. No logic of its own beyond presentation.
 */
import { isCancelled } from '../core/cancel';
import { UserError } from '../core/errors';
import { guardWrites } from '../core/fs-atomic';
import { TOOL_VERSION } from '../core/version';
import { cancelCli, cliSignal } from './args';
import { EVALUATE_USAGE, evaluateCommand } from './commands/evaluate';
import { EXPORT_USAGE, exportCommand } from './commands/export';
import { GRADCHECK_USAGE, GRADIENT_USAGE, gradcheckCommand, gradientCommand } from './commands/gradient';
import { INSPECT_USAGE, inspectCommand } from './commands/inspect';
import { ISOMETRY_USAGE, isometryCommand } from './commands/isometry';
import { RUN_USAGE, runCommand } from './commands/run';
import { SWEEP_USAGE, sweepCommand } from './commands/sweep';

const USAGE = `robustness-lab ${TOOL_VERSION}: adversarial robustness of ONNX image classifiers

Usage:
  ${INSPECT_USAGE}
  ${EVALUATE_USAGE}
  ${RUN_USAGE}
  ${GRADIENT_USAGE}
  ${GRADCHECK_USAGE}
  ${EXPORT_USAGE}
  ${ISOMETRY_USAGE}
  ${SWEEP_USAGE}
  robustness-lab fool --model <model.onnx> --data <images> --labels <file> [--defense dae ...] [--fool-targets ...]

Datasets: IDX (raw or .gz), .npy, .npz, or a folder with one sub-folder of PNG/JPEG images per class.
Run 'robustness-lab <command> --help' for the flags of one command.`;

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  inspect: inspectCommand,
  evaluate: evaluateCommand,
  run: runCommand,
  gradient: gradientCommand,
  gradcheck: gradcheckCommand,
  export: exportCommand,
  isometry: isometryCommand,
  sweep: sweepCommand,
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

// ─── Errors, --verbose and cancellation ───────────────────────────────────────────────────────────

/**
 * `--verbose` (anywhere before a `--`, or RLAB_VERBOSE=1) shows stack traces. Without it no stack
 * is printed: a UserError is the message and its hint; any other error its first line and a note.
 */
function takeVerbose(argv: string[]): { argv: string[]; verbose: boolean } {
  const end = argv.indexOf('--');
  const head = end < 0 ? argv : argv.slice(0, end);
  const verbose = head.includes('--verbose') || process.env.RLAB_VERBOSE === '1';
  return { argv: [...head.filter((a) => a !== '--verbose'), ...(end < 0 ? [] : argv.slice(end))], verbose };
}

const SIGNAL_EXIT: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };
/** After the first signal the run has this long to stop by itself before the process exits anyway. */
const CANCEL_GRACE_MS = Number(process.env.RLAB_CANCEL_GRACE_MS) > 0 ? Number(process.env.RLAB_CANCEL_GRACE_MS) : 5000;
let received: string | undefined;

/**
 * SIGINT and SIGTERM cancel through cliSignal() (the run's AbortSignal): long loops stop at their next
 * check and no file is written afterwards (guardWrites; writes are atomic, so none is ever half
 * written). A second signal, or a run that has not stopped after CANCEL_GRACE_MS, exits at once.
 */
function installSignalHandlers(): void {
  guardWrites(cliSignal());
  for (const signal of Object.keys(SIGNAL_EXIT) as NodeJS.Signals[]) {
    process.on(signal, () => {
      const code = SIGNAL_EXIT[signal];
      if (received) {
        process.stderr.write('\nstopped.\n');
        process.exit(SIGNAL_EXIT[received]);
      }
      received = signal;
      process.exitCode = code;
      process.stderr.write(
        `\n${signal === 'SIGINT' ? 'Ctrl-C' : signal}: cancelling (${signal === 'SIGINT' ? 'Ctrl-C' : 'the signal'} again stops at once)…\n`,
      );
      cancelCli(`Cancelled by ${signal}.`);
      setTimeout(() => {
        process.stderr.write('cancelled.\n');
        process.exit(code);
      }, CANCEL_GRACE_MS).unref();
    });
  }
}

function report(e: unknown, verbose: boolean): number {
  if (received || isCancelled(e)) {
    console.error(`cancelled${received ? ` (${received})` : ''}: no result was written.`);
    if (verbose && e instanceof Error && !isCancelled(e)) console.error(e.stack);
    return received ? SIGNAL_EXIT[received] : 130;
  }
  if (e instanceof UserError) {
    console.error(`error: ${e.message}`);
    if (verbose) {
      console.error(e.stack?.split('\n').slice(1).join('\n'));
      if (e.cause !== undefined) console.error('caused by:', e.cause);
    }
    return 2;
  }
  if (verbose) {
    console.error(e);
    return 1;
  }
  const message = e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}` : String(e);
  console.error(`error: ${message.split('\n')[0].slice(0, 500)}`);
  console.error('  (an unexpected error; run again with --verbose for the stack trace, and please report it if the input is valid)');
  return 1;
}

const { argv, verbose } = takeVerbose(process.argv.slice(2));
installSignalHandlers();
const fatal = (e: unknown) => {
  process.exitCode = report(e, verbose);
  process.exit();
};
process.on('uncaughtException', fatal);
process.on('unhandledRejection', fatal);

main(argv).then(
  (code) => {
    process.exitCode = received ? SIGNAL_EXIT[received] : code;
  },
  (e: unknown) => {
    process.exitCode = report(e, verbose);
  },
);

/** Flag parsing shared by the CLI commands: every bad value is a UserError naming the flag. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UserError } from '../core/errors';

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | undefined>;

export function parse(argv: string[], options: Options, command: string): { values: Values; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean' } }, allowPositionals: true, strict: true });
    return { values: values as Values, positionals };
  } catch (e) {
    throw new UserError(`${command}: ${(e as Error).message}`, `Run 'robustness-lab ${command} --help'.`);
  }
}

export function str(values: Values, flag: string): string | undefined {
  const value = values[flag];
  return typeof value === 'string' ? value : undefined;
}

const INTEGER = /^[+-]?\d+$/;
// Decimal numbers only: no hex, binary or octal literals, no 'Infinity', no empty strings (Number('') is 0).
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** A whole number written in decimal, within [min, max]. */
export function integer(values: Values, flag: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const value = str(values, flag);
  if (value === undefined) return fallback;
  const n = Number(value.trim());
  if (!INTEGER.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UserError(`--${flag} must be a whole number${max < Number.MAX_SAFE_INTEGER ? ` from ${min} to ${max}` : ` ≥ ${min}`}, got '${value}'.`);
  }
  return n;
}

/** --layers (isometry, sweep): undefined for all (absent, or 'all'), else the insertion tensors named. */
export function layersFlag(values: Values): string[] | undefined {
  const text = str(values, 'layers');
  if (text === undefined || text.trim() === 'all') return undefined;
  const names = text.split(',').map((s) => s.trim());
  const empty = names.findIndex((s) => s === '');
  if (empty >= 0)
    throw new UserError(
      `--layers must be 'all' or a comma-separated list of insertion tensors, got '${text}' (item ${empty + 1} is empty).`,
      'robustness-lab inspect <model> lists the insertion points.',
    );
  return names;
}

/** --lanes: 'auto' (the default) or a whole number ≥ 1. */
export function lanesFlag(values: Values): number | 'auto' {
  const value = str(values, 'lanes')?.trim();
  if (value === undefined || value === 'auto') return 'auto';
  if (!INTEGER.test(value) || Number(value) < 1)
    throw new UserError(`--lanes must be 'auto' or a whole number ≥ 1, got '${value}'.`, 'e.g. --lanes auto, or --lanes 1 for one session on every thread.');
  return Number(value);
}

export function optionalInteger(values: Values, flag: string, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
  return str(values, flag) === undefined ? undefined : integer(values, flag, 0, min, max);
}

/** The random seed: a whole number from 0 to 2^32 − 1 (larger ones would silently wrap around). */
export function seed(values: Values, flag = 'seed', fallback = 0): number {
  return integer(values, flag, fallback, 0, 2 ** 32 - 1);
}

function finiteNumber(text: string, flag: string, what: string): number {
  const t = text.trim();
  const n = Number(t);
  if (!DECIMAL.test(t) || !Number.isFinite(n)) throw new UserError(`--${flag} must be ${what}, got '${text}'.`);
  return n;
}

export function number(values: Values, flag: string): number | undefined {
  const value = str(values, flag);
  if (value === undefined) return undefined;
  return finiteNumber(value, flag, 'a finite decimal number');
}

/** A comma-separated list of finite numbers; empty items ('0.1,', '0.1,,0.2') are errors, not zeros. */
export function numberList(values: Values, flag: string): number[] | undefined {
  const value = str(values, flag);
  if (value === undefined) return undefined;
  const items = value.split(',');
  const empty = items.findIndex((s) => s.trim() === '');
  if (empty >= 0) {
    throw new UserError(`--${flag} must be a comma-separated list of numbers, got '${value}' (item ${empty + 1} is empty).`, `e.g. --${flag} 0.01,0.03`);
  }
  return items.map((s) => finiteNumber(s, flag, `a comma-separated list of finite numbers (item '${s.trim()}' is not one)`));
}

export function oneOf<T extends string>(values: Values, flag: string, allowed: readonly T[], fallback: T): T {
  const value = str(values, flag) ?? fallback;
  if (!(allowed as readonly string[]).includes(value)) throw new UserError(`--${flag} must be one of ${allowed.join(', ')}, got '${value}'.`);
  return value as T;
}

export function required(values: Values, flag: string, what: string): string {
  const value = str(values, flag);
  if (!value) throw new UserError(`Missing --${flag} ${what}.`);
  return value;
}

// ─── Safety flags (hostile or broken input) ─────────────────────────────────────────────────────

/** Flags for the data loaders' limits; spread into a command's options. */
export const SAFETY_OPTIONS: Options = {
  'max-decompressed-mb': { type: 'string' },
  'allow-nonfinite': { type: 'boolean' },
  'allow-nonfinite-weights': { type: 'boolean' },
};

export const SAFETY_USAGE = '[--max-decompressed-mb M] [--allow-nonfinite] [--allow-nonfinite-weights]';

/**
 * The loaders' options from SAFETY_OPTIONS: maxDecompressedBytes for DatasetSpec (default 2 GiB =
 * 2048 MB), allowNonFinite for DatasetSpec, allowNonFiniteWeights for loadModel.
 */
export function safetyFromFlags(values: Values): { maxDecompressedBytes?: number; allowNonFinite?: boolean; allowNonFiniteWeights?: boolean } {
  const mb = number(values, 'max-decompressed-mb');
  if (mb !== undefined && !(mb > 0))
    throw new UserError(`--max-decompressed-mb must be a positive number of megabytes (MiB), got '${str(values, 'max-decompressed-mb')}'.`);
  return {
    ...(mb !== undefined && { maxDecompressedBytes: Math.floor(mb * 1024 ** 2) }),
    ...(values['allow-nonfinite'] === true && { allowNonFinite: true }),
    ...(values['allow-nonfinite-weights'] === true && { allowNonFiniteWeights: true }),
  };
}

// ─── Cancellation ───────────────────────────────────────────────────────────────────────────────

const cancelController = new AbortController();

/**
 * Fires on the first SIGINT (Ctrl-C) or SIGTERM (main.ts installs the handlers). Commands pass it
 * as the run's AbortSignal; after it fires, atomic writes refuse to write (fs-atomic guardWrites).
 */
export function cliSignal(): AbortSignal {
  return cancelController.signal;
}

/** Called by main.ts's signal handlers. */
export function cancelCli(reason: string): void {
  if (!cancelController.signal.aborted) cancelController.abort(new DOMException(reason, 'AbortError'));
}

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
  return values[flag] as string | undefined;
}

export function integer(values: Values, flag: string, fallback: number, min = 0): number {
  const value = str(values, flag);
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UserError(`--${flag} must be an integer ≥ ${min}, got '${value}'.`);
  return n;
}

export function optionalInteger(values: Values, flag: string, min = 0): number | undefined {
  return str(values, flag) === undefined ? undefined : integer(values, flag, 0, min);
}

export function number(values: Values, flag: string): number | undefined {
  const value = str(values, flag);
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new UserError(`--${flag} must be a number, got '${value}'.`);
  return n;
}

export function numberList(values: Values, flag: string): number[] | undefined {
  const value = str(values, flag);
  if (value === undefined) return undefined;
  const list = value.split(',').map(Number);
  if (list.some((v) => !Number.isFinite(v))) throw new UserError(`--${flag} must be a comma-separated list of numbers, got '${value}'.`);
  return list;
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

/** Small helpers of the dAE fit: option checks, quantiles, number formatting. */
import { UserError } from '../../errors';
import type { Quantiles } from './types';

export function positiveInt(v: number, name: string, min = 1): number {
  if (!Number.isInteger(v) || v < min) throw new UserError(`Invalid dAE ${name} ${v}`, `${name} must be a whole number ≥ ${min}.`);
  return v;
}

export function nonNegative(v: number, name: string): number {
  if (!Number.isFinite(v) || v < 0) throw new UserError(`Invalid dAE ${name} ${v}`, `${name} must be a finite number ≥ 0.`);
  return v;
}

/** Linear-interpolated quantile of unsorted values. */
export function quantile(values: ArrayLike<number>, q: number): number {
  const s = Array.from(values).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const pos = q * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(s.length - 1, lo + 1);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

export function quantiles(values: ArrayLike<number>): Quantiles {
  return { min: quantile(values, 0), p05: quantile(values, 0.05), median: quantile(values, 0.5), p95: quantile(values, 0.95), max: quantile(values, 1) };
}

export function fmt(v: number): string {
  return Number.isFinite(v) ? Number(v.toPrecision(4)).toString() : String(v);
}

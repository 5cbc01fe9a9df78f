/**
 * Epsilons as people write them: decimals (0.03) or fractions of the pixel range (8/255), checked
 * against the input range: on inputs scaled to [0, 1], an L∞ ball of radius 1 already holds every
 * image, and an L2 ball of radius √d (d values per sample) does too, so larger values are a typo.
 */

/** The value of "0.03" or "8/255"; undefined when it is neither. */
export function parseEpsValue(text: string): number | undefined {
  const t = text.trim();
  const fraction = /^(\d+(?:\.\d+)?)\s*\/\s*(\d+(?:\.\d+)?)$/.exec(t);
  if (fraction) {
    const den = Number(fraction[2]);
    return den > 0 ? Number(fraction[1]) / den : undefined;
  }
  if (!/^(\d+(\.\d*)?|\.\d+)(e[-+]?\d+)?$/i.test(t)) return undefined;
  return Number(t);
}

export interface EpsRange {
  norm: 'linf' | 'l2';
  /** Values per sample (for the L2 bound √d); unknown: no L2 bound. */
  sampleSize?: number;
  /** Width of the input range; 1 for inputs scaled to [0, 1]. */
  inputRange?: number;
}

/** The largest epsilon that still means something: the ball then holds every input. */
export function largestUsefulEps(range: EpsRange): number | undefined {
  const width = range.inputRange ?? 1;
  if (range.norm === 'linf') return width;
  return range.sampleSize ? width * Math.sqrt(range.sampleSize) : undefined;
}

/** A comma- or space-separated list of epsilons, or the problem with it in words. */
export function parseEpsList(text: string, range?: EpsRange): { values: number[] } | { problem: string } {
  if (text.trim() === '') return { problem: 'Enter one or more epsilons, e.g. 0.03, 8/255' };
  const items = text.split(',').map((item) => item.trim());
  const empty = items.findIndex((item) => item === '');
  if (empty >= 0) return { problem: `'${text.trim()}': item ${empty + 1} is empty.` };
  const parts = items.flatMap((item) => item.split(/\s+/));
  const values: number[] = [];
  for (const p of parts) {
    const v = parseEpsValue(p);
    if (v === undefined || !Number.isFinite(v)) return { problem: `'${p}' is not a non-negative number or fraction (e.g. 0.03 or 8/255).` };
    values.push(v);
  }
  const bound = range && largestUsefulEps(range);
  const over = bound === undefined ? -1 : values.findIndex((v) => v > bound + 1e-12);
  if (over >= 0) {
    const what = range!.norm === 'linf' ? `the input range (${bound})` : `√d = ${bound!.toFixed(2)}, the largest L2 distance between two inputs`;
    return { problem: `'${parts[over]}' is larger than ${what}: that ball holds every input. Inputs are scaled to [0, ${range!.inputRange ?? 1}].` };
  }
  return { values };
}

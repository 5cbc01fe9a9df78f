/**
 * What the per-sample outcomes show beyond the overall numbers: accuracy per class (clean and the
 * per-sample worst case, without and with the defense), the adversarial confusion matrix, and the
 * example images grouped by model and threat model. Pure data, read defensively like analysis.ts.
 */
import type { AdversarialConfusion, PerClassAccuracy, RunResult } from '../protocol/run-result';
import { examples, formatNumber, percent, UNDEFENDED_THREAT, type ExampleView, type Matrix, type Table } from './analysis';

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

const counts = (x: unknown, n: number): x is number[] => Array.isArray(x) && x.length === n && x.every((v) => typeof v === 'number' && Number.isFinite(v));

function squareMatrix(m: unknown): m is number[][] {
  return Array.isArray(m) && m.length > 0 && m.every((row) => counts(row, m.length));
}

/** A recorded per-class section, or one worked out from a clean confusion matrix (clean only). */
function perClassOf(recorded: unknown, confusion: unknown): PerClassAccuracy | undefined {
  if (
    isRecord(recorded) &&
    Array.isArray(recorded.count) &&
    counts(recorded.count, recorded.count.length) &&
    counts(recorded.cleanCorrect, recorded.count.length)
  ) {
    const n = recorded.count.length;
    const robust = (Array.isArray(recorded.robust) ? recorded.robust : []).filter(
      (r): r is PerClassAccuracy['robust'][number] => isRecord(r) && typeof r.eps === 'number' && typeof r.norm === 'string' && counts(r.correct, n),
    );
    return { count: recorded.count, cleanCorrect: recorded.cleanCorrect, robust };
  }
  if (squareMatrix(confusion))
    return { count: confusion.map((row) => row.reduce((a, b) => a + b, 0)), cleanCorrect: confusion.map((row, i) => row[i]), robust: [] };
  return undefined;
}

function classLabels(r: RunResult, n: number): string[] {
  const names = r.dataset?.classNames;
  return Array.from({ length: n }, (_, i) => (names?.[i] ? `${i} ${names[i]}` : String(i)));
}

const share = (num: number, den: number) => (den > 0 ? num / den : undefined);
const epsLabel = (norm: string, eps: number) => `ε=${formatNumber(eps)}${norm === 'l2' ? ' (L2)' : ''}`;

/**
 * Clean and worst-case robust accuracy per class: columns for the undefended model (clean, then
 * robust at each epsilon) and, when there is a defense, the same for the defended model; a last row
 * over all samples (the count-weighted mean of the rows, i.e. the overall accuracy). Older results
 * without per-class outcomes get the clean columns from their confusion matrices.
 */
export function perClassTable(r: RunResult): Table | undefined {
  const undefended = perClassOf(r.perClass, r.clean?.confusion);
  const d = isRecord(r.defense) ? (r.defense as Partial<NonNullable<RunResult['defense']>>) : undefined;
  const defended = d ? perClassOf(d.perClass, d.clean?.confusion) : undefined;
  const base = undefended ?? defended;
  if (!base) return undefined;
  const n = base.count.length;
  const parts = [undefended && { p: undefended, prefix: '' }, defended && { p: defended, prefix: 'defended ' }].filter(
    (x): x is { p: PerClassAccuracy; prefix: string } => !!x && x.p.count.length === n,
  );
  // Short headers (the title says what they are): the panel's columns share its width.
  const columns = ['class', 'samples', ...parts.flatMap(({ p, prefix }) => [`${prefix}clean`, ...p.robust.map((w) => `${prefix}${epsLabel(w.norm, w.eps)}`)])];
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const cells = (i: number | undefined) =>
    parts.flatMap(({ p }) => {
      const pick = (xs: number[]) => (i === undefined ? sum(xs) : xs[i]);
      const total = pick(p.count);
      return [percent(share(pick(p.cleanCorrect), total), 1), ...p.robust.map((w) => percent(share(pick(w.correct), total), 1))];
    });
  const labels = classLabels(r, n);
  const union = parts.some(({ p }) => p.robust.length > 0);
  return {
    title: union
      ? `Accuracy per class: clean, and robust at each epsilon (ε=…) under the worst case per sample: a sample counts as robust only if it survived every attack${defended ? '; "defended" columns are with the defense, over every threat model' : ''}`
      : 'Accuracy per class (clean)',
    columns,
    rows: [...labels.map((label, i) => [label, formatNumber(base.count[i]), ...cells(i)]), ['all', formatNumber(sum(base.count)), ...cells(undefined)]],
  };
}

function confusionOf(x: unknown): AdversarialConfusion | undefined {
  return isRecord(x) && typeof x.eps === 'number' && typeof x.norm === 'string' && squareMatrix(x.matrix) ? (x as unknown as AdversarialConfusion) : undefined;
}

/** What an adversarial confusion matrix counts, in words. */
export const ADVERSARIAL_CONFUSION_CAPTION =
  'rows: true class · columns: prediction under attack, for the worst case per sample: the prediction of the first attack (in run order, over every threat model) that fooled the sample; a sample no attack fooled stays on the diagonal, one misclassified clean keeps its clean prediction';

/** The adversarial confusion matrices at the largest epsilon: without the defense, and with it. */
export function adversarialConfusionMatrices(r: RunResult): Matrix[] {
  const out: Matrix[] = [];
  const d = isRecord(r.defense) ? (r.defense as Partial<NonNullable<RunResult['defense']>>) : undefined;
  for (const [m, which] of [
    [confusionOf(r.adversarialConfusion), 'no defense'],
    [confusionOf(d?.adversarialConfusion), 'with the defense'],
  ] as const) {
    if (!m) continue;
    out.push({
      title: `Adversarial confusion matrix (${which}, ${m.norm === 'l2' ? 'L2' : 'L∞'} eps ${formatNumber(m.eps)}, worst case per sample)`,
      labels: classLabels(r, m.matrix.length).map((l, i) => r.dataset?.classNames?.[i] ?? l),
      counts: m.matrix,
      caption: ADVERSARIAL_CONFUSION_CAPTION,
    });
  }
  return out;
}

export interface ExampleGroup {
  /** "No defense (white-box)" or "With the defense: bpda". */
  title: string;
  /** What the threat model's gradient is, when the result says. */
  note?: string;
  target: string;
  threat: string;
  examples: ExampleView[];
}

/** The examples grouped by model and threat model, in the order they ran. */
export function exampleGroups(r: RunResult): ExampleGroup[] {
  const threats = isRecord(r.defense) && isRecord(r.defense.threats) ? (r.defense.threats as Record<string, unknown>) : {};
  const groups = new Map<string, ExampleGroup>();
  for (const e of examples(r)) {
    const key = `${e.target}|${e.threat}`;
    let g = groups.get(key);
    if (!g) {
      const defended = e.target === 'defended';
      g = {
        title: defended ? `With the defense: ${e.threat}` : `No defense (${e.threat || UNDEFENDED_THREAT})`,
        note: defended && typeof threats[e.threat] === 'string' ? `gradient: ${threats[e.threat] as string}` : undefined,
        target: e.target,
        threat: e.threat,
        examples: [],
      };
      groups.set(key, g);
    }
    g.examples.push(e);
  }
  return [...groups.values()];
}

/** The examples as a table (for Markdown), grouped as exampleGroups. */
export function examplesTable(r: RunResult): Table | undefined {
  const groups = exampleGroups(r);
  if (!groups.length) return undefined;
  return {
    title: 'Examples: samples the attacks fooled, at the largest epsilon (a few per attack without the defense, per threat model with it)',
    columns: ['model', 'threat', 'sample', 'label', 'clean prediction', 'attack', 'eps', 'adversarial prediction', 'fooled'],
    rows: groups.flatMap((g) =>
      g.examples.map((e) => [
        e.target,
        e.threat,
        String(e.index),
        e.label,
        e.cleanPrediction,
        e.attack,
        formatNumber(e.eps),
        e.adversarialPrediction,
        e.fooled ? 'yes' : 'no',
      ]),
    ),
  };
}

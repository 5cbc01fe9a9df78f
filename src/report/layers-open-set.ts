/**
 * What reports show of the isometry per layer and the open-set sections of a RunResult: tables for
 * the CLI and the exports, and the series the results panel charts. Read defensively: files from
 * other tool versions may lack the sections or hold them in another shape.
 */
import type { IsometryPairStats, OpenSetScorer, RunResult } from '../protocol/run-result';
import { percent, type Table } from './analysis';

const isNumber = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

function fixed(x: unknown, digits = 3): string {
  return isNumber(x) ? x.toFixed(digits) : '–';
}

function validLayers(r: RunResult) {
  const layers = r.isometry?.layers;
  return Array.isArray(layers) ? layers.filter((l) => l && typeof l === 'object' && isNumber(l.depth) && typeof l.tensor === 'string') : [];
}

function stat(s: IsometryPairStats | undefined, key: 'pearson' | 'spearman' | 'scale' | 'distortion'): number | null {
  const v = s && typeof s === 'object' ? s[key] : null;
  return isNumber(v) ? v : null;
}

/** Per insertion point: correlation, scale and distortion of within-class and between-class pairs. */
export function isometryTable(r: RunResult): Table | undefined {
  const layers = validLayers(r);
  if (!layers.length) return undefined;
  const iso = r.isometry!;
  const kinds = ['within', 'between'] as const;
  return {
    title: `Isometry per layer (${isNumber(iso.pairsRequested) ? iso.pairsRequested.toLocaleString('en-US') : '?'} pairs of each kind from ${isNumber(iso.referenceCount) ? iso.referenceCount.toLocaleString('en-US') : '?'} samples, seed ${String(iso.seed)}; r Pearson, ρ Spearman, distortion mean((s·dx − dz)²)/mean(dz²))`,
    columns: ['depth', 'layer', 'op', ...kinds.flatMap((k) => [`${k} r`, `${k} ρ`, `${k} scale`, `${k} distortion`])],
    rows: layers.map((l) => [
      String(l.depth),
      l.tensor,
      String(l.op ?? ''),
      ...kinds.flatMap((k) => [fixed(stat(l[k], 'pearson')), fixed(stat(l[k], 'spearman')), formatScale(stat(l[k], 'scale')), fixed(stat(l[k], 'distortion'))]),
    ]),
  };
}

function formatScale(x: number | null): string {
  return x === null ? '–' : Math.abs(x) >= 0.01 && Math.abs(x) < 1000 ? x.toFixed(3) : x.toExponential(2);
}

export interface IsometryPoint {
  depth: number;
  tensor: string;
  withinPearson: number | null;
  withinSpearman: number | null;
  withinDistortion: number | null;
  betweenPearson: number | null;
  betweenDistortion: number | null;
}

/** The series the panel charts against depth. */
export function isometrySeries(r: RunResult): IsometryPoint[] {
  return validLayers(r).map((l) => ({
    depth: l.depth,
    tensor: l.tensor,
    withinPearson: stat(l.within, 'pearson'),
    withinSpearman: stat(l.within, 'spearman'),
    withinDistortion: stat(l.within, 'distortion'),
    betweenPearson: stat(l.between, 'pearson'),
    betweenDistortion: stat(l.between, 'distortion'),
  }));
}

const SCORER_NAMES: Record<string, string> = { 'max-softmax': 'undefended (max softmax)', 'dae-confidence': 'dAE (confidence-scaled softmax)' };

function scorers(r: RunResult): OpenSetScorer[] {
  const o = r.openSet;
  if (!o || typeof o !== 'object') return [];
  return [o.baseline, o.defended].filter((s): s is OpenSetScorer => !!s && typeof s === 'object' && isNumber(s.auroc));
}

/** AUROC and FPR at 95% TPR per scorer, then the threshold table of each. */
export function openSetTables(r: RunResult): Table[] {
  const list = scorers(r);
  if (!list.length) return [];
  const o = r.openSet!;
  const unknown = o.unknown && typeof o.unknown === 'object' ? `${String(o.unknown.path)} (${String(o.unknown.count)} images)` : '?';
  const tables: Table[] = [
    {
      title: `Open-set recognition: ${String(o.knownCount)} known test inputs against the unknown inputs ${unknown}; score = top probability`,
      columns: ['model', 'AUROC', 'FPR at 95% TPR', 'threshold at 95% TPR'],
      rows: list.map((s) => [SCORER_NAMES[s.score] ?? String(s.score), fixed(s.auroc, 4), percent(s.fprAt95Tpr), fixed(s.thresholdAt95Tpr, 4)]),
    },
  ];
  for (const s of list) {
    if (!Array.isArray(s.thresholds)) continue;
    tables.push({
      title: `Open set per threshold, ${SCORER_NAMES[s.score] ?? String(s.score)}: an input is accepted when its top probability ≥ the threshold`,
      columns: ['threshold', 'unknown rejected', 'known rejected', 'accuracy on accepted known'],
      rows: s.thresholds.map((t) => [String(t.threshold), percent(t.unknownRejectionRate), percent(t.knownRejectionRate), percent(t.acceptedAccuracy)]),
    });
  }
  return tables;
}

export interface RocSeries {
  label: string;
  auroc: number;
  points: { fpr: number; tpr: number }[];
}

/** ROC curves (known inputs positive) for the panel's chart. */
export function rocCurves(r: RunResult): RocSeries[] {
  return scorers(r)
    .filter((s) => s.roc && Array.isArray(s.roc.fpr) && Array.isArray(s.roc.tpr) && s.roc.fpr.length === s.roc.tpr.length)
    .map((s) => ({
      label: `${SCORER_NAMES[s.score] ?? String(s.score)}, AUROC ${fixed(s.auroc, 4)}`,
      auroc: s.auroc,
      points: s.roc.fpr.map((fpr, k) => ({ fpr, tpr: s.roc.tpr[k] })).filter((p) => isNumber(p.fpr) && isNumber(p.tpr)),
    }));
}

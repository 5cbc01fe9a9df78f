/**
 * Runs as a table, and several runs compared: one row per RunResult (what ran, on what, with what
 * budget, and the numbers a reader looks at first), sorting and filtering of those rows, and the
 * comparison of 2 to 7 runs: one merged table keyed by attack, threat model, norm and epsilon with
 * a column per run and a difference (Δ) column against the first (baseline) run, a warning when
 * the runs were not evaluated on the same data, and chart series that stay readable when seven
 * runs are overlaid (one colour per run, a dash per threat model, short legends).
 *
 * Pure data, no DOM, no 'vscode', no engine: the runs-table webview and the tests use it.
 */
import type { RunResult } from '../protocol/run-result';
import {
  accuracyCurves,
  attackResults,
  basename,
  budgetText,
  defenseView,
  formatNumber,
  percent,
  runHeadline,
  runLabel,
  UNDEFENDED_THREAT,
  worstCase,
  type CurvePoint,
  type ReportRun,
} from './analysis';

/** Runs a comparison shows at most (and at least). */
export const MIN_COMPARE = 2;
export const MAX_COMPARE = 7;

/** The worst case of one norm and epsilon: the per-sample union (or, in old files, the strongest single attack). */
export interface EpsWorstCase {
  norm: string;
  eps: number;
  accuracy: number;
}

/** One run as a row of the runs table. */
export interface RunsTableRow {
  /** What identifies the run (its file, else its position). */
  id: string;
  file?: string;
  /** The experiment's name, else "model · defense". */
  label: string;
  experiment?: string;
  model: string;
  data: string;
  samples?: number;
  defense?: string;
  layer?: string;
  defended: boolean;
  /** Clean accuracy of what was evaluated: the defended model's for a defended run. */
  clean?: number;
  /** Per norm and eps, the union worst case of what was evaluated (the defended model's for a defended run). */
  worstCase: EpsWorstCase[];
  /** The lowest of those. */
  worst?: number;
  verdict?: string;
  strength?: string;
  /** Each attack's budget in a few words, e.g. "pgd: 10 steps of 0.005, 1 restart, ce". */
  budget: string;
  provider: string;
  seconds?: number;
  createdAt: string;
}

export type RunsTableKey = 'label' | 'model' | 'data' | 'samples' | 'defense' | 'clean' | 'worst' | 'verdict' | 'budget' | 'provider' | 'seconds' | 'createdAt';

export interface RunsTableColumn {
  key: RunsTableKey;
  title: string;
  numeric: boolean;
  /** What the column holds, for a header's tooltip. */
  help: string;
}

export const RUNS_TABLE_COLUMNS: readonly RunsTableColumn[] = [
  { key: 'label', title: 'experiment', numeric: false, help: "The experiment's name, else model · defense" },
  { key: 'model', title: 'model', numeric: false, help: 'The model file' },
  { key: 'data', title: 'data', numeric: false, help: 'The test data file' },
  { key: 'samples', title: 'samples', numeric: true, help: 'Samples evaluated (after the sample limit)' },
  { key: 'defense', title: 'defense @ layer', numeric: false, help: 'The defense and the tensor it was inserted after' },
  { key: 'clean', title: 'clean', numeric: true, help: "Clean accuracy (the defended model's for a defended run)" },
  {
    key: 'worst',
    title: 'worst case per eps',
    numeric: true,
    help: 'Per epsilon, the per-sample union worst case over every attack and threat model (of the defended model for a defended run); sorts by the lowest',
  },
  { key: 'verdict', title: 'verdict', numeric: false, help: "The defense's verdict" },
  { key: 'budget', title: 'strength / budget', numeric: false, help: 'The strength preset and each attack’s budget' },
  { key: 'provider', title: 'provider', numeric: false, help: 'The execution provider the run used' },
  { key: 'seconds', title: 'duration', numeric: true, help: 'Wall time of the whole run' },
  { key: 'createdAt', title: 'created', numeric: false, help: 'When the run finished (UTC)' },
];

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function modelName(path: string | undefined): string {
  const p = path ?? '';
  return basename(p) === 'model.json' ? basename(p.slice(0, -'/model.json'.length)) : basename(p);
}

/** Each attack's budget once, in the order the attacks ran: "fgsm: ce; pgd: 10 steps of 0.005, 1 restart, ce". */
export function budgetSummary(r: RunResult): string {
  const seen = new Map<string, string>();
  for (const a of [...attackResults(r).undefended, ...attackResults(r).defended]) {
    if (!seen.has(a.attack)) seen.set(a.attack, budgetText(a.params));
  }
  if (!seen.size && isRecord(r.attackPlan) && Array.isArray(r.attackPlan.names)) {
    for (const n of r.attackPlan.names) seen.set(String(n), budgetText(r.attackPlan));
  }
  return [...seen].map(([name, budget]) => (budget === '–' ? name : `${name}: ${budget}`)).join('; ');
}

/** "12.3 s", "4 min 05 s", "1 h 02 min". */
export function durationText(seconds: number | undefined): string {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) return '–';
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** One row per run. `id` defaults to the run's file, else its position. */
export function runsTableRow(run: { result: RunResult; file?: string; id?: string }, index = 0): RunsTableRow {
  const r = run.result;
  const view = defenseView(r);
  const headline = runHeadline(r);
  const worstCase = headlineWorstCase(r);
  const rt = isRecord(r.runtime) ? r.runtime : undefined;
  const total = r.timings?.totalSeconds;
  return {
    id: run.id ?? run.file ?? String(index),
    file: run.file,
    label: runLabel(r),
    experiment: isRecord(r.experiment) && typeof r.experiment.name === 'string' ? r.experiment.name : undefined,
    model: modelName(r.model?.path),
    data: basename(r.dataset?.path ?? '?'),
    samples: typeof r.dataset?.count === 'number' ? r.dataset.count : r.clean?.count,
    defense: view?.kind,
    layer: view?.layer,
    defended: !!view,
    clean: headline.clean,
    worstCase,
    worst: worstCase.length ? Math.min(...worstCase.map((w) => w.accuracy)) : headline.worst,
    verdict: view?.verdict,
    strength: isRecord(r.attackPlan) && typeof r.attackPlan.strength === 'string' ? r.attackPlan.strength : undefined,
    budget: budgetSummary(r),
    provider: rt ? `${String(rt.executionProvider)}${typeof rt.lanes === 'number' && rt.lanes > 1 ? ` · ${rt.lanes} lanes` : ''}` : '?',
    seconds: typeof total === 'number' && Number.isFinite(total) ? total : undefined,
    createdAt: typeof r.createdAt === 'string' ? r.createdAt : '',
  };
}

/** What a run is judged by, per norm and eps: the defended model's union worst case for a defended run, else the model's own. */
export function headlineWorstCase(r: RunResult): EpsWorstCase[] {
  const defended = !!defenseView(r);
  return worstCase(r).flatMap((w) => {
    const cell = defended ? w.defended : w.undefended;
    return cell ? [{ norm: w.norm, eps: w.eps, accuracy: cell.accuracy }] : [];
  });
}

/** "ε 0.05: 77.0% · ε 0.1: 56.0%" (the norm named only when the run used more than one). */
export function worstCaseText(cases: readonly EpsWorstCase[]): string {
  if (!cases.length) return '–';
  const norms = new Set(cases.map((c) => c.norm)).size;
  return cases.map((c) => `${norms > 1 ? `${c.norm} ` : ''}ε ${formatNumber(c.eps)}: ${percent(c.accuracy, 1)}`).join(' · ');
}

/** A row's cell as text (what is shown, and what the filter matches). */
export function cellText(row: RunsTableRow, key: RunsTableKey): string {
  switch (key) {
    case 'label':
      return row.label;
    case 'model':
      return row.model;
    case 'data':
      return row.data;
    case 'samples':
      return formatNumber(row.samples);
    case 'defense':
      return row.defense ? `${row.defense} @ ${row.layer ?? '?'}` : 'none';
    case 'clean':
      return row.clean === undefined ? '–' : `${percent(row.clean, 1)}${row.defended ? ' (defended)' : ''}`;
    case 'worst':
      return worstCaseText(row.worstCase);
    case 'verdict':
      return row.verdict ?? '–';
    case 'budget':
      return [row.strength, row.budget].filter(Boolean).join(' · ') || '–';
    case 'provider':
      return row.provider;
    case 'seconds':
      return durationText(row.seconds);
    case 'createdAt':
      return row.createdAt ? `${row.createdAt.slice(0, 19).replace('T', ' ')}` : '–';
  }
}

function sortValue(row: RunsTableRow, key: RunsTableKey): number | string | undefined {
  switch (key) {
    case 'samples':
      return row.samples;
    case 'clean':
      return row.clean;
    case 'worst':
      return row.worst;
    case 'seconds':
      return row.seconds;
    case 'createdAt':
      return Date.parse(row.createdAt) || undefined;
    case 'defense':
      return row.defense ? `${row.defense} ${row.layer ?? ''}` : undefined;
    case 'verdict':
      return row.verdict;
    default:
      return cellText(row, key);
  }
}

export type SortDirection = 'asc' | 'desc';

/**
 * The rows sorted by a column (numbers as numbers, text naturally: "run 2" before "run 10"); rows
 * without a value come last either way; ties keep the newest first.
 */
export function sortRuns(rows: readonly RunsTableRow[], key: RunsTableKey, direction: SortDirection = 'asc'): RunsTableRow[] {
  const sign = direction === 'asc' ? 1 : -1;
  const newest = (a: RunsTableRow, b: RunsTableRow) => (Date.parse(b.createdAt) || 0) - (Date.parse(a.createdAt) || 0);
  return [...rows].sort((a, b) => {
    const x = sortValue(a, key);
    const y = sortValue(b, key);
    const missingX = x === undefined || x === '–';
    const missingY = y === undefined || y === '–';
    if (missingX || missingY) return missingX && missingY ? newest(a, b) : missingX ? 1 : -1;
    const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y), 'en', { numeric: true, sensitivity: 'base' });
    return c !== 0 ? sign * c : newest(a, b);
  });
}

/**
 * The rows whose text contains every word of the filter (case-insensitive, any column; "lesci
 * holds" keeps LESCI runs that hold). An empty filter keeps every row.
 */
export function filterRuns(rows: readonly RunsTableRow[], filter: string): RunsTableRow[] {
  const words = filter.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return [...rows];
  return rows.filter((row) => {
    const text = [...RUNS_TABLE_COLUMNS.map((c) => cellText(row, c.key)), row.experiment ?? '', row.file ?? ''].join(' ').toLowerCase();
    return words.every((w) => text.includes(w));
  });
}

// ---------------------------------------------------------------------------------------------
// Comparison of 2 to 7 runs

/** "#2 quick-fgsm" (long names shortened with an ellipsis), the name a comparison shows a run under. */
export function shortRunLabel(name: string, index: number, max = 24): string {
  const n = name.length > max ? `${name.slice(0, max - 1)}…` : name;
  return `#${index + 1} ${n}`;
}

export interface ComparisonRow {
  /** 'clean', 'worst case' (the per-sample union over every attack and threat model), or an attack's name. */
  attack: string;
  /** The threat model (whitebox: the undefended model), 'union' for the worst case, '' for clean. */
  threat: string;
  norm: string;
  eps: number;
  /** Accuracy per run (undefined where the run has no such entry). */
  values: (number | undefined)[];
  /** values[i] − values[0] per run (deltas[0] is 0 or undefined), as a share (0.05 = 5 points). */
  deltas: (number | undefined)[];
}

export interface Comparison {
  runs: { name: string; short: string }[];
  rows: ComparisonRow[];
  /** Why the runs' numbers are not directly comparable (different data or sample counts), one sentence each. */
  mismatches: string[];
  /** The mismatches as one warning, or undefined when the runs used the same data. */
  warning?: string;
}

export const WORST_CASE_ATTACK = 'worst case';
export const UNION_THREAT = 'union';
export const CLEAN_ATTACK = 'clean';

/**
 * Compares runs: the first is the baseline the Δ columns are against. Rows: clean accuracy, the
 * union worst case per norm and eps (of the defended model for defended runs), then every attack
 * entry keyed by (attack, threat model, norm, eps) (the lowest where a run has several).
 */
export function compareRuns(runs: readonly ReportRun[]): Comparison {
  const rows = new Map<string, ComparisonRow>();
  const n = runs.length;
  const put = (attack: string, threat: string, norm: string, eps: number, run: number, value: number) => {
    const key = `${attack}\u0000${threat}\u0000${norm}\u0000${eps}`;
    let row = rows.get(key);
    if (!row) rows.set(key, (row = { attack, threat, norm, eps, values: new Array(n).fill(undefined), deltas: [] }));
    const old = row.values[run];
    row.values[run] = old === undefined ? value : Math.min(old, value);
  };
  runs.forEach((run, i) => {
    const r = run.result;
    const headline = runHeadline(r);
    if (typeof headline.clean === 'number') put(CLEAN_ATTACK, '', '', 0, i, headline.clean);
    for (const w of headlineWorstCase(r)) put(WORST_CASE_ATTACK, UNION_THREAT, w.norm, w.eps, i, w.accuracy);
  });
  // Attack entries after the headline rows, grouped by (attack, threat, norm) in order of first appearance.
  runs.forEach((run, i) => {
    const { undefended, defended } = attackResults(run.result);
    for (const a of undefended) put(a.attack, UNDEFENDED_THREAT, a.norm, a.eps, i, a.accuracy);
    for (const a of defended) put(a.attack, a.threat || 'direct', a.norm, a.eps, i, a.accuracy);
  });
  const all = [...rows.values()];
  const group = new Map<string, number>();
  all.forEach((r) => {
    const g = `${r.attack}\u0000${r.threat}\u0000${r.norm}`;
    if (!group.has(g)) group.set(g, group.size);
  });
  all.sort((a, b) => group.get(`${a.attack}\u0000${a.threat}\u0000${a.norm}`)! - group.get(`${b.attack}\u0000${b.threat}\u0000${b.norm}`)! || a.eps - b.eps);
  for (const row of all) {
    const base = row.values[0];
    row.deltas = row.values.map((v) => (v === undefined || base === undefined ? undefined : v - base));
  }
  const mismatches = dataMismatches(runs);
  return {
    runs: runs.map((r, i) => ({ name: r.name, short: shortRunLabel(r.name, i) })),
    rows: all,
    mismatches,
    warning: mismatches.length
      ? `These runs were not evaluated on the same data, so their accuracies are not directly comparable: ${mismatches.join(' ')}`
      : undefined,
  };
}

/** "+12.5 pp", "−3.0 pp", "0.0 pp"; '–' when a value is missing. */
export function deltaText(delta: number | undefined): string {
  if (delta === undefined || !Number.isFinite(delta)) return '–';
  const pp = Math.round(1000 * delta) / 10;
  if (pp === 0) return '0.0 pp';
  return `${pp > 0 ? '+' : '−'}${Math.abs(pp).toFixed(1)} pp`;
}

/** The comparison as a plain table: key columns, then per run its accuracy and (after the first) its Δ. */
export function comparisonTable(c: Comparison): { columns: string[]; rows: string[][] } {
  return {
    columns: ['attack', 'threat', 'norm', 'eps', ...c.runs.flatMap((r, i) => (i === 0 ? [r.short] : [r.short, `Δ #${i + 1}−#1`]))],
    rows: c.rows.map((row) => [
      row.attack,
      row.threat || '–',
      row.norm || '–',
      row.attack === CLEAN_ATTACK ? '0' : formatNumber(row.eps),
      ...row.values.flatMap((v, i) => (i === 0 ? [percent(v, 1)] : [percent(v, 1), deltaText(row.deltas[i])])),
    ]),
  };
}

/**
 * Why runs' numbers are not directly comparable, each run against the first: different data files
 * (their SHA-256), a different number of samples (another sample limit), other preprocessing.
 */
export function dataMismatches(runs: readonly ReportRun[]): string[] {
  if (runs.length < 2) return [];
  const out: string[] = [];
  const d0 = runs[0].result.dataset;
  const name = (i: number) => shortRunLabel(runs[i].name, i);
  const pre = (d: RunResult['dataset'] | undefined) => JSON.stringify(d?.preprocessing ?? null);
  for (let i = 1; i < runs.length; i++) {
    const d = runs[i].result.dataset;
    if (!d || !d0) continue;
    if (d.sha256 !== d0.sha256) {
      out.push(
        `${name(i)} used ${basename(d.path ?? '?')} (sha256 ${String(d.sha256).slice(0, 12)}…), ${name(0)} ${basename(d0.path ?? '?')} (sha256 ${String(d0.sha256).slice(0, 12)}…).`,
      );
    }
    if (d.count !== d0.count) {
      out.push(`${name(i)} evaluated ${formatNumber(d.count)} samples, ${name(0)} ${formatNumber(d0.count)} (a different sample limit).`);
    }
    if (pre(d) !== pre(d0)) out.push(`${name(i)} preprocessed the data differently from ${name(0)} (${pre(d)} against ${pre(d0)}).`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The overlaid chart

/**
 * One colour per run, distinct for 7 and more (Tableau 10, readable on light and dark themes;
 * the same in the exported report as in the webview).
 */
export const RUN_PALETTE: readonly string[] = ['#4e79a7', '#f28e2b', '#e15759', '#59a14f', '#b07aa1', '#edc948', '#76b7b2', '#ff9da7', '#9c755f', '#bab0ac'];

/** A dash pattern per threat model (solid: the worst case and attacks on an undefended model). */
export const THREAT_DASHES: Readonly<Record<string, number[]>> = {
  [UNION_THREAT]: [],
  [UNDEFENDED_THREAT]: [],
  transfer: [6, 3],
  bpda: [2, 2],
  direct: [8, 3, 2, 3],
  adaptive: [10, 4],
  'gradient-free': [1, 3],
};

export function threatDash(threat: string): number[] {
  return THREAT_DASHES[threat] ?? THREAT_DASHES[threat.split('/')[0]] ?? [4, 4];
}

export interface OverlaySeries {
  run: number;
  /** "#2 quick-fgsm: worst case" or "#2 quick-fgsm: pgd/bpda". */
  label: string;
  color: string;
  dash: number[];
  /** The run's worst case (the per-sample union) rather than a single attack's curve. */
  worst: boolean;
  norm: string;
  points: CurvePoint[];
}

/**
 * The chart of several runs overlaid: by default one series per run (and norm), its union worst
 * case against eps starting at its clean accuracy, so seven runs make seven lines; with `allCurves`
 * also each attack's curve of what the run evaluated (the defended model's for a defended run),
 * dashed by threat model, in the run's colour.
 */
export function overlaySeries(runs: readonly ReportRun[], options: { allCurves?: boolean } = {}): OverlaySeries[] {
  const out: OverlaySeries[] = [];
  runs.forEach((run, i) => {
    const r = run.result;
    const color = RUN_PALETTE[i % RUN_PALETTE.length];
    const short = shortRunLabel(run.name, i);
    const clean = runHeadline(r).clean;
    const cases = headlineWorstCase(r);
    const norms = [...new Set(cases.map((c) => c.norm))];
    for (const norm of norms) {
      const points = cases.filter((c) => c.norm === norm).map((c) => ({ eps: c.eps, accuracy: c.accuracy }));
      if (typeof clean === 'number' && !points.some((p) => p.eps === 0)) points.unshift({ eps: 0, accuracy: clean });
      points.sort((a, b) => a.eps - b.eps);
      out.push({ run: i, label: `${short}: worst case${norms.length > 1 ? ` (${norm})` : ''}`, color, dash: [], worst: true, norm, points });
    }
    if (options.allCurves) {
      const defended = !!defenseView(r);
      for (const curve of accuracyCurves(r).filter((c) => c.defended === defended)) {
        out.push({
          run: i,
          label: `${short}: ${curve.attack}${curve.threat !== UNDEFENDED_THREAT ? `/${curve.threat}` : ''}${norms.length > 1 ? ` (${curve.norm})` : ''}`,
          color,
          dash: threatDash(curve.threat).length ? threatDash(curve.threat) : [3, 3],
          worst: false,
          norm: curve.norm,
          points: curve.points,
        });
      }
    }
  });
  return out;
}

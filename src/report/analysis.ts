/**
 * What a report shows, derived from a RunResult: accuracy-vs-epsilon curves, worst cases, the
 * defense's tables, examples, confusion matrices. Pure data, no DOM, no 'vscode': the results
 * webview, the HTML and Markdown exporters (and the CLI) all render from these, so they never disagree.
 *
 * Result files come from different tool versions: every optional section is read defensively and
 * skipped when absent or shaped differently.
 */
import { CATALOGUE } from '../protocol/catalogue';
import type { AttackResult, CheckResult, RunResult, ThresholdRow, WorstCase } from '../protocol/run-result';

/** One run to report on, with the name it is shown under. */
export interface ReportRun {
  name: string;
  result: RunResult;
}

export interface CurvePoint {
  eps: number;
  accuracy: number;
}

/** Robust accuracy against epsilon for one attack under one threat model (eps 0 = clean accuracy). */
export interface Curve {
  label: string;
  attack: string;
  threat: string;
  norm: string;
  /** True for attacks on the defended model. */
  defended: boolean;
  points: CurvePoint[];
}

export interface WorstCaseCell {
  /** The per-sample union when `union`, else the lowest single-attack accuracy. */
  accuracy: number;
  /** The strongest single attack and its threat model. */
  attack: string;
  threat: string;
  union: boolean;
  singleAccuracy?: number;
  firstBroken?: { attack: string; threat: string; count: number }[];
  broken?: boolean;
}

export interface WorstCaseRow {
  norm: string;
  eps: number;
  undefended?: WorstCaseCell;
  defended?: WorstCaseCell;
}

export interface Table {
  title: string;
  columns: string[];
  rows: string[][];
}

export interface Matrix {
  title: string;
  labels: string[];
  counts: number[][];
  /** What rows and columns are (default: true class and predicted class). */
  caption?: string;
}

/** A numeric series among a defense's parameters (a loss per epoch), drawn as a small curve. */
export interface ParamSeries {
  key: string;
  values: number[];
}

export interface DefenseView {
  kind: string;
  layer: string;
  verdict?: string;
  /** Why the verdict is what it is (schema 2). */
  verdictReasons: string[];
  cleanAccuracy?: number;
  /** Every parameter, flattened (nested objects as a.b). */
  params: [string, string][];
  /**
   * The parameters that matter first: those the insert-defense wizard asks for (the catalogue's
   * `ask`) and those that decide what counts as fooled (rejection, thresholds, the head), in the
   * catalogue's order.
   */
  mainParams: [string, string][];
  /** The rest: derived sizes, fit statistics, seeds (series left out). */
  otherParams: [string, string][];
  /** Numeric series among the parameters (loss histories), for small curves. */
  series: ParamSeries[];
  /** 'before-tail' or 'after-tail', and what it means in words (without the name). */
  placement?: string;
  placementText?: string;
}

export interface ExampleView {
  index: number;
  label: string;
  cleanPrediction: string;
  adversarialPrediction: string;
  attack: string;
  threat: string;
  target: string;
  eps: number;
  shape: [number, number, number];
  clean: ArrayLike<number>;
  adversarial: ArrayLike<number>;
  /**
   * The attack fooled the sample: correct clean, wrong under attack (recorded since the examples
   * are chosen among fooled samples; for older files, worked out from the predictions).
   */
  fooled: boolean;
}

export const UNDEFENDED_THREAT = 'whitebox';

export function percent(x: number | null | undefined, digits = 2): string {
  return typeof x === 'number' && Number.isFinite(x) ? `${(100 * x).toFixed(digits)}%` : '–';
}

export function formatNumber(x: unknown): string {
  if (typeof x === 'number') {
    if (Number.isInteger(x)) return x.toLocaleString('en-US');
    return Number.isFinite(x) ? String(Number(x.toPrecision(4))) : String(x);
  }
  if (typeof x === 'boolean') return x ? 'yes' : 'no';
  if (x === null || x === undefined) return '–';
  if (Array.isArray(x)) return x.map(formatNumber).join(', ');
  if (typeof x === 'object') return JSON.stringify(x);
  return String(x);
}

export function basename(p: string): string {
  return p.split(/[\\/]/).pop() ?? p;
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function list<T>(x: unknown, guard: (v: unknown) => v is T): T[] {
  return Array.isArray(x) ? x.filter(guard) : [];
}

function isAttackResult(x: unknown): x is AttackResult {
  return isRecord(x) && typeof x.attack === 'string' && typeof x.eps === 'number' && typeof x.accuracy === 'number';
}

function isThresholdRow(x: unknown): x is ThresholdRow {
  return isRecord(x) && typeof x.threshold === 'number';
}

/** The defense section, when the run had one (any shape: readers stay tolerant). */
function defenseOf(r: RunResult): Partial<NonNullable<RunResult['defense']>> | undefined {
  return isRecord(r.defense) ? r.defense : undefined;
}

/** Attacks on the undefended baseline and on the defended model. */
export function attackResults(r: RunResult): { undefended: AttackResult[]; defended: AttackResult[] } {
  const all = list(r.attacks, isAttackResult);
  // Older results have no `target`: the threat model tells them apart.
  const defended = (a: AttackResult) => (a.target ? a.target === 'defended' : !!a.threat && a.threat !== UNDEFENDED_THREAT);
  return { undefended: all.filter((a) => !defended(a)), defended: all.filter(defended) };
}

export function defendedCleanAccuracy(r: RunResult): number | undefined {
  const acc = defenseOf(r)?.clean?.accuracy;
  return typeof acc === 'number' ? acc : undefined;
}

export function accuracyCurves(r: RunResult): Curve[] {
  const { undefended, defended } = attackResults(r);
  const defendedClean = defendedCleanAccuracy(r);
  const groups = new Map<string, Curve>();
  for (const [attacks, isDefended] of [
    [undefended, false],
    [defended, true],
  ] as const) {
    for (const a of attacks) {
      const threat = isDefended ? a.threat || 'direct' : UNDEFENDED_THREAT;
      const key = `${isDefended}|${a.attack}|${threat}|${a.norm}`;
      let curve = groups.get(key);
      if (!curve) {
        const clean = isDefended ? defendedClean : r.clean?.accuracy;
        curve = {
          label: isDefended ? `${a.attack} (${a.norm}) on defense, ${threat}` : `${a.attack} (${a.norm}), no defense`,
          attack: a.attack,
          threat,
          norm: a.norm,
          defended: isDefended,
          points: typeof clean === 'number' ? [{ eps: 0, accuracy: clean }] : [],
        };
        groups.set(key, curve);
      }
      const same = curve.points.findIndex((p) => p.eps === a.eps);
      if (same < 0) curve.points.push({ eps: a.eps, accuracy: a.accuracy });
      else if (a.eps !== 0) curve.points[same] = { eps: a.eps, accuracy: Math.min(curve.points[same].accuracy, a.accuracy) };
    }
  }
  for (const c of groups.values()) c.points.sort((p, q) => p.eps - q.eps);
  return [...groups.values()];
}

/**
 * Per norm and epsilon, the worst case without and with the defense. Results since schema 2 record
 * the per-sample union (a sample is robust only if it survived every attack and threat model) and
 * which attack broke each sample first; older results only allow the lowest single-attack accuracy.
 */
export function worstCase(r: RunResult): WorstCaseRow[] {
  const { undefended, defended } = attackResults(r);
  const rows = new Map<string, WorstCaseRow>();
  const row = (norm: string, eps: number) => {
    const key = `${norm}|${eps}`;
    let existing = rows.get(key);
    if (!existing) rows.set(key, (existing = { norm, eps }));
    return existing;
  };
  const recordedBaseline = list(r.worstCase, isWorstCase);
  if (recordedBaseline.length) {
    for (const wc of recordedBaseline) row(wc.norm, wc.eps).undefended = worstCaseCell(wc);
  } else {
    for (const a of undefended) {
      const w = row(a.norm, a.eps);
      if (!w.undefended || a.accuracy < w.undefended.accuracy)
        w.undefended = { accuracy: a.accuracy, attack: a.attack, threat: UNDEFENDED_THREAT, union: false };
    }
  }
  const recorded = list(defenseOf(r)?.worstCase, isWorstCase);
  if (recorded.length) {
    for (const wc of recorded) row(wc.norm, wc.eps).defended = { ...worstCaseCell(wc), broken: wc.broken };
  } else {
    for (const a of defended) {
      const w = row(a.norm, a.eps);
      if (!w.defended || a.accuracy < w.defended.accuracy) w.defended = { accuracy: a.accuracy, attack: a.attack, threat: a.threat, union: false };
    }
  }
  return [...rows.values()].sort((a, b) => a.norm.localeCompare(b.norm) || a.eps - b.eps);
}

function isWorstCase(x: unknown): x is WorstCase {
  return isRecord(x) && typeof x.eps === 'number' && typeof x.accuracy === 'number' && typeof x.norm === 'string';
}

function worstCaseCell(wc: WorstCase): WorstCaseCell {
  const firstBroken = Array.isArray(wc.firstBroken) ? wc.firstBroken.filter((f) => isRecord(f) && typeof f.count === 'number') : undefined;
  return {
    accuracy: wc.accuracy,
    attack: wc.attack,
    threat: wc.threat,
    union: wc.method === 'per-sample-union',
    singleAccuracy: wc.singleAccuracy,
    firstBroken,
  };
}

/** "pgd/bpda 31, square/gradient-free 4": who broke how many samples first (clean errors left out). */
export function firstBrokenText(cell: WorstCaseCell | undefined): string {
  const parts = (cell?.firstBroken ?? []).filter((f) => f.attack !== 'clean' && f.count > 0).sort((a, b) => b.count - a.count);
  if (!parts.length) return '–';
  return parts.map((f) => `${f.attack}${f.threat && f.threat !== UNDEFENDED_THREAT ? `/${f.threat}` : ''} ${f.count}`).join(', ');
}

export function worstCaseTable(r: RunResult): Table {
  const rows = worstCase(r);
  const hasDefense = rows.some((w) => w.defended);
  const union = rows.some((w) => w.undefended?.union || w.defended?.union);
  return {
    title: union
      ? 'Worst case per sample over all attacks (a sample counts as robust only if it survived every attack)'
      : 'Worst case over attacks (lowest single attack)',
    columns: [
      'norm',
      'eps',
      'no defense',
      'strongest attack',
      ...(union ? ['broken first by'] : []),
      ...(hasDefense ? ['with defense', 'strongest attack / threat', ...(union ? ['broken first by'] : []), 'broken'] : []),
    ],
    rows: rows.map((w) => [
      w.norm,
      formatNumber(w.eps),
      percent(w.undefended?.accuracy),
      w.undefended ? `${w.undefended.attack}${w.undefended.singleAccuracy !== undefined ? ` (${percent(w.undefended.singleAccuracy)})` : ''}` : '–',
      ...(union ? [firstBrokenText(w.undefended)] : []),
      ...(hasDefense
        ? [
            percent(w.defended?.accuracy),
            w.defended
              ? `${w.defended.attack} / ${w.defended.threat}${w.defended.singleAccuracy !== undefined ? ` (${percent(w.defended.singleAccuracy)})` : ''}`
              : '–',
            ...(union ? [firstBrokenText(w.defended)] : []),
            w.defended?.broken === undefined ? '–' : w.defended.broken ? 'broken' : 'no',
          ]
        : []),
    ]),
  };
}

/** An attack's budget in a few words: "10 steps of 0.005, 1 restart, ce" or "5,000 queries". */
export function budgetText(params: unknown): string {
  if (!isRecord(params)) return '–';
  const p = params;
  const parts: string[] = [];
  if (typeof p.steps === 'number') parts.push(`${formatNumber(p.steps)} steps${typeof p.stepSize === 'number' ? ` of ${formatNumber(p.stepSize)}` : ''}`);
  if (typeof p.restarts === 'number') parts.push(`${formatNumber(p.restarts)} restart${p.restarts === 1 ? '' : 's'}`);
  if (typeof p.queries === 'number') parts.push(`${formatNumber(p.queries)} queries`);
  if (typeof p.loss === 'string') parts.push(p.loss);
  if (p.randomStart === false) parts.push('no random start');
  if (typeof p.targeted === 'string') parts.push('targeted');
  return parts.join(', ') || '–';
}

export function attackTable(r: RunResult): Table {
  const { undefended, defended } = attackResults(r);
  const all = [...undefended, ...defended];
  const rejection = all.some((a) => isRecord(a.rejection));
  const projection = all.some((a) => typeof a.projectionRate === 'number');
  return {
    title: 'Attacks',
    columns: [
      'model',
      'attack',
      'threat',
      'norm',
      'eps',
      'robust accuracy',
      'success rate',
      ...(rejection ? ['rejected', 'accepted accuracy'] : []),
      ...(projection ? ['projected'] : []),
      'budget',
      'mean ‖δ‖',
      'max ‖δ‖',
      'gradients',
      'queries',
      'seconds',
    ],
    rows: all.map((a) => [
      defended.includes(a) ? 'defended' : 'baseline',
      a.attack,
      a.threat || UNDEFENDED_THREAT,
      a.norm,
      formatNumber(a.eps),
      percent(a.accuracy),
      percent(a.successRate),
      ...(rejection ? [percent(a.rejection?.rejectionRate), percent(a.rejection?.acceptedAccuracy)] : []),
      ...(projection ? [percent(a.projectionRate)] : []),
      budgetText(a.params),
      formatNumber(a.meanPerturbation),
      formatNumber(a.maxPerturbation),
      formatNumber(a.gradientEvaluations),
      formatNumber(a.queries),
      typeof a.seconds === 'number' ? a.seconds.toFixed(1) : '–',
    ]),
  };
}

/** The checks on the evaluation that fired: warnings, each saying what it means (schema 2). */
export function warningsTable(r: RunResult): Table {
  const fired = list((r as { checks?: unknown }).checks, (c): c is CheckResult => isRecord(c) && c.fired === true && typeof c.message === 'string');
  return {
    title: 'Warnings: checks on the evaluation that fired (a failed attack is not robustness)',
    columns: ['model', 'check', 'threat', 'eps', 'what it means'],
    rows: fired.map((c) => [
      c.target === 'defended' ? 'defended' : 'baseline',
      c.id,
      c.threat || '–',
      c.eps === undefined ? '–' : formatNumber(c.eps),
      c.message,
    ]),
  };
}

/** Parameters as flat key=value pairs (nested objects as a.b). */
function flatParams(obj: unknown, prefix = ''): [string, string][] {
  if (!isRecord(obj)) return [];
  return Object.entries(obj).flatMap(([k, v]): [string, string][] => (isRecord(v) ? flatParams(v, `${prefix}${k}.`) : [[`${prefix}${k}`, formatNumber(v)]]));
}

/** Parameters as flat key/value pairs with their raw values (nested objects as a.b). */
function flatEntries(obj: unknown, prefix = ''): [string, unknown][] {
  if (!isRecord(obj)) return [];
  return Object.entries(obj).flatMap(([k, v]): [string, unknown][] => (isRecord(v) ? flatEntries(v, `${prefix}${k}.`) : [[`${prefix}${k}`, v]]));
}

/**
 * Per defense kind, the parameters besides the wizard's that decide what the verdict's numbers
 * mean: whether and when the defense rejects or abstains (what counts as fooled), and which
 * pipeline follows the retrieval (the rest of the network, or a trained head).
 */
const VERDICT_PARAMS: Record<string, readonly string[]> = {
  lesci: ['reject', 'tProjection'],
  dae: ['alpha', 'thresholds'],
  retrieval: ['head'],
};

/** A loss history or another curve: numbers only, named like one or long. */
function isSeries(key: string, v: unknown): v is number[] {
  return (
    Array.isArray(v) && v.length >= 2 && v.every((x) => typeof x === 'number' && Number.isFinite(x)) && (/history|curve|losses/i.test(key) || v.length >= 16)
  );
}

/** A defense's placement in words, for the insertion tensor `layer`. */
export function placementText(placement: string, layer: string): string | undefined {
  if (placement === 'before-tail') return `the defense replaces the activation at ${layer}, and the rest of the network runs on it`;
  if (placement === 'after-tail')
    return `the defense acts on the network's output: the network runs unchanged, and the defense reads the activation at ${layer} and the logits to decide the class scores`;
  return undefined;
}

/** A defense's parameters split into the main ones, the rest and the numeric series (see DefenseView). */
export function splitDefenseParams(kind: string, params: unknown): Pick<DefenseView, 'mainParams' | 'otherParams' | 'series'> {
  const entries = flatEntries(params);
  const raw = new Map(entries);
  const spec = CATALOGUE.defenses.find((d) => d.kind === kind);
  const mainKeys = (spec?.params ?? [])
    .filter((p) => (p.ask || VERDICT_PARAMS[kind]?.includes(p.key)) && raw.has(p.key) && (!p.when || raw.get(p.when.key) === p.when.equals))
    .map((p) => p.key);
  const series = entries.filter(([k, v]) => !mainKeys.includes(k) && isSeries(k, v)).map(([key, values]) => ({ key, values: values as number[] }));
  return {
    mainParams: mainKeys.map((k) => [k, formatNumber(raw.get(k))]),
    otherParams: entries.filter(([k]) => !mainKeys.includes(k) && !series.some((x) => x.key === k)).map(([k, v]) => [k, formatNumber(v)]),
    series,
  };
}

export function defenseView(r: RunResult): DefenseView | undefined {
  const d = defenseOf(r);
  if (!d) return undefined;
  const kind = typeof d.kind === 'string' ? d.kind : '?';
  const layer = typeof d.layer === 'string' ? d.layer : '?';
  const placement = typeof d.placement === 'string' ? d.placement : undefined;
  return {
    kind,
    layer,
    verdict: typeof d.verdict === 'string' ? d.verdict : undefined,
    verdictReasons: Array.isArray(d.verdictReasons) ? d.verdictReasons.filter((x): x is string => typeof x === 'string') : [],
    cleanAccuracy: defendedCleanAccuracy(r),
    params: flatParams(d.params),
    ...splitDefenseParams(kind, d.params),
    placement,
    placementText: placement ? placementText(placement, layer) : undefined,
  };
}

function thresholdCells(row: ThresholdRow | undefined): string[] {
  return row ? [percent(row.acceptedAccuracy), percent(row.rejectionRate), percent(row.accuracyOverAll)] : ['–', '–', '–'];
}

/** The defense's own tables: threat models, dAE thresholds (clean and under attack). */
export function defenseTables(r: RunResult): Table[] {
  const d = defenseOf(r);
  if (!d) return [];
  const tables: Table[] = [];
  if (isRecord(d.threats) && Object.keys(d.threats).length) {
    tables.push({
      title: 'Threat models: the gradient each attack followed',
      columns: ['threat', 'gradient'],
      rows: Object.entries(d.threats).map(([t, g]) => [t, formatNumber(g)]),
    });
  }
  const baseline = list(d.thresholds?.baseline, isThresholdRow);
  const defended = list(d.thresholds?.defended, isThresholdRow);
  if (baseline.length || defended.length) {
    const thresholds = [...new Set([...baseline, ...defended].map((t) => t.threshold))].sort((a, b) => a - b);
    tables.push({
      title: 'dAE thresholds (clean): accuracy among accepted, rejected, correct and accepted over all',
      columns: ['threshold', 'softmax: accuracy', 'rejected', 'over all', 'dAE: accuracy', 'rejected', 'over all'],
      rows: thresholds.map((t) => [
        formatNumber(t),
        ...thresholdCells(baseline.find((b) => b.threshold === t)),
        ...thresholdCells(defended.find((b) => b.threshold === t)),
      ]),
    });
  }
  const underAttack = attackResults(r).defended.flatMap((a) =>
    list(a.thresholds, isThresholdRow).map((t) => [
      a.attack,
      a.threat,
      formatNumber(a.eps),
      formatNumber(t.threshold),
      ...thresholdCells(t),
      percent(t.acceptedWrong),
    ]),
  );
  if (underAttack.length) {
    tables.push({
      title: 'dAE thresholds under attack (accepted and wrong: fooled and not caught)',
      columns: ['attack', 'threat', 'eps', 'threshold', 'accuracy', 'rejected', 'over all', 'accepted and wrong'],
      rows: underAttack,
    });
  }
  return tables;
}

/** The fooling generator's results (dAE paper), undefended and dAE-scaled. */
export function foolingTable(r: RunResult): Table | undefined {
  const f = (r as { fooling?: unknown }).fooling;
  if (!isRecord(f)) return undefined;
  type Summary = { threshold: number; foolingRate: number; averageSteps: number | null; runs?: unknown[] };
  const isSummary = (x: unknown): x is Summary => isRecord(x) && typeof x.threshold === 'number';
  const baseline = list(f.baseline, isSummary);
  const defended = list(f.defended, isSummary);
  if (!baseline.length && !defended.length) return undefined;
  const thresholds = [...new Set([...baseline, ...defended].map((s) => s.threshold))].sort((a, b) => a - b);
  const cells = (s: Summary | undefined) =>
    s ? [percent(s.foolingRate), s.averageSteps === null ? '–' : formatNumber(Math.round(s.averageSteps)), formatNumber(s.runs?.length)] : ['–', '–', '–'];
  return {
    title: 'Fooling generator (dAE paper): share of runs that reached the confidence threshold',
    columns: ['threshold', 'undefended: fooled', 'mean steps', 'runs', ...(defended.length ? ['dAE: fooled', 'mean steps', 'runs'] : [])],
    rows: thresholds.map((t) => [
      formatNumber(t),
      ...cells(baseline.find((s) => s.threshold === t)),
      ...(defended.length ? cells(defended.find((s) => s.threshold === t)) : []),
    ]),
  };
}

/** The run's example images, when the engine recorded them. */
export function examples(r: RunResult): ExampleView[] {
  const names = r.dataset?.classNames;
  const cls = (c: unknown) => (typeof c === 'number' && names?.[c] ? `${c} ${names[c]}` : formatNumber(c));
  const out: ExampleView[] = [];
  for (const e of Array.isArray(r.examples) ? r.examples : []) {
    if (!isRecord(e) || !Array.isArray(e.shape) || !Array.isArray(e.clean) || !Array.isArray(e.adversarial)) continue;
    // [C, H, W], or [H, W] for single-channel images.
    const dims = (e.shape.length === 2 ? [1, ...e.shape] : e.shape) as number[];
    if (dims.length !== 3 || !dims.every((d) => Number.isInteger(d) && d > 0)) continue;
    const [c, h, w] = dims;
    if (e.clean.length !== c * h * w || e.adversarial.length !== c * h * w) continue;
    out.push({
      index: Number(e.index),
      label: cls(e.label),
      cleanPrediction: cls(e.cleanPrediction),
      adversarialPrediction: cls(e.adversarialPrediction),
      attack: String(e.attack ?? '?'),
      threat: String(e.threat ?? UNDEFENDED_THREAT),
      target: String(e.target ?? (e.threat && e.threat !== UNDEFENDED_THREAT ? 'defended' : 'baseline')),
      eps: Number(e.eps),
      shape: [c, h, w],
      clean: e.clean as number[],
      adversarial: e.adversarial as number[],
      fooled: typeof e.fooled === 'boolean' ? e.fooled : e.cleanPrediction === e.label && e.adversarialPrediction !== e.label,
    });
  }
  return out;
}

/** RGBA pixels (row-major, 4 bytes per pixel) for the three panels of an example. */
export function examplePixels(e: ExampleView): { clean: Uint8ClampedArray; adversarial: Uint8ClampedArray; perturbation: Uint8ClampedArray } {
  const [c, h, w] = e.shape;
  const n = h * w;
  // Images may be normalised (mean/std): show them min-max scaled over both images together.
  let lo = Infinity;
  let hi = -Infinity;
  let maxDelta = 0;
  for (let i = 0; i < c * n; i++) {
    lo = Math.min(lo, e.clean[i], e.adversarial[i]);
    hi = Math.max(hi, e.clean[i], e.adversarial[i]);
    maxDelta = Math.max(maxDelta, Math.abs(e.adversarial[i] - e.clean[i]));
  }
  const span = hi > lo ? hi - lo : 1;
  const image = (value: (i: number) => number) => {
    const px = new Uint8ClampedArray(4 * n);
    for (let p = 0; p < n; p++) {
      for (let ch = 0; ch < 3; ch++) px[4 * p + ch] = Math.round(255 * value((c === 1 ? 0 : Math.min(ch, c - 1)) * n + p));
      px[4 * p + 3] = 255;
    }
    return px;
  };
  return {
    clean: image((i) => (e.clean[i] - lo) / span),
    adversarial: image((i) => (e.adversarial[i] - lo) / span),
    // Magnified so that the largest change spans the full range around mid-grey.
    perturbation: image((i) => 0.5 + (maxDelta > 0 ? (e.adversarial[i] - e.clean[i]) / (2 * maxDelta) : 0)),
  };
}

/** Confusion matrices: the clean one, and the defended model's when there is a defense. */
export function confusionMatrices(r: RunResult): Matrix[] {
  const valid = (m: unknown): m is number[][] => Array.isArray(m) && m.length > 0 && m.every((row) => Array.isArray(row) && row.length === m.length);
  const n = valid(r.clean?.confusion) ? r.clean.confusion.length : 0;
  const labels = Array.from({ length: n }, (_, i) => r.dataset?.classNames?.[i] ?? String(i));
  const out: Matrix[] = [];
  if (valid(r.clean?.confusion)) out.push({ title: 'Confusion matrix (clean, no defense)', labels, counts: r.clean.confusion });
  const defended = defenseOf(r)?.clean?.confusion;
  if (valid(defended) && defended.length === n) out.push({ title: 'Confusion matrix (clean, with the defense)', labels, counts: defended });
  return out;
}

export function summaryRows(r: RunResult): [string, string][] {
  const rows: [string, string][] = [
    ...(isRecord(r.experiment) ? [['experiment', `${formatNumber(r.experiment.name)} (${formatNumber(r.experiment.file)})`] as [string, string]] : []),
    ['model', `${r.model?.path ?? '?'}${r.model?.opset ? ` (opset ${r.model.opset})` : ''}`],
    ...(typeof r.model?.logits === 'string' ? [['logits', r.model.logits] as [string, string]] : []),
    ['dataset', `${r.dataset?.path ?? '?'} (${r.dataset?.format ?? '?'}, ${formatNumber(r.dataset?.count)} samples)`],
    ['clean accuracy', `${percent(r.clean?.accuracy)} (${formatNumber(r.clean?.correct)} / ${formatNumber(r.clean?.count)})`],
  ];
  const d = defenseOf(r);
  const view = defenseView(r);
  if (d && view) {
    rows.push(['defense', `${view.kind} after ${view.layer}${d.placement ? ` (${d.placement})` : ''}`]);
    if (view.verdict) rows.push(['verdict', view.verdict]);
    if (view.cleanAccuracy !== undefined) {
      const extras = [
        typeof d.clean?.projectionRate === 'number' ? `projected ${percent(d.clean.projectionRate)}` : '',
        typeof d.clean?.rejectionRate === 'number' ? `rejected ${percent(d.clean.rejectionRate)}` : '',
      ].filter(Boolean);
      rows.push(['defended clean accuracy', `${percent(view.cleanAccuracy)}${extras.length ? ` (${extras.join(', ')})` : ''}`]);
    }
    if (isRecord(d.reference)) rows.push(['reference set', `${formatNumber(d.reference.path)} (${formatNumber(d.reference.count)} images)`]);
    if (typeof d.fitSeconds === 'number') rows.push(['defense fit', `${d.fitSeconds.toFixed(1)} s${d.cached ? ' (from the cache)' : ''}`]);
    // The main ones only: the defense section lists the rest.
    const main = view.mainParams.length ? view.mainParams : view.params;
    if (main.length) rows.push(['defense parameters', main.map(([k, v]) => `${k}=${v}`).join(', ')]);
  }
  const sweep = r.sweep;
  if (isRecord(sweep) && Array.isArray(sweep.layers)) {
    const layers = sweep.layers.filter(isRecord);
    const front = layers.filter((l) => l.pareto === true).map((l) => `${formatNumber(l.depth)} (${formatNumber(l.tensor)})`);
    rows.push([
      'layer sweep',
      `${formatNumber(sweep.kind)} at ${layers.length} insertion point${layers.length === 1 ? '' : 's'}; Pareto front: ${front.join(', ') || '–'}`,
    ]);
  }
  const rt = r.runtime;
  const t = r.timings;
  rows.push(
    ['execution provider', rt ? `${rt.executionProvider} (requested ${rt.requested}${rt.fallbackReason ? `; ${rt.fallbackReason}` : ''})` : '?'],
    ['threads · batch', rt ? `${rt.threads === 0 ? 'auto' : rt.threads}${rt.lanes ? ` in ${rt.lanes} lanes` : ''} · ${rt.batchSize}` : '?'],
    ['seed', formatNumber(r.seed)],
    [
      'durations',
      t
        ? `load ${t.loadSeconds.toFixed(2)} s, clean ${t.cleanSeconds.toFixed(2)} s (${formatNumber(Math.round(t.cleanImagesPerSecond))} img/s), total ${t.totalSeconds.toFixed(2)} s`
        : '?',
    ],
    ['created', `${r.createdAt ?? '?'} by ${r.tool?.name ?? '?'} ${r.tool?.version ?? ''}`.trim()],
  );
  return rows;
}

/** The model and the defense of a run, e.g. "fashion-cnn · lesci". */
export function runLabel(r: RunResult): string {
  // The experiment's name says what the run is; the model name and defense are the fallback.
  if (isRecord(r.experiment) && typeof r.experiment.name === 'string' && r.experiment.name) return r.experiment.name;
  const file = r.model?.path ?? 'run';
  const name = basename(file) === 'model.json' ? basename(file.slice(0, -'/model.json'.length)) : basename(file).replace(/\.onnx$/i, '');
  return [name, defenseView(r)?.kind ?? (isRecord(r.sweep) ? `${formatNumber(r.sweep.kind)} layer sweep` : undefined)].filter(Boolean).join(' · ');
}

/**
 * The numbers a list of runs shows: for a defended run the defended model's (clean accuracy and
 * the per-sample worst case over every attack and threat model, with the verdict), otherwise the
 * model's own; `setup` names model and defense when the label is the experiment's name.
 */
export function runHeadline(r: RunResult): { setup?: string; clean: number | undefined; worst?: number; verdict?: string } {
  const view = defenseView(r);
  const d = defenseOf(r);
  const minOf = (rows: unknown) =>
    Array.isArray(rows) ? rows.filter(isRecord).reduce((m, w) => (typeof w.accuracy === 'number' ? Math.min(m, w.accuracy) : m), Infinity) : Infinity;
  const fromAttacks = (target: string) =>
    (r.attacks ?? []).filter((a) => (a.target ?? 'baseline') === target).reduce((m, a) => Math.min(m, a.accuracy), Infinity);
  const worst = view ? Math.min(minOf(d?.worstCase), fromAttacks('defended')) : Math.min(minOf(r.worstCase), fromAttacks('baseline'));
  const model =
    basename(r.model?.path ?? '') === 'model.json'
      ? basename((r.model?.path ?? '').slice(0, -'/model.json'.length))
      : basename(r.model?.path ?? '').replace(/\.onnx$/i, '');
  return {
    setup: isRecord(r.experiment) ? [model, view?.kind].filter(Boolean).join(' · ') : undefined,
    clean: view ? view.cleanAccuracy : r.clean?.accuracy,
    worst: Number.isFinite(worst) ? worst : undefined,
    verdict: view?.verdict,
  };
}

/** A short title for a run, e.g. "fashion-cnn · lesci · 2026-11-21 21:52:07 UTC". */
export function runTitle(r: RunResult): string {
  const when = typeof r.createdAt === 'string' ? `${r.createdAt.slice(0, 19).replace('T', ' ')} UTC` : '';
  return [runLabel(r), when].filter(Boolean).join(' · ');
}

/** Line style per curve: one colour per attack and threat model (and run), a dash pattern per threat model. */
export interface CurveStyle {
  colorIndex: number;
  dash: number[];
}

const THREAT_DASH: Record<string, number[]> = {
  [UNDEFENDED_THREAT]: [],
  transfer: [6, 3],
  bpda: [2, 2],
  direct: [8, 3, 2, 3],
  'gradient-free': [1, 3],
};

/** Styles for the curves of several runs plotted together (`run` distinguishes them by colour). */
export function curveStyles(curves: { run: number; curve: Curve }[]): CurveStyle[] {
  const colors = new Map<string, number>();
  return curves.map(({ run, curve }) => {
    const key = `${run}|${curve.attack}|${curve.norm}|${curve.threat}`;
    if (!colors.has(key)) colors.set(key, colors.size);
    return { colorIndex: colors.get(key)!, dash: THREAT_DASH[curve.threat] ?? [4, 4] };
  });
}

/** The curves of several runs, labelled with the run's name when there is more than one. */
export function combinedCurves(runs: ReportRun[]): { run: number; curve: Curve }[] {
  return runs.flatMap((run, i) =>
    accuracyCurves(run.result).map((curve) => ({ run: i, curve: runs.length > 1 ? { ...curve, label: `${run.name}: ${curve.label}` } : curve })),
  );
}

/**
 * What reports show of a layer sweep (RunResult.sweep): the table per layer for the CLI and the
 * exports, the points of the accuracy-against-robustness chart (one per layer, the Pareto front
 * marked) for the results panel, and the same chart as a standalone SVG for the exports. Read
 * defensively: files from other tool versions may lack the section or hold it in another shape.
 */
import type { RunResult, SweepLayer, WorstCase } from '../protocol/run-result';
import { formatNumber, percent, type Table } from './analysis';
import { escapeXml, EXPORT_PALETTE } from './svg-chart';

const isNumber = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

function validLayers(r: RunResult): SweepLayer[] {
  const layers = r.sweep?.layers;
  return Array.isArray(layers)
    ? layers.filter((l) => l && typeof l === 'object' && typeof l.tensor === 'string' && isNumber(l.cleanAccuracy) && isNumber(l.depth))
    : [];
}

function worstList(x: unknown): WorstCase[] {
  return Array.isArray(x) ? x.filter((w): w is WorstCase => !!w && typeof w === 'object' && isNumber(w.eps) && isNumber(w.accuracy)) : [];
}

/** The (norm, eps) columns: every worst case any layer has, in norm then eps order. */
function worstColumns(layers: SweepLayer[]): { norm: string; eps: number }[] {
  const seen = new Map<string, { norm: string; eps: number }>();
  for (const l of layers) for (const w of worstList(l.worstCase)) seen.set(`${w.norm}:${w.eps}`, { norm: String(w.norm), eps: w.eps });
  return [...seen.values()].sort((a, b) => a.norm.localeCompare(b.norm) || a.eps - b.eps);
}

const worstAt = (list: unknown, norm: string, eps: number) => worstList(list).find((w) => w.norm === norm && w.eps === eps)?.accuracy;

/** The robustness axis: the sweep's paretoAt, or the largest epsilon any layer has. */
function robustnessTarget(r: RunResult, layers: SweepLayer[]): { norm: string; eps: number } | undefined {
  const at = r.sweep?.paretoAt;
  if (at && typeof at === 'object' && isNumber(at.eps) && typeof at.norm === 'string') return { norm: at.norm, eps: at.eps };
  const cols = worstColumns(layers);
  return cols.length ? cols.reduce((a, b) => (b.eps > a.eps ? b : a)) : undefined;
}

/** Per layer: depth, clean accuracy, projection rate, worst case per epsilon, isometry, verdict, fit, Pareto; the undefended model first. */
export function sweepTable(r: RunResult): Table | undefined {
  const layers = validLayers(r);
  if (!layers.length) return undefined;
  const s = r.sweep!;
  const cols = worstColumns(layers);
  const multiNorm = new Set(cols.map((c) => c.norm)).size > 1;
  const at = robustnessTarget(r, layers);
  const iso = (l: SweepLayer) => {
    const v = l.isometry && typeof l.isometry === 'object' ? l.isometry.withinPearson : null;
    return isNumber(v) ? v.toFixed(3) : '–';
  };
  const baseline = ['0', '(no defense)', percent(r.clean?.accuracy), '–', ...cols.map((c) => percent(worstAt(r.worstCase, c.norm, c.eps))), '–', '–', '–', ''];
  return {
    title: `Layer sweep: ${String(s.kind)} at ${layers.length} insertion point${layers.length === 1 ? '' : 's'}, fitted on ${formatNumber(s.reference?.count)} reference images; worst case = per-sample union over every attack and threat model, adaptive included; within r = Pearson r of within-class input and activation distances (${formatNumber(s.isometryPairs)} pairs); Pareto ✓ = no layer is at least as good in clean accuracy and in worst case${at ? ` at ${at.norm} eps ${at.eps}` : ''} and better in one`,
    columns: [
      'depth',
      'layer',
      'clean',
      'projection',
      ...cols.map((c) => `worst ${multiNorm ? `${c.norm} ` : ''}eps ${c.eps}`),
      'within r',
      'verdict',
      'fit',
      'Pareto',
    ],
    rows: [
      baseline,
      ...layers.map((l) => [
        String(l.depth),
        l.tensor,
        percent(l.cleanAccuracy),
        isNumber(l.projectionRate) ? percent(l.projectionRate, 1) : '–',
        ...cols.map((c) => percent(worstAt(l.worstCase, c.norm, c.eps))),
        iso(l),
        String(l.verdict ?? '–'),
        l.cached ? 'cached' : isNumber(l.fitSeconds) ? `${l.fitSeconds.toFixed(1)} s` : '–',
        l.pareto === true ? '✓' : '',
      ]),
    ],
  };
}

export interface SweepPoint {
  tensor: string;
  depth: number;
  /** A short label for the chart: depth and op. */
  label: string;
  clean: number;
  /** Worst-case robust accuracy at the chart's epsilon (null when that layer has none). */
  robust: number | null;
  pareto: boolean;
}

export interface SweepChart {
  /** The robustness axis: the worst case at this norm and epsilon. */
  norm: string;
  eps: number;
  points: SweepPoint[];
  /** The undefended model at the same epsilon. */
  baseline?: { clean: number; robust: number };
}

/** The accuracy-against-robustness chart's data; undefined without a sweep or without attacks. */
export function sweepChart(r: RunResult): SweepChart | undefined {
  const layers = validLayers(r);
  const at = robustnessTarget(r, layers);
  if (!layers.length || !at) return undefined;
  const base = worstAt(r.worstCase, at.norm, at.eps);
  return {
    ...at,
    points: layers.map((l) => ({
      tensor: l.tensor,
      depth: l.depth,
      label: `${l.depth} ${typeof l.op === 'string' ? l.op : ''}`.trim(),
      clean: l.cleanAccuracy,
      robust: worstAt(l.worstCase, at.norm, at.eps) ?? null,
      pareto: l.pareto === true,
    })),
    ...(isNumber(base) && isNumber(r.clean?.accuracy) && { baseline: { clean: r.clean.accuracy, robust: base } }),
  };
}

/** The Pareto front's points, by increasing robustness (and decreasing clean accuracy): the line the charts draw. */
export function frontLine(points: readonly SweepPoint[]): SweepPoint[] {
  return points.filter((p) => p.pareto && p.robust !== null).sort((a, b) => a.robust! - b.robust! || b.clean - a.clean);
}

export interface LabelPlacement {
  /** Where the text starts (anchor 'start') or ends ('end'), relative to its point, in pixels; dy is the baseline. */
  dx: number;
  dy: number;
  anchor: 'start' | 'end';
  /** False for a label folded into an earlier one at the same spot (drawn once). */
  shown: boolean;
  /** The text to draw: the labels of every point at the same spot, joined. */
  text: string;
}

/**
 * Greedy label placement for a scatter chart: points at the same spot share one label (their
 * labels joined); each label takes the first of right-above, right-below, left-above, left-below
 * whose box overlaps no label placed before it and no other point, then the same a line further out
 * (right-above when all do).
 * Boxes are estimated from the text length (`charWidth` pixels per character).
 */
export function placeLabels(points: readonly { x: number; y: number; text: string }[], charWidth = 6.5, height = 12): LabelPlacement[] {
  const key = (p: { x: number; y: number }) => `${Math.round(p.x)}:${Math.round(p.y)}`;
  const groups = new Map<string, number[]>();
  points.forEach((p, i) => groups.set(key(p), [...(groups.get(key(p)) ?? []), i]));
  const boxes: { x0: number; x1: number; y0: number; y1: number }[] = [];
  const overlaps = (b: (typeof boxes)[number]) =>
    boxes.some((o) => b.x0 < o.x1 && o.x0 < b.x1 && b.y0 < o.y1 && o.y0 < b.y1) ||
    points.some((p) => p.x > b.x0 - 4 && p.x < b.x1 + 4 && p.y > b.y0 - 4 && p.y < b.y1 + 4);
  const candidates = [
    { dx: 7, dy: -6, anchor: 'start' as const },
    { dx: 7, dy: 14, anchor: 'start' as const },
    { dx: -7, dy: -6, anchor: 'end' as const },
    { dx: -7, dy: 14, anchor: 'end' as const },
    { dx: 7, dy: -18, anchor: 'start' as const },
    { dx: 7, dy: 26, anchor: 'start' as const },
    { dx: -7, dy: -18, anchor: 'end' as const },
    { dx: -7, dy: 26, anchor: 'end' as const },
  ];
  return points.map((p, i) => {
    const group = groups.get(key(p))!;
    const text = group.map((j) => points[j].text).join(', ');
    if (group[0] !== i) return { ...candidates[0], shown: false, text };
    const width = text.length * charWidth;
    const box = (c: (typeof candidates)[number]) => {
      const x0 = c.anchor === 'start' ? p.x + c.dx : p.x + c.dx - width;
      return { x0, x1: x0 + width, y0: p.y + c.dy - height + 2, y1: p.y + c.dy + 2 };
    };
    const chosen = candidates.find((c) => !overlaps(box(c))) ?? candidates[0];
    boxes.push(box(chosen));
    return { ...chosen, shown: true, text };
  });
}

/** An axis range in [0, 1] around the values, on 5-point steps, at least 10 points wide. */
export function axisRange(values: readonly number[]): [number, number] {
  if (!values.length) return [0, 1];
  let lo = Math.max(0, Math.floor(Math.min(...values) * 20 - 1e-9) / 20);
  let hi = Math.min(1, Math.ceil(Math.max(...values) * 20 + 1e-9) / 20);
  while (hi - lo < 0.1) {
    if (hi < 1) hi = Math.min(1, hi + 0.05);
    if (hi - lo < 0.1 && lo > 0) lo = Math.max(0, lo - 0.05);
  }
  return [Number(lo.toFixed(2)), Number(hi.toFixed(2))];
}

/** The chart as a standalone SVG (exports): x worst-case robust accuracy, y clean accuracy, one labelled point per layer, the front joined. */
export function sweepChartSvg(r: RunResult, options: { width?: number } = {}): string | undefined {
  const chart = sweepChart(r);
  if (!chart) return undefined;
  const pts = chart.points.filter((p) => p.robust !== null);
  if (!pts.length) return undefined;
  const width = options.width ?? 720;
  const plot = { left: 60, top: 34, width: width - 60 - 30, height: 320 };
  const height = plot.top + plot.height + 70;
  const xs = [...pts.map((p) => p.robust!), ...(chart.baseline ? [chart.baseline.robust] : [])];
  const ys = [...pts.map((p) => p.clean), ...(chart.baseline ? [chart.baseline.clean] : [])];
  const [x0, x1] = axisRange(xs);
  const [y0, y1] = axisRange(ys);
  const x = (v: number) => plot.left + ((v - x0) / (x1 - x0)) * plot.width;
  const y = (v: number) => plot.top + (1 - (v - y0) / (y1 - y0)) * plot.height;
  const front = EXPORT_PALETTE[1];
  const other = EXPORT_PALETTE[0];
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="600">${escapeXml(`Clean accuracy against robustness (${chart.norm} eps ${chart.eps}), one point per layer`)}</text>`,
  ];
  const ticks = (lo: number, hi: number) => Array.from({ length: Math.round((hi - lo) / 0.05) + 1 }, (_, i) => lo + i * 0.05);
  const every = (lo: number, hi: number) => ((hi - lo) / 0.05 > 10 ? 2 : 1);
  ticks(y0, y1).forEach((t, i) => {
    if (i % every(y0, y1)) return;
    out.push(`<line x1="${plot.left}" x2="${plot.left + plot.width}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#e0e0e0"/>`);
    out.push(`<text x="${plot.left - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end" fill="#444">${Math.round(t * 100)}%</text>`);
  });
  ticks(x0, x1).forEach((t, i) => {
    if (i % every(x0, x1)) return;
    out.push(`<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${plot.top}" y2="${plot.top + plot.height}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${x(t).toFixed(1)}" y="${plot.top + plot.height + 16}" text-anchor="middle" fill="#444">${Math.round(t * 100)}%</text>`);
  });
  out.push(`<rect x="${plot.left}" y="${plot.top}" width="${plot.width}" height="${plot.height}" fill="none" stroke="#999"/>`);
  out.push(
    `<text x="${plot.left + plot.width / 2}" y="${plot.top + plot.height + 34}" text-anchor="middle" fill="#222">${escapeXml(`worst-case robust accuracy at ${chart.norm} eps ${chart.eps}`)}</text>`,
  );
  out.push(`<text transform="translate(14 ${plot.top + plot.height / 2}) rotate(-90)" text-anchor="middle" fill="#222">clean accuracy</text>`);
  const line = frontLine(pts);
  if (line.length > 1)
    out.push(
      `<polyline points="${line.map((p) => `${x(p.robust!).toFixed(1)},${y(p.clean).toFixed(1)}`).join(' ')}" fill="none" stroke="${front}" stroke-width="2"/>`,
    );
  const labels = placeLabels([
    ...(chart.baseline ? [{ x: x(chart.baseline.robust), y: y(chart.baseline.clean), text: 'no defense' }] : []),
    ...pts.map((p) => ({ x: x(p.robust!), y: y(p.clean), text: p.label })),
  ]);
  const baselineLabel = chart.baseline ? labels.shift() : undefined;
  if (chart.baseline) {
    const bx = x(chart.baseline.robust);
    const by = y(chart.baseline.clean);
    out.push(
      `<rect x="${(bx - 4).toFixed(1)}" y="${(by - 4).toFixed(1)}" width="8" height="8" fill="#7f7f7f"><title>${escapeXml(`no defense: clean ${percent(chart.baseline.clean)}, worst case ${percent(chart.baseline.robust)}`)}</title></rect>`,
      baselineLabel?.shown
        ? `<text x="${(bx + baselineLabel.dx).toFixed(1)}" y="${(by + baselineLabel.dy).toFixed(1)}" text-anchor="${baselineLabel.anchor}" fill="#555">${escapeXml(baselineLabel.text)}</text>`
        : '',
    );
  }
  pts.forEach((p, i) => {
    const cx = x(p.robust!);
    const cy = y(p.clean);
    const color = p.pareto ? front : other;
    out.push(
      `<circle cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="${p.pareto ? 5 : 4}" fill="${p.pareto ? color : '#ffffff'}" stroke="${color}" stroke-width="2"><title>${escapeXml(`${p.tensor}: clean ${percent(p.clean)}, worst case ${percent(p.robust)}${p.pareto ? ', on the Pareto front' : ''}`)}</title></circle>`,
    );
    const l = labels[i];
    if (l.shown)
      out.push(`<text x="${(cx + l.dx).toFixed(1)}" y="${(cy + l.dy).toFixed(1)}" text-anchor="${l.anchor}" fill="#222">${escapeXml(l.text)}</text>`);
  });
  const ly = plot.top + plot.height + 56;
  out.push(
    `<circle cx="${plot.left + 6}" cy="${ly - 4}" r="5" fill="${front}"/><text x="${plot.left + 16}" y="${ly}" fill="#222">on the Pareto front (joined)</text>`,
    `<circle cx="${plot.left + 206}" cy="${ly - 4}" r="4" fill="#ffffff" stroke="${other}" stroke-width="2"/><text x="${plot.left + 216}" y="${ly}" fill="#222">dominated</text>`,
    `<text x="${plot.left + 300}" y="${ly}" fill="#555">labels: depth and op</text>`,
    '</svg>',
  );
  return out.join('\n');
}

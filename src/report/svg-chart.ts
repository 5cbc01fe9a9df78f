/**
 * Robust accuracy against epsilon as a standalone SVG string, for exported reports (the webview
 * draws the same curves with chart.js). No DOM needed, so the CLI can use it too.
 */
import { combinedCurves, curveStyles, type ReportRun } from './analysis';

/** Colours for exported reports on a white page (the webview uses the theme's chart colours). */
export const EXPORT_PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let t = 0; t <= max + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(10)));
  if (ticks[ticks.length - 1] < max) ticks.push(Number((ticks[ticks.length - 1] + step).toPrecision(10)));
  return ticks;
}

/** The accuracy-vs-epsilon chart of one or more runs; undefined when no run has attack results. */
export function accuracyChartSvg(runs: ReportRun[], options: { width?: number; title?: string } = {}): string | undefined {
  const curves = combinedCurves(runs);
  if (curves.length === 0) return undefined;
  const styles = curveStyles(curves);
  const width = options.width ?? 720;
  const legendRows = curves.length;
  const plot = { left: 56, top: 34, width: width - 56 - 20, height: 260 };
  const height = plot.top + plot.height + 46 + legendRows * 18;
  const maxEps = Math.max(...curves.flatMap(({ curve }) => curve.points.map((p) => p.eps)));
  const xTicks = niceTicks(maxEps);
  const xMax = xTicks[xTicks.length - 1] || 1;
  const x = (eps: number) => plot.left + (eps / xMax) * plot.width;
  const y = (acc: number) => plot.top + (1 - acc) * plot.height;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
  );
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="600">${escapeXml(options.title ?? 'Robust accuracy against epsilon')}</text>`,
  );
  for (let i = 0; i <= 10; i += 2) {
    const yy = y(i / 10);
    out.push(`<line x1="${plot.left}" x2="${plot.left + plot.width}" y1="${yy}" y2="${yy}" stroke="#e0e0e0"/>`);
    out.push(`<text x="${plot.left - 6}" y="${yy + 4}" text-anchor="end" fill="#444">${i * 10}%</text>`);
  }
  for (const t of xTicks) {
    const xx = x(t);
    out.push(`<line x1="${xx}" x2="${xx}" y1="${plot.top}" y2="${plot.top + plot.height}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${xx}" y="${plot.top + plot.height + 16}" text-anchor="middle" fill="#444">${t}</text>`);
  }
  out.push(`<rect x="${plot.left}" y="${plot.top}" width="${plot.width}" height="${plot.height}" fill="none" stroke="#999"/>`);
  out.push(`<text x="${plot.left + plot.width / 2}" y="${plot.top + plot.height + 34}" text-anchor="middle" fill="#222">epsilon</text>`);
  out.push(`<text transform="translate(14 ${plot.top + plot.height / 2}) rotate(-90)" text-anchor="middle" fill="#222">robust accuracy</text>`);
  curves.forEach(({ curve }, i) => {
    const color = EXPORT_PALETTE[styles[i].colorIndex % EXPORT_PALETTE.length];
    const dash = styles[i].dash.length ? ` stroke-dasharray="${styles[i].dash.join(' ')}"` : '';
    const pts = curve.points.map((p) => `${x(p.eps).toFixed(1)},${y(p.accuracy).toFixed(1)}`).join(' ');
    out.push(`<polyline points="${pts}" fill="none" stroke="${color}" stroke-width="2"${dash}/>`);
    for (const p of curve.points) {
      out.push(
        `<circle cx="${x(p.eps).toFixed(1)}" cy="${y(p.accuracy).toFixed(1)}" r="3" fill="${color}"><title>${escapeXml(`${curve.label}: eps ${p.eps}, ${(100 * p.accuracy).toFixed(2)}%`)}</title></circle>`,
      );
    }
    const ly = plot.top + plot.height + 52 + i * 18;
    out.push(`<line x1="${plot.left}" x2="${plot.left + 28}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${plot.left + 36}" y="${ly}" fill="#222">${escapeXml(curve.label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

/** The results panel's charts with chart.js, in the theme's colours: robust accuracy against epsilon, isometry against depth, open-set ROC. */
import { Chart, Legend, LinearScale, LineController, LineElement, PointElement, Title, Tooltip } from 'chart.js';
import { combinedCurves, curveStyles, type ReportRun } from '../../src/report/analysis';
import type { IsometryPoint, RocSeries } from '../../src/report/layers-open-set';
import { axisRange, frontLine, placeLabels, type SweepChart, type SweepPoint } from '../../src/report/sweep';
import type { Sparkline } from '../../src/report/sparkline';

Chart.register(LineController, LineElement, PointElement, LinearScale, Legend, Tooltip, Title);

/** The theme's chart colours (--vscode-charts-*), in a fixed order. */
const THEME_COLORS = ['blue', 'red', 'green', 'orange', 'purple', 'yellow'];

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
}

export function accuracyChart(canvas: HTMLCanvasElement, runs: ReportRun[]): Chart | undefined {
  const curves = combinedCurves(runs);
  if (curves.length === 0) return undefined;
  const styles = curveStyles(curves);
  const foreground = cssVar('--vscode-foreground', '#ccc');
  const grid = cssVar('--vscode-editorWidget-border', 'rgba(128,128,128,0.3)');
  const colors = THEME_COLORS.map((c, i) => cssVar(`--vscode-charts-${c}`, ['#3794ff', '#f14c4c', '#89d185', '#d18616', '#b180d7', '#cca700'][i]));
  Chart.defaults.font.family = cssVar('--vscode-font-family', 'sans-serif');
  Chart.defaults.color = foreground;
  return new Chart(canvas, {
    type: 'line',
    data: {
      datasets: curves.map(({ curve }, i) => ({
        label: curve.label,
        data: curve.points.map((p) => ({ x: p.eps, y: 100 * p.accuracy })),
        borderColor: colors[styles[i].colorIndex % colors.length],
        backgroundColor: colors[styles[i].colorIndex % colors.length],
        borderDash: styles[i].dash,
        borderWidth: 2,
        pointRadius: 3,
        tension: 0,
      })),
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      parsing: false,
      scales: {
        x: { type: 'linear', title: { display: true, text: 'epsilon' }, grid: { color: grid }, min: 0 },
        y: { type: 'linear', title: { display: true, text: 'robust accuracy (%)' }, grid: { color: grid }, min: 0, max: 100 },
      },
      plugins: {
        legend: { position: 'bottom', labels: { boxWidth: 24 } },
        tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${(ctx.parsed.y ?? 0).toFixed(2)}% at eps ${ctx.parsed.x}` } },
      },
    },
  });
}

function themeColors(): { foreground: string; grid: string; colors: string[] } {
  const foreground = cssVar('--vscode-foreground', '#ccc');
  Chart.defaults.font.family = cssVar('--vscode-font-family', 'sans-serif');
  Chart.defaults.color = foreground;
  return {
    foreground,
    grid: cssVar('--vscode-editorWidget-border', 'rgba(128,128,128,0.3)'),
    colors: THEME_COLORS.map((c, i) => cssVar(`--vscode-charts-${c}`, ['#3794ff', '#f14c4c', '#89d185', '#d18616', '#b180d7', '#cca700'][i])),
  };
}

/**
 * Isometry against depth (one point per insertion point): the within-class and between-class
 * correlations on the left axis, the within-class relative distortion on the right one.
 */
export function isometryChart(canvas: HTMLCanvasElement, points: IsometryPoint[]): Chart | undefined {
  if (points.length === 0) return undefined;
  const { grid, colors } = themeColors();
  const series = (key: keyof Omit<IsometryPoint, 'depth' | 'tensor'>) =>
    points.filter((p) => p[key] !== null).map((p) => ({ x: p.depth, y: p[key] as number, tensor: p.tensor }));
  const dataset = (label: string, key: keyof Omit<IsometryPoint, 'depth' | 'tensor'>, color: string, axis: 'y' | 'y2', dash: number[] = []) => ({
    label,
    data: series(key),
    yAxisID: axis,
    borderColor: color,
    backgroundColor: color,
    borderDash: dash,
    borderWidth: 2,
    pointRadius: 3,
    tension: 0,
  });
  return new Chart(canvas, {
    type: 'line',
    data: {
      datasets: [
        dataset('within-class Pearson r', 'withinPearson', colors[0], 'y'),
        dataset('within-class Spearman ρ', 'withinSpearman', colors[2], 'y', [2, 3]),
        dataset('between-class Pearson r', 'betweenPearson', colors[4], 'y', [6, 4]),
        dataset('within-class distortion (right axis)', 'withinDistortion', colors[1], 'y2'),
      ],
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      parsing: false,
      scales: {
        x: { type: 'linear', title: { display: true, text: 'depth (node position in the graph)' }, grid: { color: grid }, ticks: { precision: 0 } },
        y: { type: 'linear', position: 'left', title: { display: true, text: 'correlation of input and activation distances' }, grid: { color: grid }, max: 1 },
        y2: { type: 'linear', position: 'right', title: { display: true, text: 'relative distortion' }, grid: { drawOnChartArea: false }, min: 0 },
      },
      plugins: {
        legend: { position: 'bottom', labels: { boxWidth: 24 } },
        tooltip: {
          callbacks: {
            label: (ctx) => `${ctx.dataset.label}: ${(ctx.parsed.y ?? 0).toFixed(3)} at ${(ctx.raw as { tensor?: string }).tensor ?? `depth ${ctx.parsed.x}`}`,
          },
        },
      },
    },
  });
}

/** ROC curves of open-set recognition (known inputs positive), with the chance diagonal. */
export function rocChart(canvas: HTMLCanvasElement, curves: RocSeries[]): Chart | undefined {
  if (curves.length === 0) return undefined;
  const { grid, colors, foreground } = themeColors();
  return new Chart(canvas, {
    type: 'line',
    data: {
      datasets: [
        ...curves.map((c, i) => ({
          label: c.label,
          data: c.points.map((p) => ({ x: p.fpr, y: p.tpr })),
          borderColor: colors[i % colors.length],
          backgroundColor: colors[i % colors.length],
          borderWidth: 2,
          pointRadius: 0,
          tension: 0,
        })),
        {
          label: 'chance',
          data: [
            { x: 0, y: 0 },
            { x: 1, y: 1 },
          ],
          borderColor: foreground,
          backgroundColor: foreground,
          borderDash: [3, 3],
          borderWidth: 1,
          pointRadius: 0,
          tension: 0,
        },
      ],
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      parsing: false,
      scales: {
        x: { type: 'linear', title: { display: true, text: 'unknown inputs accepted (false positive rate)' }, grid: { color: grid }, min: 0, max: 1 },
        y: { type: 'linear', title: { display: true, text: 'known inputs accepted (true positive rate)' }, grid: { color: grid }, min: 0, max: 1 },
      },
      plugins: {
        legend: { position: 'bottom', labels: { boxWidth: 24 } },
        tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: TPR ${(ctx.parsed.y ?? 0).toFixed(3)} at FPR ${(ctx.parsed.x ?? 0).toFixed(3)}` } },
      },
    },
  });
}

/**
 * The layer sweep: clean accuracy (y) against worst-case robust accuracy (x), one labelled point
 * per layer, the Pareto front filled and joined, the undefended model as a square.
 */
export function sweepParetoChart(canvas: HTMLCanvasElement, chart: SweepChart): Chart | undefined {
  const points = chart.points.filter((p) => p.robust !== null);
  if (points.length === 0) return undefined;
  const { grid, colors, foreground } = themeColors();
  const xy = (p: SweepPoint) => ({ x: 100 * p.robust!, y: 100 * p.clean, tensor: p.tensor, label: p.label });
  const front = frontLine(points);
  const [x0, x1] = axisRange([...points.map((p) => p.robust!), ...(chart.baseline ? [chart.baseline.robust] : [])]);
  const [y0, y1] = axisRange([...points.map((p) => p.clean), ...(chart.baseline ? [chart.baseline.clean] : [])]);
  const labels = {
    id: 'sweepLabels',
    afterDatasetsDraw(c: Chart) {
      const ctx = c.ctx;
      ctx.save();
      ctx.fillStyle = foreground;
      ctx.font = `11px ${Chart.defaults.font.family ?? 'sans-serif'}`;
      const marks: { x: number; y: number; text: string }[] = [];
      c.data.datasets.forEach((d, i) => {
        if ((d as { showLabels?: boolean }).showLabels !== true || !c.isDatasetVisible(i)) return;
        c.getDatasetMeta(i).data.forEach((el, k) => {
          const raw = d.data[k] as { label?: string };
          if (raw?.label) marks.push({ x: el.x, y: el.y, text: raw.label });
        });
      });
      placeLabels(marks, ctx.measureText('M').width * 0.8).forEach((l, k) => {
        if (!l.shown) return;
        ctx.textAlign = l.anchor === 'start' ? 'left' : 'right';
        ctx.fillText(l.text, marks[k].x + l.dx, marks[k].y + l.dy);
      });
      ctx.restore();
    },
  };
  return new Chart(canvas, {
    type: 'line',
    plugins: [labels],
    data: {
      datasets: [
        {
          label: 'Pareto front',
          data: front.map(xy),
          borderColor: colors[1],
          backgroundColor: colors[1],
          borderWidth: 2,
          pointRadius: 6,
          tension: 0,
        },
        {
          label: 'layers (depth and op)',
          data: points.map(xy),
          showLine: false,
          showLabels: true,
          borderColor: colors[0],
          backgroundColor: 'transparent',
          borderWidth: 2,
          pointRadius: 4,
        } as never,
        ...(chart.baseline
          ? [
              {
                label: 'no defense',
                data: [{ x: 100 * chart.baseline.robust, y: 100 * chart.baseline.clean, tensor: 'no defense', label: 'no defense' }],
                showLine: false,
                showLabels: true,
                pointStyle: 'rect',
                borderColor: foreground,
                backgroundColor: foreground,
                pointRadius: 5,
              } as never,
            ]
          : []),
      ],
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      parsing: false,
      scales: {
        x: {
          type: 'linear',
          title: { display: true, text: `worst-case robust accuracy at ${chart.norm} eps ${chart.eps} (%)` },
          grid: { color: grid },
          min: 100 * x0,
          max: 100 * x1,
        },
        y: { type: 'linear', title: { display: true, text: 'clean accuracy (%)' }, grid: { color: grid }, min: 100 * y0, max: 100 * y1 },
      },
      plugins: {
        legend: { position: 'bottom', labels: { boxWidth: 24 } },
        tooltip: {
          callbacks: {
            label: (ctx) =>
              `${(ctx.raw as { tensor?: string }).tensor ?? ''}: clean ${(ctx.parsed.y ?? 0).toFixed(2)}%, worst case ${(ctx.parsed.x ?? 0).toFixed(2)}%`,
          },
        },
      },
    },
  });
}

/** A small curve (a loss per epoch) as inline SVG in the theme's colour, with its first, last, lowest and highest values in the tooltip. */
export function sparklineElement(s: Sparkline, label: string): SVGSVGElement {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'sparkline');
  svg.setAttribute('width', String(s.width));
  svg.setAttribute('height', String(s.height));
  svg.setAttribute('viewBox', `0 0 ${s.width} ${s.height}`);
  svg.setAttribute('role', 'img');
  const fmt = (x: number) => String(Number(x.toPrecision(4)));
  svg.setAttribute('aria-label', `${label}: ${s.count} values from ${fmt(s.first)} to ${fmt(s.last)}`);
  const title = document.createElementNS(ns, 'title');
  title.textContent = `${label}: ${s.count} values, first ${fmt(s.first)}, last ${fmt(s.last)}, min ${fmt(s.min)}, max ${fmt(s.max)}`;
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', s.points);
  line.setAttribute('fill', 'none');
  line.setAttribute('stroke', cssVar('--vscode-charts-blue', '#3794ff'));
  line.setAttribute('stroke-width', '1.5');
  svg.append(title, line);
  return svg;
}

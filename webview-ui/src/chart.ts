/** Robust accuracy against epsilon with chart.js, in the theme's colours. */
import { Chart, Legend, LinearScale, LineController, LineElement, PointElement, Title, Tooltip } from 'chart.js';
import { combinedCurves, curveStyles, type ReportRun } from '../../src/report/analysis';

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

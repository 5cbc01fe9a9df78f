/**
 * The results webview: renders one RunResult, or two side by side, from what the extension posts
 * (checked on receipt) or from the state VS Code kept across a reload. Talks back only through
 * the typed messages of src/protocol/webview-messages.ts.
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-badge/index.js';
import '@vscode-elements/elements/dist/vscode-collapsible/index.js';
import '@vscode-elements/elements/dist/vscode-table/index.js';
import '@vscode-elements/elements/dist/vscode-table-header/index.js';
import '@vscode-elements/elements/dist/vscode-table-header-cell/index.js';
import '@vscode-elements/elements/dist/vscode-table-body/index.js';
import '@vscode-elements/elements/dist/vscode-table-row/index.js';
import '@vscode-elements/elements/dist/vscode-table-cell/index.js';
import './styles.css';
import type { Chart } from 'chart.js';
import { isToWebview, isWebviewState, panelRunsProblems, type FromWebview, type PanelRun, type WebviewState } from '../../src/protocol/webview-messages';
import {
  attackTable,
  confusionMatrices,
  defenseTables,
  defenseView,
  examplePixels,
  foolingTable,
  formatNumber,
  percent,
  summaryRows,
  warningsTable,
  worstCaseTable,
  type DefenseView,
  type ExampleView,
  type Matrix,
  type ParamSeries,
  type ReportRun,
} from '../../src/report/analysis';
import { isometrySeries, isometryTable, openSetTables, rocCurves } from '../../src/report/layers-open-set';
import { adversarialConfusionMatrices, exampleGroups, perClassTable } from '../../src/report/samples';
import { sparkline } from '../../src/report/sparkline';
import { sweepChart, sweepTable } from '../../src/report/sweep';
import { accuracyChart, isometryChart, rocChart, sparklineElement, sweepParetoChart } from './chart';
import { dataTable, h, section } from './dom';

interface VsCodeApi {
  postMessage(message: FromWebview): void;
  getState(): unknown;
  setState(state: WebviewState): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const vscode = acquireVsCodeApi();
const app = document.getElementById('app')!;
let shown: PanelRun[] | undefined;
let charts: Chart[] = [];

function post(message: FromWebview): void {
  vscode.postMessage(message);
}

function button(label: string, message: FromWebview, options: { secondary?: boolean; icon?: string } = {}): HTMLElement {
  const b = h('vscode-button', { secondary: options.secondary, 'data-action': message.type === 'export' ? `export-${message.format}` : message.type }, label);
  b.addEventListener('click', () => post(message));
  return b;
}

function toolbar(runs: PanelRun[]): HTMLElement {
  return h(
    'div',
    { class: 'toolbar', role: 'toolbar' },
    button('Export Markdown', { type: 'export', format: 'markdown' }),
    button('Export HTML', { type: 'export', format: 'html' }, { secondary: true }),
    button('Export JSON', { type: 'export', format: 'json' }, { secondary: true }),
    runs.length === 1
      ? button('Compare with…', { type: 'compare' }, { secondary: true })
      : button('Close Comparison', { type: 'closeCompare' }, { secondary: true }),
    ...runs.map((r, i) =>
      r.file ? button(runs.length > 1 ? `Open JSON ${i + 1}` : 'Open JSON', { type: 'openJson', run: i }, { secondary: true }) : undefined,
    ),
  );
}

function summary(runs: PanelRun[]): HTMLElement {
  const rows = runs.map((r) => summaryRows(r.result));
  const keys = [...new Set(rows.flatMap((s) => s.map(([k]) => k)))];
  const table = h(
    'table',
    { class: 'summary' },
    runs.length > 1 ? h('thead', {}, h('tr', {}, h('th', {}), ...runs.map((r) => h('th', {}, r.name)))) : undefined,
    h(
      'tbody',
      {},
      ...keys.map((k) => h('tr', { 'data-key': k }, h('th', { scope: 'row' }, k), ...rows.map((s) => h('td', {}, s.find(([key]) => key === k)?.[1] ?? '–')))),
    ),
  );
  return section('Summary', 'summary', table);
}

function chartSection(runs: ReportRun[]): HTMLElement {
  const canvas = h('canvas', { 'aria-label': 'Robust accuracy against epsilon' });
  const box = h('div', { class: 'chart-box' }, canvas);
  const s = section('Robust accuracy against epsilon', 'chart', box);
  // Drawn once the canvas is in the document and has a size.
  queueMicrotask(() => {
    const chart = accuracyChart(canvas, runs);
    if (chart) charts.push(chart);
    else
      box.replaceWith(
        h(
          'p',
          { class: 'note' },
          'No attacks were run: only clean accuracy is reported. Add "attacks" to the experiment to see robust accuracy against epsilon.',
        ),
      );
  });
  return s;
}

/** A chart drawn once its canvas is in the document; the box goes away when there is nothing to draw. */
function chartBox(label: string, draw: (canvas: HTMLCanvasElement) => Chart | undefined): HTMLElement {
  const canvas = h('canvas', { 'aria-label': label });
  const box = h('div', { class: 'chart-box' }, canvas);
  queueMicrotask(() => {
    const chart = draw(canvas);
    if (chart) charts.push(chart);
    else box.remove();
  });
  return box;
}

function isometrySection(r: PanelRun['result']): HTMLElement | undefined {
  const table = isometryTable(r);
  if (!table) return undefined;
  const points = isometrySeries(r);
  return section(
    'Isometry per layer',
    'isometry',
    h('p', { class: 'note' }, table.title),
    chartBox('Isometry against depth', (canvas) => isometryChart(canvas, points)),
    dataTable(table.columns, table.rows),
  );
}

/** The layer sweep: clean accuracy against worst-case robustness, one point per layer, the Pareto front marked; then the table. */
function sweepSection(r: PanelRun['result']): HTMLElement | undefined {
  const table = sweepTable(r);
  if (!table) return undefined;
  const chart = sweepChart(r);
  return section(
    'Layer sweep',
    'sweep',
    h('p', { class: 'note' }, table.title),
    chart ? chartBox('Clean accuracy against robustness, one point per layer', (canvas) => sweepParetoChart(canvas, chart)) : undefined,
    dataTable(table.columns, table.rows),
  );
}

function openSetSection(r: PanelRun['result']): HTMLElement | undefined {
  const tables = openSetTables(r);
  if (!tables.length) return undefined;
  const curves = rocCurves(r);
  return section(
    'Open-set recognition',
    'open-set',
    chartBox('ROC curve: known against unknown inputs', (canvas) => rocChart(canvas, curves)),
    ...tables.map((t) => h('div', { class: 'subtable' }, h('h4', {}, t.title), dataTable(t.columns, t.rows))),
  );
}

function exampleFigure(e: ExampleView): HTMLElement {
  const [, hgt, wid] = e.shape;
  const px = examplePixels(e);
  const canvas = (data: Uint8ClampedArray, label: string) => {
    const c = h('canvas', { width: String(wid), height: String(hgt), class: 'pixels', title: label, 'aria-label': label });
    c.getContext('2d')!.putImageData(new ImageData(new Uint8ClampedArray(data), wid, hgt), 0, 0);
    return c;
  };
  return h(
    'figure',
    { class: e.fooled ? 'example fooled' : 'example', 'data-fooled': e.fooled ? 'true' : 'false' },
    h('div', { class: 'triptych' }, canvas(px.clean, 'clean'), canvas(px.adversarial, 'adversarial'), canvas(px.perturbation, 'perturbation, magnified')),
    h(
      'figcaption',
      {},
      h('span', { class: e.fooled ? 'tag fooled' : 'tag' }, e.fooled ? 'fooled' : 'not fooled'),
      ` #${e.index} · label ${e.label}`,
      h('br'),
      `clean → ${e.cleanPrediction}`,
      h('br'),
      `${e.attack} on ${e.target} (${e.threat}) ε=${formatNumber(e.eps)} → ${e.adversarialPrediction}`,
    ),
  );
}

function confusion(m: Matrix, id: string): HTMLElement {
  const table = h(
    'table',
    { class: 'confusion' },
    h('caption', {}, m.caption ?? 'rows: true class · columns: predicted class'),
    h('thead', {}, h('tr', {}, h('th', {}), ...m.labels.map((l) => h('th', { scope: 'col' }, l)))),
    h(
      'tbody',
      {},
      ...m.counts.map((row, i) => {
        const total = row.reduce((s, v) => s + v, 0) || 1;
        return h(
          'tr',
          {},
          h('th', { scope: 'row' }, m.labels[i]),
          ...row.map((v, j) => {
            const td = h(
              'td',
              { class: i === j ? 'diag' : 'off', title: `true ${m.labels[i]}, predicted ${m.labels[j]}: ${v} (${percent(v / total, 1)} of the row)` },
              String(v),
            );
            td.style.setProperty('--share', String(v / total));
            return td;
          }),
        );
      }),
    ),
  );
  return section(m.title, id, table);
}

/** A numeric parameter series (a loss per epoch) as a small curve with its first and last values. */
function seriesFigure(p: ParamSeries): HTMLElement | undefined {
  const s = sparkline(p.values);
  if (!s) return undefined;
  return h(
    'figure',
    { class: 'series', 'data-key': p.key },
    sparklineElement(s, p.key),
    h(
      'figcaption',
      {},
      h('code', {}, p.key),
      ` ${s.count} values: ${formatNumber(s.first)} → ${formatNumber(s.last)} (min ${formatNumber(s.min)}, max ${formatNumber(s.max)})`,
    ),
  );
}

/** The defense: verdict and reasons, placement in words, the main parameters, loss curves, the rest collapsed, its tables. */
function defenseSection(r: PanelRun['result'], d: DefenseView): HTMLElement {
  return section(
    `Defense: ${d.kind} after ${d.layer}`,
    'defense',
    d.verdict ? h('p', {}, 'Verdict: ', h('vscode-badge', { class: `verdict ${d.verdict}` }, d.verdict)) : undefined,
    d.verdictReasons.length ? h('ul', { class: 'verdict-reasons' }, ...d.verdictReasons.map((reason) => h('li', {}, reason))) : undefined,
    d.cleanAccuracy !== undefined ? h('p', {}, 'Defended clean accuracy: ', h('strong', {}, percent(d.cleanAccuracy))) : undefined,
    d.placementText ? h('p', { class: 'placement' }, 'Placement ', h('code', {}, d.placement ?? ''), `: ${d.placementText}.`) : undefined,
    d.mainParams.length ? h('div', { class: 'main-params' }, dataTable(['parameter', 'value'], d.mainParams)) : undefined,
    d.series.length ? h('div', { class: 'series-list' }, ...d.series.map(seriesFigure)) : undefined,
    d.otherParams.length
      ? h(
          'details',
          { class: 'other-params' },
          h('summary', {}, `Other recorded parameters (${d.otherParams.length})`),
          dataTable(['parameter', 'value'], d.otherParams),
        )
      : undefined,
    ...defenseTables(r).map((t) => h('div', { class: 'subtable' }, h('h4', {}, t.title), dataTable(t.columns, t.rows))),
  );
}

function runColumn(run: PanelRun, compare: boolean): HTMLElement {
  const r = run.result;
  const worst = worstCaseTable(r);
  const attacks = attackTable(r);
  const d = defenseView(r);
  const groups = exampleGroups(r);
  const exampleCount = groups.reduce((n, g) => n + g.examples.length, 0);
  const perClass = perClassTable(r);
  const fooling = foolingTable(r);
  const warnings = warningsTable(r);
  return h(
    'div',
    { class: 'run' },
    compare ? h('h2', {}, run.name) : undefined,
    warnings.rows.length
      ? section(`Warnings (${warnings.rows.length})`, 'warnings', h('p', { class: 'note' }, warnings.title), dataTable(warnings.columns, warnings.rows))
      : undefined,
    worst.rows.length ? section('Worst case over attacks', 'worst', h('p', { class: 'note' }, worst.title), dataTable(worst.columns, worst.rows)) : undefined,
    attacks.rows.length ? section(`Attacks (${attacks.rows.length})`, 'attacks', dataTable(attacks.columns, attacks.rows)) : undefined,
    perClass ? section('Accuracy per class', 'per-class', h('p', { class: 'note' }, perClass.title), dataTable(perClass.columns, perClass.rows)) : undefined,
    d ? defenseSection(r, d) : undefined,
    fooling ? section('Fooling images', 'fooling', h('p', { class: 'note' }, fooling.title), dataTable(fooling.columns, fooling.rows)) : undefined,
    openSetSection(r),
    isometrySection(r),
    sweepSection(r),
    exampleCount
      ? section(
          `Examples (${exampleCount})`,
          'examples',
          h(
            'p',
            { class: 'note' },
            'Samples the attacks fooled (correct clean, wrong under attack) at the largest epsilon: a few per attack without the defense, a few per threat model (from its strongest attack) with it. Each shows clean · adversarial · perturbation (magnified). "not fooled" marks a sample that fills in where an attack fooled too few.',
          ),
          ...groups.map((g) =>
            h(
              'div',
              { class: 'example-group', 'data-target': g.target, 'data-threat': g.threat },
              h('h4', {}, g.title, g.note ? h('span', { class: 'note' }, ` · ${g.note}`) : undefined),
              h('div', { class: 'examples' }, ...g.examples.map(exampleFigure)),
            ),
          ),
        )
      : undefined,
    ...confusionMatrices(r).map((m, i) => confusion(m, `confusion-${i}`)),
    ...adversarialConfusionMatrices(r).map((m, i) => confusion(m, `adversarial-confusion-${i}`)),
  );
}

function render(runs: PanelRun[]): void {
  shown = runs;
  for (const c of charts) c.destroy();
  charts = [];
  const compare = runs.length > 1;
  const title = compare ? `Comparison: ${runs.map((r) => r.name).join(' vs ')}` : runs[0].name;
  app.replaceChildren(
    h('header', {}, h('h1', {}, title), toolbar(runs)),
    summary(runs),
    chartSection(runs.map((r) => ({ name: r.name, result: r.result }))),
    h('div', { class: compare ? 'columns compare' : 'columns' }, ...runs.map((r) => runColumn(r, compare))),
  );
}

function renderProblem(problems: string[]): void {
  app.replaceChildren(
    h('div', { class: 'problem', role: 'alert' }, h('h1', {}, 'Cannot show these results'), h('ul', {}, ...problems.map((p) => h('li', {}, p)))),
  );
}

window.addEventListener('message', (event: MessageEvent<unknown>) => {
  const m = event.data;
  if (isToWebview(m)) {
    vscode.setState({ runs: m.runs });
    render(m.runs);
  } else {
    const problems = (m as { runs?: unknown })?.runs !== undefined ? panelRunsProblems((m as { runs: unknown }).runs) : ['unexpected message'];
    renderProblem(problems);
    post({ type: 'error', message: `rejected a message: ${problems.join('; ')}` });
  }
});

window.addEventListener('error', (e) => post({ type: 'error', message: `${e.message} (${e.filename}:${e.lineno})` }));

// Theme switches change the CSS variables the chart was drawn with.
new MutationObserver(() => shown && render(shown)).observe(document.body, { attributes: true, attributeFilter: ['class'] });

const saved = vscode.getState();
if (isWebviewState(saved)) render(saved.runs);
post({ type: 'ready' });

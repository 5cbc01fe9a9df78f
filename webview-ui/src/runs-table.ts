/**
 * The runs-table webview: every run of the results folders as a row (sort by a header, filter by
 * words), 2 to 7 runs selected and compared: one merged table keyed by attack, threat model, norm
 * and eps with a column per run and Δ columns against the first (the baseline), the chart overlaid
 * (one colour per run, the worst case per run unless every attack's curve is asked for), and a
 * warning when the runs used different data. Everything shown is computed by
 * src/report/runs-table.ts; the extension only lists the runs (src/extension/runs-table.ts).
 */
import './runs-table.css';
import { Chart, Legend, LinearScale, LineController, LineElement, PointElement, Tooltip } from 'chart.js';
import {
  isToRunsTable,
  MAX_COMPARED_RUNS,
  type FromRunsTable,
  type PanelRun,
  type RunsTableState,
  type ToRunsTable,
  type UnreadableRun,
} from '../../src/protocol/webview-messages';
import { percent } from '../../src/report/analysis';
import {
  cellText,
  CLEAN_ATTACK,
  compareRuns,
  deltaText,
  filterRuns,
  MIN_COMPARE,
  overlaySeries,
  RUN_PALETTE,
  RUNS_TABLE_COLUMNS,
  runsTableRow,
  sortRuns,
  type RunsTableKey,
  type RunsTableRow,
  type SortDirection,
} from '../../src/report/runs-table';
import { h } from './dom';

Chart.register(LineController, LineElement, PointElement, LinearScale, Legend, Tooltip);

interface VsCodeApi {
  postMessage(message: FromRunsTable): void;
  getState(): unknown;
  setState(state: RunsTableState): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const vscode = acquireVsCodeApi();
const app = document.getElementById('app')!;

let runs: PanelRun[] = [];
let unreadable: UnreadableRun[] = [];
let rows: RunsTableRow[] = [];
let received = false;
let chart: Chart | undefined;

const saved = (vscode.getState() ?? {}) as RunsTableState;
const isKey = (k: unknown): k is RunsTableKey => RUNS_TABLE_COLUMNS.some((c) => c.key === k);
let sort: { key: RunsTableKey; direction: SortDirection } =
  saved.sort && isKey(saved.sort.key)
    ? { key: saved.sort.key, direction: saved.sort.direction === 'asc' ? 'asc' : 'desc' }
    : { key: 'createdAt', direction: 'desc' };
let filter = typeof saved.filter === 'string' ? saved.filter : '';
/** Files of the selected runs, in the order they were selected (the first is the comparison's baseline). */
let selected: string[] = Array.isArray(saved.selected) ? saved.selected.filter((f) => typeof f === 'string') : [];
let comparing = saved.comparing === true;
let allCurves = saved.allCurves === true;

function post(message: FromRunsTable): void {
  vscode.postMessage(message);
}

function keepState(): void {
  vscode.setState({ sort, filter, selected, comparing, allCurves });
}

function button(label: string, onClick: () => void, attrs: Record<string, string | boolean | undefined> = {}): HTMLButtonElement {
  const b = h('button', { type: 'button', ...attrs }, label);
  b.addEventListener('click', onClick);
  return b;
}

function selectedRuns(): PanelRun[] {
  return selected.map((f) => runs.find((r) => r.file === f)).filter((r): r is PanelRun => !!r);
}

// ---------------------------------------------------------------------------------------------
// The table of runs

let tbody: HTMLTableSectionElement | undefined;
let countLabel: HTMLElement | undefined;
let compareButton: HTMLButtonElement | undefined;
let selectionLabel: HTMLElement | undefined;

function renderBody(): void {
  if (!tbody) return;
  const shown = sortRuns(filterRuns(rows, filter), sort.key, sort.direction);
  const full = selected.length >= MAX_COMPARED_RUNS;
  tbody.replaceChildren(
    ...shown.map((row) => {
      const index = selected.indexOf(row.id);
      const box = h('input', {
        type: 'checkbox',
        class: 'select',
        'aria-label': `Select ${row.label} (${cellText(row, 'createdAt')}) for comparison`,
        checked: index >= 0,
        disabled: index < 0 && full,
      });
      box.addEventListener('change', () => {
        if (box.checked && !selected.includes(row.id) && selected.length < MAX_COMPARED_RUNS) selected.push(row.id);
        if (!box.checked) selected = selected.filter((f) => f !== row.id);
        keepState();
        renderBody();
      });
      const label = h('a', { href: '#', class: 'run-link', title: `Show ${row.file ?? row.label} in the results panel` }, row.label);
      label.addEventListener('click', (e) => {
        e.preventDefault();
        if (row.file) post({ type: 'showRun', file: row.file });
      });
      const json = button('JSON', () => row.file && post({ type: 'openJson', file: row.file }), { class: 'link', title: 'Open the result file' });
      return h(
        'tr',
        { 'data-file': row.id, class: index >= 0 ? 'selected' : undefined },
        h(
          'td',
          { class: 'check' },
          box,
          index >= 0 ? h('span', { class: 'order', title: index === 0 ? 'baseline of the comparison' : undefined }, `#${index + 1}`) : undefined,
        ),
        ...RUNS_TABLE_COLUMNS.map((c) =>
          h(
            'td',
            {
              class: `${c.numeric ? 'num ' : ''}col-${c.key}`,
              'data-key': c.key,
              title: c.key === 'defense' || c.key === 'budget' ? cellText(row, c.key) : undefined,
            },
            c.key === 'label' ? label : cellText(row, c.key),
          ),
        ),
        h('td', { class: 'actions' }, json),
      );
    }),
  );
  if (countLabel) countLabel.textContent = filter ? `${shown.length} of ${rows.length} runs` : `${rows.length} run${rows.length === 1 ? '' : 's'}`;
  const n = selectedRuns().length;
  if (compareButton) {
    compareButton.disabled = n < MIN_COMPARE || n > MAX_COMPARED_RUNS;
    compareButton.textContent = n >= MIN_COMPARE ? `Compare ${n} Runs` : 'Compare';
  }
  if (selectionLabel)
    selectionLabel.textContent =
      n === 0
        ? `Select ${MIN_COMPARE} to ${MAX_COMPARED_RUNS} runs to compare.`
        : `${n} selected${n >= MAX_COMPARED_RUNS ? ' (the most a comparison shows)' : ''}; the first is the baseline.`;
}

function renderTable(): HTMLElement {
  const head = h(
    'tr',
    {},
    h('th', { class: 'check', scope: 'col' }, h('span', { class: 'sr-only' }, 'select')),
    ...RUNS_TABLE_COLUMNS.map((c) => {
      const active = sort.key === c.key;
      const b = button(`${c.title}${active ? (sort.direction === 'asc' ? ' ▲' : ' ▼') : ''}`, () => {
        sort = active
          ? { key: c.key, direction: sort.direction === 'asc' ? 'desc' : 'asc' }
          : { key: c.key, direction: c.numeric || c.key === 'createdAt' ? 'desc' : 'asc' };
        keepState();
        render();
      });
      b.className = 'sort';
      b.title = `${c.help}. Click to sort.`;
      return h(
        'th',
        {
          scope: 'col',
          'data-key': c.key,
          class: c.numeric ? 'num' : undefined,
          'aria-sort': active ? (sort.direction === 'asc' ? 'ascending' : 'descending') : 'none',
        },
        b,
      );
    }),
    h('th', { scope: 'col' }, ''),
  );
  tbody = h('tbody', {});
  const filterBox = h('input', {
    type: 'search',
    id: 'filter',
    placeholder: 'Filter: words in any column, e.g. "lesci holds"',
    'aria-label': 'Filter runs',
    value: filter,
  });
  filterBox.addEventListener('input', () => {
    filter = filterBox.value;
    keepState();
    renderBody();
  });
  countLabel = h('span', { class: 'count' });
  selectionLabel = h('span', { class: 'selection note' });
  compareButton = button('Compare', () => {
    comparing = true;
    keepState();
    render();
  });
  compareButton.classList.add('primary');
  compareButton.id = 'compare';
  const toolbar = h(
    'div',
    { class: 'toolbar', role: 'toolbar' },
    filterBox,
    countLabel,
    compareButton,
    button(
      'Clear Selection',
      () => {
        selected = [];
        keepState();
        renderBody();
      },
      { class: 'secondary' },
    ),
    button('Refresh', () => post({ type: 'refresh' }), { class: 'secondary' }),
    selectionLabel,
  );
  const wrap = h('div', { class: 'table-wrap' }, h('table', { class: 'runs' }, h('thead', {}, head), tbody));
  const broken = unreadable.length
    ? h(
        'details',
        { class: 'unreadable' },
        h('summary', {}, `${unreadable.length} file${unreadable.length === 1 ? '' : 's'} in the results folder that are not readable results`),
        h('ul', {}, ...unreadable.map((u) => h('li', {}, h('code', {}, u.file), `: ${u.problem}`))),
      )
    : undefined;
  const empty = rows.length
    ? undefined
    : h('p', { class: 'note' }, received ? 'No runs in the results folder yet: evaluate a model or run an experiment.' : 'Listing the runs…');
  const section = h('section', { id: 'runs' }, toolbar, empty, wrap, broken);
  queueMicrotask(renderBody);
  return section;
}

// ---------------------------------------------------------------------------------------------
// The comparison

function renderComparison(chosen: PanelRun[]): HTMLElement {
  const reportRuns = chosen.map((r) => ({ name: tableLabel(r), result: r.result }));
  const c = compareRuns(reportRuns);
  const back = button('Back to All Runs', () => {
    comparing = false;
    keepState();
    render();
  });
  back.id = 'back';
  const baseline = h('select', { id: 'baseline', 'aria-label': 'Baseline run (the Δ columns are against it)' });
  chosen.forEach((r, i) => baseline.append(h('option', { value: r.file ?? String(i), selected: i === 0 }, c.runs[i].short)));
  baseline.addEventListener('change', () => {
    const f = baseline.value;
    selected = [f, ...selected.filter((x) => x !== f)];
    keepState();
    render();
  });
  const curvesBox = h('input', { type: 'checkbox', id: 'all-curves', checked: allCurves });
  curvesBox.addEventListener('change', () => {
    allCurves = curvesBox.checked;
    keepState();
    drawChart(canvas, reportRuns);
  });

  const legend = h(
    'ol',
    { class: 'legend' },
    ...chosen.map((r, i) => {
      const swatch = h('span', { class: 'swatch' });
      swatch.style.background = RUN_PALETTE[i % RUN_PALETTE.length];
      const row = rows.find((x) => x.id === r.file);
      return h(
        'li',
        {},
        swatch,
        h('strong', { title: r.file }, c.runs[i].short),
        row
          ? h(
              'span',
              { class: 'note' },
              ` · ${row.model} · ${row.data} (${cellText(row, 'samples')} samples) · ${row.defense ? `${row.defense} @ ${row.layer ?? '?'}` : 'no defense'} · ${cellText(row, 'createdAt')} UTC`,
            )
          : ` ${r.name}`,
      );
    }),
  );

  const head = h(
    'tr',
    {},
    ...['attack', 'threat', 'norm', 'eps'].map((t) => h('th', { scope: 'col' }, t)),
    ...c.runs.flatMap((r, i) => {
      const color = RUN_PALETTE[i % RUN_PALETTE.length];
      const th = h('th', { scope: 'col', class: 'num run-col', title: chosen[i].name }, r.short);
      th.style.borderTopColor = color;
      return i === 0
        ? [th]
        : [th, h('th', { scope: 'col', class: 'num delta-col', title: `${r.short} minus ${c.runs[0].short}, in percentage points` }, `Δ #${i + 1}`)];
    }),
  );
  const body = h(
    'tbody',
    {},
    ...c.rows.map((row) =>
      h(
        'tr',
        {
          'data-key': `${row.attack}|${row.threat}|${row.norm}|${row.eps}`,
          class: row.attack === CLEAN_ATTACK || row.threat === 'union' ? 'headline' : undefined,
        },
        h('td', {}, row.attack),
        h('td', {}, row.threat || '–'),
        h('td', {}, row.norm || '–'),
        h('td', { class: 'num' }, row.attack === CLEAN_ATTACK ? '0' : String(row.eps)),
        ...row.values.flatMap((v, i) => {
          const value = h('td', { class: 'num value', 'data-run': String(i) }, percent(v, 1));
          if (i === 0) return [value];
          const d = row.deltas[i];
          const cls = d === undefined ? '' : d > 0.0005 ? ' up' : d < -0.0005 ? ' down' : '';
          return [value, h('td', { class: `num delta${cls}`, 'data-run': String(i) }, deltaText(d))];
        }),
      ),
    ),
  );
  const canvas = h('canvas', { 'aria-label': 'Robust accuracy against epsilon, the runs overlaid' });
  queueMicrotask(() => drawChart(canvas, reportRuns));
  return h(
    'section',
    { id: 'comparison' },
    h(
      'div',
      { class: 'toolbar', role: 'toolbar' },
      back,
      h('label', { for: 'baseline' }, 'Baseline: '),
      baseline,
      h('label', { class: 'inline' }, curvesBox, ' every attack’s curve in the chart'),
    ),
    c.warning ? h('div', { class: 'mismatch', role: 'alert' }, h('strong', {}, 'Different data. '), c.warning) : undefined,
    legend,
    h('h2', {}, 'Robust accuracy by attack, threat model and eps'),
    h(
      'p',
      { class: 'note' },
      'clean: clean accuracy; worst case / union: a sample counts as robust only if it survived every attack and threat model. For defended runs, the defended model’s numbers; whitebox rows are attacks on the undefended model. Δ: percentage points against #1.',
    ),
    h('div', { class: 'table-wrap' }, h('table', { class: 'merged' }, h('thead', {}, head), body)),
    h('h2', {}, 'Robust accuracy against epsilon'),
    h('div', { class: 'chart-box' }, canvas),
  );
}

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
}

function drawChart(canvas: HTMLCanvasElement, reportRuns: { name: string; result: PanelRun['result'] }[]): void {
  chart?.destroy();
  chart = undefined;
  const series = overlaySeries(reportRuns, { allCurves });
  if (!series.length) return;
  const grid = cssVar('--vscode-editorWidget-border', 'rgba(128,128,128,0.3)');
  Chart.defaults.font.family = cssVar('--vscode-font-family', 'sans-serif');
  Chart.defaults.color = cssVar('--vscode-foreground', '#ccc');
  chart = new Chart(canvas, {
    type: 'line',
    data: {
      datasets: series.map((s) => ({
        label: s.label,
        data: s.points.map((p) => ({ x: p.eps, y: 100 * p.accuracy })),
        borderColor: s.color,
        backgroundColor: s.color,
        borderDash: s.dash,
        borderWidth: s.worst ? 2.5 : 1.5,
        pointRadius: s.worst ? 3 : 2,
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
        tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${(ctx.parsed.y ?? 0).toFixed(1)}% at eps ${ctx.parsed.x}` } },
      },
    },
  });
}

/** A run's name in the comparison: the table's label (the experiment's name, else model · defense); #i tells equal ones apart. */
function tableLabel(run: PanelRun): string {
  const row = rows.find((r) => r.id === run.file);
  return row?.label ?? run.name;
}

// ---------------------------------------------------------------------------------------------

function render(): void {
  chart?.destroy();
  chart = undefined;
  tbody = undefined;
  const chosen = selectedRuns();
  const showComparison = comparing && chosen.length >= MIN_COMPARE && chosen.length <= MAX_COMPARED_RUNS;
  app.replaceChildren(
    h('header', {}, h('h1', {}, showComparison ? `Comparison of ${chosen.length} runs` : 'Runs')),
    showComparison ? renderComparison(chosen) : renderTable(),
  );
}

function receive(m: ToRunsTable): void {
  received = true;
  runs = m.runs;
  unreadable = m.unreadable;
  rows = runs.map((r, i) => runsTableRow({ result: r.result, file: r.file }, i));
  const listed = new Set(rows.map((r) => r.id));
  if (m.compare && m.compare.length >= MIN_COMPARE) {
    selected = m.compare.filter((f) => listed.has(f)).slice(0, MAX_COMPARED_RUNS);
    comparing = true;
  } else {
    selected = selected.filter((f) => listed.has(f));
  }
  keepState();
  render();
}

window.addEventListener('message', (event: MessageEvent<unknown>) => {
  if (isToRunsTable(event.data)) receive(event.data);
  else post({ type: 'error', message: 'rejected a message that is not a list of runs' });
});
window.addEventListener('error', (e) => post({ type: 'error', message: `${e.message} (${e.filename}:${e.lineno})` }));
// Theme switches change the CSS variables the chart was drawn with.
new MutationObserver(() => received && comparing && render()).observe(document.body, { attributes: true, attributeFilter: ['class'] });

render();
post({ type: 'ready' });

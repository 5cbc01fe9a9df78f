/** RunResult → one self-contained HTML file: inline CSS, the chart as inline SVG, images as data URIs. */
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
  worstCaseTable,
  type ExampleView,
  type Matrix,
  type ReportRun,
  type Table,
} from './analysis';
import { isometryTable, openSetTables } from './layers-open-set';
import { adversarialConfusionMatrices, exampleGroups, perClassTable } from './samples';
import { sparkline, sparklineSvg } from './sparkline';
import { pngDataUri } from './png';
import { accuracyChartSvg, escapeXml } from './svg-chart';
import { sweepChartSvg, sweepTable } from './sweep';

/**
 * Every value interpolated into the page goes through this: names, paths and labels come from
 * models, datasets and result files (which a workspace can craft), and even "numbers" read from a
 * result file may be strings. Entities for & < > " '.
 */
export function escapeHtml(value: unknown): string {
  return escapeXml(String(value ?? ''));
}
const esc = escapeHtml;

/** Examples larger than this are not drawn (a crafted result file could ask for any size). */
const MAX_EXAMPLE_PIXELS = 1024 * 1024;

function table(t: Table, caption?: string): string {
  if (!t.rows.length) return '';
  return `<table>${caption ? `<caption>${esc(caption)}</caption>` : ''}<thead><tr>${t.columns.map((c) => `<th>${esc(c)}</th>`).join('')}</tr></thead><tbody>${t.rows
    .map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

function confusion(m: Matrix): string {
  const rows = m.counts
    .map((row, i) => {
      const total = row.reduce((s, v) => s + v, 0) || 1;
      const alpha = (v: unknown) => {
        const a = Number(v) / Number(total);
        return Number.isFinite(a) ? Math.min(1, Math.max(0, a)).toFixed(3) : '0';
      };
      return `<tr><th>${esc(m.labels[i])}</th>${row.map((v, j) => `<td style="background: rgba(${i === j ? '44,160,44' : '214,39,40'}, ${alpha(v)})">${esc(v)}</td>`).join('')}</tr>`;
    })
    .join('');
  return `<h3>${esc(m.title)}</h3><table class="confusion"><caption>${esc(m.caption ?? 'rows: true class, columns: predicted')}</caption><thead><tr><th></th>${m.labels.map((l) => `<th>${esc(l)}</th>`).join('')}</tr></thead><tbody>${rows}</tbody></table>`;
}

function exampleGallery(run: ReportRun): string {
  const groups = exampleGroups(run.result);
  if (!groups.length) return '';
  const figures = (ex: ExampleView[]) =>
    ex
      .filter((e) => e.shape[1] * e.shape[2] <= MAX_EXAMPLE_PIXELS)
      .map((e) => {
        const px = examplePixels(e);
        const [, h, w] = e.shape;
        const img = (data: Uint8ClampedArray, alt: string) =>
          `<img src="${esc(pngDataUri(data, w, h))}" alt="${esc(alt)}" width="${esc(Math.min(1024, Math.max(84, w * 3)))}">`;
        return `<figure class="${e.fooled ? 'fooled' : ''}">${img(px.clean, 'clean')}${img(px.adversarial, 'adversarial')}${img(px.perturbation, 'perturbation (magnified)')}<figcaption><b>${e.fooled ? 'fooled' : 'not fooled'}</b> #${esc(e.index)}: label ${esc(e.label)}, clean → ${esc(e.cleanPrediction)}, ${esc(e.attack)} on ${esc(e.target)} (${esc(e.threat)}) eps ${esc(formatNumber(e.eps))} → ${esc(e.adversarialPrediction)}</figcaption></figure>`;
      })
      .join('');
  return `<h3>Examples</h3><p class="note">Samples the attacks fooled (correct clean, wrong under attack) at the largest epsilon: a few per attack without the defense, a few per threat model (from its strongest attack) with it. Each shows clean · adversarial · perturbation (magnified); "not fooled" marks a sample that fills in where an attack fooled too few.</p>${groups
    .map((g) => `<h4>${esc(g.title)}${g.note ? ` <span class="note">· ${esc(g.note)}</span>` : ''}</h4><div class="examples">${figures(g.examples)}</div>`)
    .join('')}`;
}

function runDetails(run: ReportRun): string {
  const r = run.result;
  const d = defenseView(r);
  const perClass = perClassTable(r);
  const parts = [table(worstCaseTable(r), 'Worst case over attacks'), perClass ? table(perClass, perClass.title) : '', table(attackTable(r), 'Attacks')];
  if (d) {
    parts.push(`<h3>Defense: ${esc(d.kind)} after <code>${esc(d.layer)}</code>${d.verdict ? ` (verdict: ${esc(d.verdict)})` : ''}</h3>`);
    if (d.cleanAccuracy !== undefined) parts.push(`<p>Defended clean accuracy: <b>${esc(percent(d.cleanAccuracy))}</b></p>`);
    if (d.placementText) parts.push(`<p>Placement <code>${esc(d.placement)}</code>: ${esc(d.placementText)}.</p>`);
    const main = d.mainParams.length ? d.mainParams : d.otherParams;
    if (main.length) parts.push(table({ title: '', columns: ['parameter', 'value'], rows: main }));
    for (const p of d.series) {
      const s = sparkline(p.values);
      if (s)
        parts.push(
          `<figure class="series">${sparklineSvg(s)}<figcaption><code>${esc(p.key)}</code> ${esc(s.count)} values: ${esc(formatNumber(s.first))} → ${esc(formatNumber(s.last))} (min ${esc(formatNumber(s.min))}, max ${esc(formatNumber(s.max))})</figcaption></figure>`,
        );
    }
    if (d.mainParams.length && d.otherParams.length)
      parts.push(
        `<details><summary>Other recorded parameters (${esc(d.otherParams.length)})</summary>${table({ title: '', columns: ['parameter', 'value'], rows: d.otherParams })}</details>`,
      );
    for (const t of defenseTables(r)) parts.push(table(t, t.title));
  }
  const fooling = foolingTable(r);
  if (fooling) parts.push(table(fooling, fooling.title));
  for (const t of openSetTables(r)) parts.push(table(t, t.title));
  const isometry = isometryTable(r);
  if (isometry) parts.push(table(isometry, isometry.title));
  const sweep = sweepTable(r);
  if (sweep) {
    parts.push('<h3>Layer sweep: clean accuracy against robustness</h3>');
    const svg = sweepChartSvg(r);
    if (svg) parts.push(svg);
    parts.push(table(sweep, sweep.title));
  }
  parts.push(exampleGallery(run), ...confusionMatrices(r).map(confusion), ...adversarialConfusionMatrices(r).map(confusion));
  return parts.join('\n');
}

const STYLE = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1e1e1e; margin: 2rem auto; max-width: 1200px; padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; } h3 { margin-top: 1.5rem; }
table { border-collapse: collapse; margin: 0.75rem 0; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 0.25rem 0; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; }
thead th { background: #f3f3f3; }
.columns { display: grid; grid-template-columns: repeat(var(--runs), minmax(0, 1fr)); gap: 2rem; }
.examples { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; } figure img { image-rendering: pixelated; margin-right: 4px; border: 1px solid #ccc; }
figcaption, .note { font-size: 12px; color: #555; }
figure.fooled figcaption b { color: #d62728; }
figure.series { margin: 0.5rem 0; } details summary { cursor: pointer; color: #1f5fad; }
.confusion td { text-align: right; min-width: 2.5rem; }
`;

export function renderHtml(runs: ReportRun[]): string {
  const title = runs.length === 1 ? `Robustness report: ${runs[0].name}` : `Robustness comparison: ${runs.map((r) => r.name).join(' vs ')}`;
  const summaries = runs.map((r) => summaryRows(r.result));
  const keys = [...new Set(summaries.flatMap((s) => s.map(([k]) => k)))];
  const summary = table({
    title: '',
    columns: ['', ...runs.map((r) => r.name)],
    rows: keys.map((k) => [k, ...summaries.map((s) => s.find(([key]) => key === k)?.[1] ?? '–')]),
  });
  const svg = accuracyChartSvg(runs);
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title><style>${STYLE}</style></head>
<body>
<h1>${esc(title)}</h1>
${summary}
${svg ? `<h2>Robust accuracy against epsilon</h2>\n${svg}` : '<p class="note">No attacks were run: only clean accuracy is reported.</p>'}
<h2>Details</h2>
<div class="columns" style="--runs: ${esc(runs.length)}">
${runs.map((run) => `<section>${runs.length > 1 ? `<h2>${esc(run.name)}</h2>` : ''}${runDetails(run)}</section>`).join('\n')}
</div>
<p class="note">Generated by Robustness Lab from ${runs.map((r) => `${esc(r.result.tool?.name ?? '')} ${esc(r.result.tool?.version ?? '')} (${esc(r.result.createdAt ?? '')})`).join(', ')}.</p>
</body></html>
`;
}

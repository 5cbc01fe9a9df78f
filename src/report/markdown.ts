/** RunResult → Markdown report (one run, or two side by side). */
import {
  attackTable,
  confusionMatrices,
  defenseTables,
  defenseView,
  foolingTable,
  formatNumber,
  percent,
  summaryRows,
  worstCaseTable,
  type ReportRun,
  type Table,
} from './analysis';
import { isometryTable, openSetTables } from './layers-open-set';
import { adversarialConfusionMatrices, examplesTable, perClassTable } from './samples';
import { sparkline, unicodeSparkline } from './sparkline';
import { accuracyChartSvg } from './svg-chart';
import { sweepChartSvg, sweepTable } from './sweep';

export interface MarkdownReport {
  markdown: string;
  /** Files the Markdown links to, to be written beside it (the chart as SVG). */
  files: { name: string; content: string }[];
}

/**
 * Text from a model, a dataset or a result file (class names, layer names, paths, run names) as
 * literal Markdown: every character that could start markup (links, images, raw HTML, emphasis,
 * code, tables, math, mentions) is backslash-escaped, autolinks are defused and line breaks become
 * spaces, so a crafted class name cannot inject a link, an image fetched from a server, or HTML.
 */
export function escapeMarkdown(value: unknown): string {
  return (
    String(value ?? '')
      .replace(/[\r\n\u2028\u2029]+/g, ' ')
      // Parentheses need no escape: a link needs the '[' or '<' before them, and those are escaped.
      .replace(/[\\`*_[\]<>#+!|~&$@]/g, (c) => `\\${c}`)
      .replace(/:(?=\/\/)/g, '\\:') // http:// and friends would become autolinks
      .replace(/\b(www)\./gi, '$1\\.')
  );
}

/** `value` as an inline code span: literal, on one line, fenced with more backticks than it holds. */
export function markdownCode(value: unknown): string {
  const text = String(value ?? '').replace(/[\r\n\u2028\u2029]+/g, ' ');
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((r) => r.length));
  const fence = '`'.repeat(longest + 1);
  const pad = text.startsWith('`') || text.endsWith('`') || text.startsWith(' ') ? ' ' : '';
  return `${fence}${pad}${text}${pad}${fence}`;
}

function cell(s: unknown): string {
  return escapeMarkdown(s);
}

/** A relative link target for a file written beside the Markdown (no spaces, parentheses or brackets unencoded). */
function linkTarget(file: string): string {
  return encodeURI(file).replace(/[()[\]<>'"]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** A Markdown table; every cell is escaped (escapeMarkdown). */
export function markdownTable(columns: string[], rows: string[][]): string {
  return [`| ${columns.map(cell).join(' | ')} |`, `|${columns.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)].join('\n');
}

function section(title: string, t: Table): string {
  return t.rows.length ? `### ${escapeMarkdown(title)}\n\n${markdownTable(t.columns, t.rows)}\n` : '';
}

/** `chartFile`: the name the chart's SVG is written under, beside the Markdown file. */
export function renderMarkdown(runs: ReportRun[], options: { chartFile?: string } = {}): MarkdownReport {
  const out: string[] = [];
  const files: MarkdownReport['files'] = [];
  out.push(
    runs.length === 1
      ? `# Robustness report: ${escapeMarkdown(runs[0].name)}\n`
      : `# Robustness comparison: ${runs.map((r) => escapeMarkdown(r.name)).join(' vs ')}\n`,
  );
  const summaries = runs.map((r) => summaryRows(r.result));
  const keys = [...new Set(summaries.flatMap((s) => s.map(([k]) => k)))];
  out.push(
    markdownTable(
      ['', ...runs.map((r) => r.name)],
      keys.map((k) => [k, ...summaries.map((s) => s.find(([key]) => key === k)?.[1] ?? '–')]),
    ),
    '',
  );

  const svg = accuracyChartSvg(runs);
  if (svg && options.chartFile) {
    files.push({ name: options.chartFile, content: svg });
    out.push('## Robust accuracy against epsilon\n', `![Robust accuracy against epsilon](${linkTarget(options.chartFile)})\n`);
  }
  for (const run of runs) {
    const r = run.result;
    out.push(runs.length > 1 ? `## ${escapeMarkdown(run.name)}\n` : '## Details\n');
    out.push(section('Worst case over attacks', worstCaseTable(r)));
    const perClass = perClassTable(r);
    if (perClass) out.push(`### Accuracy per class\n\n${escapeMarkdown(perClass.title)}\n\n${markdownTable(perClass.columns, perClass.rows)}\n`);
    out.push(section('Attacks', attackTable(r)));
    const d = defenseView(r);
    if (d) {
      out.push(`### Defense: ${escapeMarkdown(d.kind)} after ${markdownCode(d.layer)}${d.verdict ? ` (verdict: ${escapeMarkdown(d.verdict)})` : ''}\n`);
      if (d.cleanAccuracy !== undefined) out.push(`Defended clean accuracy: ${percent(d.cleanAccuracy)}\n`);
      if (d.placementText) out.push(`Placement ${markdownCode(d.placement)}: ${escapeMarkdown(d.placementText)}.\n`);
      const main = d.mainParams.length ? d.mainParams : d.otherParams;
      if (main.length) out.push(markdownTable(['parameter', 'value'], main), '');
      for (const p of d.series) {
        const s = sparkline(p.values);
        if (s)
          out.push(
            `${markdownCode(p.key)} ${unicodeSparkline(p.values)} ${s.count} values: ${formatNumber(s.first)} → ${formatNumber(s.last)} (min ${formatNumber(s.min)}, max ${formatNumber(s.max)})\n`,
          );
      }
      if (d.mainParams.length && d.otherParams.length) out.push('Other recorded parameters:\n', markdownTable(['parameter', 'value'], d.otherParams), '');
      for (const t of defenseTables(r)) out.push(section(t.title, t));
    }
    const fooling = foolingTable(r);
    if (fooling) out.push(section(fooling.title, fooling));
    for (const t of openSetTables(r)) out.push(section(t.title, t));
    const isometry = isometryTable(r);
    if (isometry) out.push(section(isometry.title, isometry));
    const sweep = sweepTable(r);
    if (sweep) {
      const svg = sweepChartSvg(r);
      const file = options.chartFile && `${options.chartFile.replace(/\.svg$/i, '')}-sweep${runs.length > 1 ? `-${runs.indexOf(run) + 1}` : ''}.svg`;
      out.push('### Layer sweep: clean accuracy against robustness\n');
      if (svg && file) {
        files.push({ name: file, content: svg });
        out.push(`![Clean accuracy against worst-case robust accuracy, one point per layer](${linkTarget(file)})\n`);
      }
      out.push(`${escapeMarkdown(sweep.title)}\n`, markdownTable(sweep.columns, sweep.rows), '');
    }
    const ex = examplesTable(r);
    if (ex) out.push(`### Examples\n\n${escapeMarkdown(ex.title)}\n\n${markdownTable(ex.columns, ex.rows)}\n`);
    for (const m of confusionMatrices(r)) {
      out.push(
        section(`${m.title}; rows true, columns predicted`, {
          title: m.title,
          columns: ['', ...m.labels],
          rows: m.counts.map((row, i) => [m.labels[i], ...row.map(String)]),
        }),
      );
    }
    for (const m of adversarialConfusionMatrices(r)) {
      out.push(
        `### ${escapeMarkdown(m.title)}\n\n${escapeMarkdown(m.caption)}\n\n${markdownTable(
          ['', ...m.labels],
          m.counts.map((row, i) => [m.labels[i], ...row.map(String)]),
        )}\n`,
      );
    }
  }
  return { markdown: out.join('\n').replace(/\n{3,}/g, '\n\n'), files };
}

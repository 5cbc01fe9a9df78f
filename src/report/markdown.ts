/** RunResult → Markdown report (one run, or two side by side). */
import {
  attackTable, confusionMatrices, defenseTables, defenseView, examples, foolingTable, formatNumber, percent, summaryRows, worstCaseTable,
  type ReportRun, type Table,
} from './analysis';
import { accuracyChartSvg } from './svg-chart';

export interface MarkdownReport {
  markdown: string;
  /** Files the Markdown links to, to be written beside it (the chart as SVG). */
  files: { name: string; content: string }[];
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function markdownTable(columns: string[], rows: string[][]): string {
  return [`| ${columns.map(cell).join(' | ')} |`, `|${columns.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)].join('\n');
}

function section(title: string, t: Table): string {
  return t.rows.length ? `### ${title}\n\n${markdownTable(t.columns, t.rows)}\n` : '';
}

/** `chartFile`: the name the chart's SVG is written under, beside the Markdown file. */
export function renderMarkdown(runs: ReportRun[], options: { chartFile?: string } = {}): MarkdownReport {
  const out: string[] = [];
  const files: MarkdownReport['files'] = [];
  out.push(runs.length === 1 ? `# Robustness report: ${runs[0].name}\n` : `# Robustness comparison: ${runs.map((r) => r.name).join(' vs ')}\n`);
  const summaries = runs.map((r) => summaryRows(r.result));
  const keys = [...new Set(summaries.flatMap((s) => s.map(([k]) => k)))];
  out.push(markdownTable(['', ...runs.map((r) => r.name)], keys.map((k) => [k, ...summaries.map((s) => s.find(([key]) => key === k)?.[1] ?? '–')])), '');

  const svg = accuracyChartSvg(runs);
  if (svg && options.chartFile) {
    files.push({ name: options.chartFile, content: svg });
    out.push('## Robust accuracy against epsilon\n', `![Robust accuracy against epsilon](${encodeURI(options.chartFile)})\n`);
  }
  for (const run of runs) {
    const r = run.result;
    out.push(runs.length > 1 ? `## ${run.name}\n` : '## Details\n');
    out.push(section('Worst case over attacks', worstCaseTable(r)));
    out.push(section('Attacks', attackTable(r)));
    const d = defenseView(r);
    if (d) {
      out.push(`### Defense: ${d.kind} after \`${d.layer}\`${d.verdict ? ` (verdict: ${d.verdict})` : ''}\n`);
      if (d.cleanAccuracy !== undefined) out.push(`Defended clean accuracy: ${percent(d.cleanAccuracy)}\n`);
      if (d.params.length) out.push(markdownTable(['parameter', 'value'], d.params), '');
      for (const t of defenseTables(r)) out.push(section(t.title, t));
    }
    const fooling = foolingTable(r);
    if (fooling) out.push(section(fooling.title, fooling));
    const ex = examples(r);
    if (ex.length) {
      out.push(
        section('Examples', {
          title: 'Examples',
          columns: ['sample', 'label', 'clean prediction', 'model', 'attack', 'threat', 'eps', 'adversarial prediction'],
          rows: ex.map((e) => [String(e.index), e.label, e.cleanPrediction, e.target, e.attack, e.threat, formatNumber(e.eps), e.adversarialPrediction]),
        }),
      );
    }
    for (const m of confusionMatrices(r)) {
      out.push(section(`${m.title}; rows true, columns predicted`, { title: m.title, columns: ['', ...m.labels], rows: m.counts.map((row, i) => [m.labels[i], ...row.map(String)]) }));
    }
  }
  return { markdown: out.join('\n').replace(/\n{3,}/g, '\n\n'), files };
}

/** RunResult → plain-text report for the terminal, from the same tables as the webview and the exports. */
import { attackTable, defenseTables, defenseView, foolingTable, summaryRows, warningsTable, worstCaseTable, type Table } from './analysis';
import { isometryTable, openSetTables } from './layers-open-set';
import { perClassTable } from './samples';
import { sweepTable } from './sweep';

/** Columns padded to their widest cell; numbers (cells starting with a digit or '–') right-aligned. */
export function textTable(columns: string[], rows: string[][]): string {
  const cells = [columns, ...rows];
  const widths = columns.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? '').length)));
  const numeric = columns.map((_, c) => rows.length > 0 && rows.every((r) => /^[-+–]?[\d.,]+(%| s)?$|^–$/.test(r[c] ?? '')));
  const line = (r: string[]) =>
    r
      .map((v, c) => (numeric[c] ? (v ?? '').padStart(widths[c]) : (v ?? '').padEnd(widths[c])))
      .join('  ')
      .trimEnd();
  return [line(columns), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function section(t: Table | undefined): string {
  return t && t.rows.length ? `\n${t.title}:\n${textTable(t.columns, t.rows)}` : '';
}

export function renderText(r: Parameters<typeof summaryRows>[0]): string {
  const out: string[] = [textTable(['', ''], summaryRows(r)).split('\n').slice(2).join('\n')];
  const d = defenseView(r);
  out.push(section(attackTable(r)));
  out.push(section(worstCaseTable(r)));
  // Per class only when the run recorded per-sample outcomes (attacks ran).
  if (r.perClass || r.defense?.perClass) out.push(section(perClassTable(r)));
  const warnings = warningsTable(r);
  if (warnings.rows.length)
    out.push(`\n${warnings.title}:\n${warnings.rows.map((w) => `  ! ${w[0]}, ${w[1]}${w[2] !== '–' ? ` (${w[2]})` : ''}: ${w[4]}`).join('\n')}`);
  if (d) {
    out.push(`\nDefense: ${d.kind} after '${d.layer}'${d.verdict ? ` (verdict: ${d.verdict})` : ''}`);
    for (const reason of d.verdictReasons) out.push(`  - ${reason}`);
  }
  for (const t of defenseTables(r)) out.push(section(t));
  out.push(section(foolingTable(r)));
  for (const t of openSetTables(r)) out.push(section(t));
  out.push(section(isometryTable(r)));
  out.push(section(sweepTable(r)));
  return out.filter(Boolean).join('\n');
}

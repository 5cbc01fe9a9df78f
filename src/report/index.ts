/** Report rendering: RunResult → Markdown, HTML or JSON strings. No 'vscode', no DOM: the CLI can use it too. */
export * from './analysis';
export { renderMarkdown, markdownTable, type MarkdownReport } from './markdown';
export { renderHtml } from './html';
export { accuracyChartSvg } from './svg-chart';
export { sweepChart, sweepChartSvg, sweepTable, type SweepChart, type SweepPoint } from './sweep';
export { isometrySeries, isometryTable, openSetTables, rocCurves, type IsometryPoint, type RocSeries } from './layers-open-set';

import type { RunResult } from '../protocol/run-result';

export function renderJson(result: RunResult): string {
  return JSON.stringify(result, null, 2) + '\n';
}

/** Report rendering: RunResult → Markdown, HTML or JSON strings. No 'vscode', no DOM: the CLI can use it too. */
export * from './analysis';
export { renderMarkdown, markdownTable, type MarkdownReport } from './markdown';
export { renderHtml } from './html';
export { accuracyChartSvg } from './svg-chart';

import type { RunResult } from '../protocol/run-result';

export function renderJson(result: RunResult): string {
  return JSON.stringify(result, null, 2) + '\n';
}

/** Export Report: the runs on show as Markdown (+ chart SVG), self-contained HTML, or raw JSON. */
import path from 'node:path';
import * as vscode from 'vscode';
import type { PanelRun, ReportFormat } from '../protocol/webview-messages';
import { renderHtml, renderJson, renderMarkdown } from '../report';

const FORMATS: Record<ReportFormat, { label: string; description: string; ext: string; filter: string }> = {
  markdown: { label: 'Markdown', description: 'tables, with the chart as an SVG file beside it', ext: 'md', filter: 'Markdown' },
  html: { label: 'HTML', description: 'one self-contained file with the chart and images inline', ext: 'html', filter: 'HTML' },
  json: { label: 'JSON', description: 'the raw RunResult', ext: 'json', filter: 'JSON' },
};

export async function pickReportFormat(): Promise<ReportFormat | undefined> {
  const choice = await vscode.window.showQuickPick(
    (Object.keys(FORMATS) as ReportFormat[]).map((f) => ({ label: FORMATS[f].label, description: FORMATS[f].description, format: f })),
    { title: 'Export Report', placeHolder: 'Format' },
  );
  return choice?.format;
}

function defaultName(runs: PanelRun[]): string {
  const stem = (r: PanelRun) => (r.file ? path.basename(r.file, '.json') : r.name.replace(/[^A-Za-z0-9._-]+/g, '-'));
  return runs.map(stem).join('-vs-') + '-report';
}

/** Asks where to save, writes the report (and its chart for Markdown), and offers to open it. */
export async function exportReport(runs: PanelRun[], format: ReportFormat, folder: vscode.Uri): Promise<vscode.Uri | undefined> {
  const f = FORMATS[format];
  const target = await vscode.window.showSaveDialog({
    title: `Export ${f.label} Report`,
    defaultUri: vscode.Uri.joinPath(folder, `${defaultName(runs)}.${f.ext}`),
    filters: { [f.filter]: [f.ext] },
  });
  if (!target) return undefined;
  const write = (uri: vscode.Uri, text: string) => vscode.workspace.fs.writeFile(uri, Buffer.from(text, 'utf8'));
  const reportRuns = runs.map((r) => ({ name: r.name, result: r.result }));
  switch (format) {
    case 'markdown': {
      const chartFile = `${path.basename(target.fsPath).replace(/\.[^.]*$/, '')}-accuracy.svg`;
      const report = renderMarkdown(reportRuns, { chartFile });
      // The chart first: the Markdown never points at an image that is not there yet.
      for (const file of report.files) await write(vscode.Uri.joinPath(target, '..', file.name), file.content);
      await write(target, report.markdown);
      break;
    }
    case 'html':
      await write(target, renderHtml(reportRuns));
      break;
    case 'json':
      await write(
        target,
        runs.length === 1
          ? renderJson(runs[0].result)
          : JSON.stringify(
              runs.map((r) => r.result),
              null,
              2,
            ) + '\n',
      );
      break;
  }
  void vscode.window
    .showInformationMessage(`Report written to ${vscode.workspace.asRelativePath(target)}.`, 'Open')
    .then((choice) => choice && vscode.window.showTextDocument(target));
  return target;
}

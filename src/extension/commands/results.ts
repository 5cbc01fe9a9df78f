/** Show Results, Compare Runs, the Runs Table, Export Report, and a run's JSON from the Runs view. */
import * as vscode from 'vscode';
import { MAX_COMPARED_RUNS, type PanelRun } from '../../protocol/webview-messages';
import { exportReport, pickReportFormat } from '../export';
import { ResultsPanel } from '../results-panel';
import { RunsTablePanel, type RunsTableDeps } from '../runs-table';
import { loadRun, type RunNode } from '../runs-view';
import { reportFolder, uriOf, type Commands, type Services } from '../services';

/** What the runs table needs of the services. */
export function runsTableDeps(s: Services): RunsTableDeps {
  return { extensionUri: s.context.extensionUri, runs: s.runs, showRuns: (shown) => s.showRuns(shown), log: (m) => s.output.warn(m) };
}

export function resultsCommands(s: Services): Commands {
  return {
    'robustnessLab.showResults': async (arg?: unknown) => {
      const uri = uriOf(arg);
      try {
        const run = uri ? await loadRun(uri) : await s.runs.pickRun('Show the results of which run?');
        if (run) s.showRuns([run]);
      } catch (e) {
        void vscode.window.showErrorMessage(`Robustness Lab: ${(e as Error).message}`);
      }
    },

    'robustnessLab.showRunsTable': () => {
      RunsTablePanel.show(runsTableDeps(s));
    },

    // Several runs selected in the Runs view (2 to 7): their comparison in the runs table (a merged
    // table with Δ columns against the first, the chart overlaid, a warning when the data differ).
    // One run (or none): pick the other and see the two side by side in the results panel.
    'robustnessLab.compareRuns': async (arg?: unknown, selected?: RunNode[]) => {
      // From the view's title button no node is passed: the view's selection counts then.
      const many = selected && selected.length > 1 ? selected : !arg && s.runsView.selection.length > 1 ? s.runsView.selection : undefined;
      if (many) {
        const files = many.filter((n) => n.result).map((n) => n.uri.fsPath);
        if (files.length > MAX_COMPARED_RUNS) {
          void vscode.window.showWarningMessage(
            `Robustness Lab: ${files.length} runs are selected; a comparison shows 2 to ${MAX_COMPARED_RUNS}. Select fewer runs, or choose them in the runs table.`,
          );
          return;
        }
        if (files.length > 1) {
          RunsTablePanel.show(runsTableDeps(s), files);
          return;
        }
      }
      try {
        const chosen = [arg].map(uriOf).filter((u): u is vscode.Uri => !!u);
        const first = chosen[0] ? await loadRun(chosen[0]) : await s.runs.pickRun('Compare Runs: first run');
        if (!first) return;
        const second = chosen[1] ? await loadRun(chosen[1]) : await s.runs.pickRun(`Compare ${first.name} with…`, first.file);
        if (second) s.showRuns([first, second]);
      } catch (e) {
        void vscode.window.showErrorMessage(`Robustness Lab: ${(e as Error).message}`);
      }
    },

    'robustnessLab.exportReport': async (arg?: unknown) => {
      // A run from the tree or explorer, else what the results panel shows, else a run the user picks.
      const uri = uriOf(arg);
      let shown: PanelRun[];
      try {
        const picked = uri ? await loadRun(uri) : ResultsPanel.active ? undefined : await s.runs.pickRun('Export the report of which run?');
        shown = picked ? [picked] : [...(ResultsPanel.active?.shownRuns ?? [])];
      } catch (e) {
        return void vscode.window.showErrorMessage(`Robustness Lab: ${(e as Error).message}`);
      }
      if (shown.length === 0) return;
      const format = await pickReportFormat();
      if (format) await exportReport(shown, format, reportFolder(s.context, shown));
    },

    'robustnessLab.openRunJson': (arg?: unknown) => {
      const uri = uriOf(arg);
      if (uri) void vscode.window.showTextDocument(uri);
    },
  };
}

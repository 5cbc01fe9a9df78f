/** Show Results, Compare Runs, Export Report, and a run's JSON from the Runs view. */
import * as vscode from 'vscode';
import type { PanelRun } from '../../protocol/webview-messages';
import { exportReport, pickReportFormat } from '../export';
import { ResultsPanel } from '../results-panel';
import { loadRun, type RunNode } from '../runs-view';
import { reportFolder, uriOf, type Commands, type Services } from '../services';

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

    'robustnessLab.compareRuns': async (arg?: unknown, selected?: RunNode[]) => {
      try {
        const chosen = (selected?.length === 2 ? selected : [arg]).map(uriOf).filter((u): u is vscode.Uri => !!u);
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

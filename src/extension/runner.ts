/**
 * Runs evaluations: settings + experiment → EvaluationConfig, a compute process per run, a
 * cancellable progress notification, the output channel, and what the user sees when a run
 * succeeds, is cancelled or fails. No engine logic here.
 */
import { readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import * as vscode from 'vscode';
import { formatEta } from '../protocol/eta';
import type { EvaluationConfig, Progress } from '../protocol/experiment';
import type { RunResult } from '../protocol/run-result';
import { percent } from '../report/analysis';
import { resultsFolder, runtimeSettings } from './settings';
import { requireTrust } from './trust';
import type { WorkerLaunch } from '../worker/launch';
import { startJob, WorkerError, type JobHandle, type RequestCallbacks } from './worker-client';

export interface RunRequest {
  /** Shown in the progress notification and the log, e.g. the experiment's name. */
  title: string;
  /** What to evaluate; runtime settings (provider, threads, batch) come from the user's settings. */
  config: Omit<EvaluationConfig, 'batchSize' | 'threads' | 'lanes' | 'ep' | 'seed' | 'out'> & { seed?: number };
  /** Settings and the results folder are looked up for this resource's workspace folder. */
  scope?: vscode.Uri;
}

interface ActiveRun {
  title: string;
  handle: JobHandle<unknown>;
  /** The last progress report, for the status bar. */
  progress?: Progress;
}

type JobCallbacks = RequestCallbacks & { onOutput(line: string): void };

function slug(s: string): string {
  return (
    s
      .replace(/\.rlab\.json$|\.onnx$/i, '')
      .replace(/[^A-Za-z0-9._-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 60) || 'run'
  );
}

function timestamp(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/** A user-facing one-liner: the engine's hints ("\n  → hint") joined onto the message. */
function oneLine(message: string): string {
  return message.replace(/\n\s*→\s*/g, ' → ').split('\n')[0];
}

export class Runner implements vscode.Disposable {
  private readonly active = new Map<number, ActiveRun>();
  private nextRun = 1;
  private readonly finished = new vscode.EventEmitter<vscode.Uri>();
  /** A run finished and wrote this result file. */
  readonly onDidFinish = this.finished.event;

  /** Shown while a run is going: overall progress and the time left; a click shows the log. */
  private readonly statusBar = vscode.window.createStatusBarItem('robustnessLab.run', vscode.StatusBarAlignment.Left, 10);

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly output: vscode.LogOutputChannel,
    private readonly workerScript: string,
  ) {
    this.statusBar.name = 'Robustness Lab run';
    this.statusBar.command = 'robustnessLab.showLog';
  }

  /** Runs one evaluation; resolves with the result and its file, or undefined when it did not complete. */
  async run(request: RunRequest): Promise<{ file: vscode.Uri; result: RunResult } | undefined> {
    if (!requireTrust('evaluate a model')) return undefined;
    const out = vscode.Uri.joinPath(resultsFolder(this.context, request.scope), `${timestamp()}-${slug(request.title)}.json`);
    const config = this.config(request, out.fsPath);
    const launch = await this.launch(config, request.scope);
    if (!launch) return undefined;
    const result = await this.execute(request.title, config, out.fsPath, (cb) => startJob(this.workerScript, { type: 'evaluate', config }, cb, launch));
    if (!result) return undefined;
    this.output.info(
      `Clean accuracy ${percent(result.clean.accuracy)} on ${result.clean.count} samples (${result.runtime.executionProvider}, ${result.timings.totalSeconds.toFixed(1)} s). Result: ${out.fsPath}`,
    );
    this.finished.fire(out);
    return { file: out, result };
  }

  /** Fits the experiment's defense and writes the defended model to `out`. */
  async exportDefended(request: RunRequest, out: vscode.Uri): Promise<boolean> {
    if (!requireTrust('fit and export a defense')) return false;
    const config = this.config(request, undefined);
    const launch = await this.launch({ ...config, out: out.fsPath }, request.scope);
    if (!launch) return false;
    const written = await this.execute(`Export ${request.title}`, config, out.fsPath, (cb) =>
      startJob(this.workerScript, { type: 'exportDefended', config, out: out.fsPath }, cb, launch),
    );
    if (written) this.output.info(`Defended model written to ${written}`);
    return written !== undefined;
  }

  /**
   * How the compute process starts: in the workspace folder, allowed to read only inside the
   * workspace folders (src/core/paths.ts checks every file it opens, symbolic links followed). A
   * file the run names outside the workspace is read only after the user confirms it; undefined
   * when the user declines.
   */
  private async launch(config: EvaluationConfig, scope: vscode.Uri | undefined): Promise<WorkerLaunch | undefined> {
    const folders = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath);
    const cwd = ((scope && vscode.workspace.getWorkspaceFolder(scope)) ?? vscode.workspace.workspaceFolders?.[0])?.uri.fsPath;
    if (folders.length === 0) return { cwd };
    const files = [
      config.model,
      config.data,
      config.labels,
      config.defense?.reference,
      config.defense?.referenceLabels,
      config.unknown?.data,
      config.unknown?.labels,
      config.cacheDir,
    ].filter((p): p is string => !!p);
    const inside = (p: string) =>
      folders.some((root) => !path.relative(root, path.resolve(p)).startsWith('..') && !path.isAbsolute(path.relative(root, path.resolve(p))));
    const outside = files.filter((p) => !inside(p));
    if (outside.length === 0) return { cwd, roots: folders };
    const allow = 'Allow for this run';
    const choice = await vscode.window.showWarningMessage(
      `This run reads ${outside.length === 1 ? 'a file' : `${outside.length} files`} outside the workspace: ${outside.join(', ')}. Files from outside the workspace are read only when you allow it.`,
      { modal: true },
      allow,
    );
    if (choice !== allow) return undefined;
    return { cwd, roots: [...folders, ...outside.map((p) => path.dirname(path.resolve(p)))] };
  }

  /** Cancels a run: the only one, or the one the user picks. */
  async cancel(): Promise<void> {
    const runs = [...this.active.values()];
    if (runs.length === 0) {
      void vscode.window.showInformationMessage('Robustness Lab: no evaluation is running.');
      return;
    }
    const run =
      runs.length === 1
        ? runs[0]
        : (
            await vscode.window.showQuickPick(
              runs.map((r) => ({ label: r.title, run: r })),
              { title: 'Cancel which evaluation?' },
            )
          )?.run;
    run?.handle.cancel();
  }

  dispose(): void {
    for (const run of this.active.values()) run.handle.cancel();
    this.finished.dispose();
    this.statusBar.dispose();
  }

  private config(request: RunRequest, out: string | undefined): EvaluationConfig {
    const settings = runtimeSettings(request.scope);
    return {
      ...request.config,
      limit: request.config.limit ?? (settings.sampleLimit > 0 ? settings.sampleLimit : undefined),
      seed: request.config.seed ?? 0,
      ep: settings.ep,
      threads: settings.threads,
      lanes: settings.lanes,
      batchSize: settings.batchSize,
      out,
    };
  }

  /** Runs a job in a cancellable progress notification, logs it, and reports how it ended. */
  private async execute<T>(title: string, config: EvaluationConfig, out: string, start: (callbacks: JobCallbacks) => JobHandle<T>): Promise<T | undefined> {
    const runNo = this.nextRun++;
    this.output.info(`── Run ${runNo}: ${title} ──`);
    this.output.info(`Config: ${JSON.stringify(config)}`);
    return vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Robustness Lab: ${title}`, cancellable: true },
      async (progress, token) => {
        progress.report({ message: 'Starting the compute process…' });
        let reported = 0; // overall percent already given to the notification's bar
        const handle = start({
          onProgress: (p: Progress) => {
            const pct = p.total > 0 ? ` (${Math.floor((100 * p.done) / p.total)}%)` : '';
            const overall = overallPercent(p);
            const increment = overall === undefined ? undefined : Math.max(0, overall - reported);
            if (overall !== undefined) reported = Math.max(reported, overall);
            const whole =
              overall === undefined
                ? ''
                : ` · overall ${Math.floor(overall)}%${p.overall?.etaSeconds !== undefined ? `, ${formatEta(p.overall.etaSeconds)}` : ''}`;
            progress.report({ message: `${p.phase}: ${p.done.toLocaleString('en-US')}/${p.total.toLocaleString('en-US')}${pct}${whole}`, increment });
            const run = this.active.get(runNo);
            if (run) run.progress = p;
            this.updateStatusBar();
          },
          onLog: (line) => this.output.info(line),
          onOutput: (line) => this.output.warn(`[compute process] ${line}`),
        });
        this.active.set(runNo, { title, handle });
        this.updateContext();
        const onCancel = token.onCancellationRequested(() => {
          progress.report({ message: 'Cancelling…' });
          handle.cancel();
        });
        try {
          return await handle.result;
        } catch (e) {
          this.report(e, out);
          return undefined;
        } finally {
          onCancel.dispose();
          this.active.delete(runNo);
          this.updateContext();
        }
      },
    );
  }

  private report(e: unknown, out: string): void {
    const err = e instanceof WorkerError ? e : new WorkerError(e instanceof Error ? (e.stack ?? e.message) : String(e), 'internal');
    if (err.kind === 'cancelled' || err.kind === 'died') removeLeftovers(out);
    const showLog = (choice: string | undefined) => choice && this.output.show(true);
    switch (err.kind) {
      case 'cancelled':
        this.output.info('Cancelled; no result was written.');
        void vscode.window.showInformationMessage('Robustness Lab: evaluation cancelled; no result was written.');
        return;
      case 'died': {
        this.output.error(`${err.message} Last lines of its log:`);
        for (const line of err.logTail) this.output.error(`  ${line}`);
        const last = err.logTail
          .slice(-2)
          .map((l) => (l.length > 160 ? `${l.slice(0, 160)}…` : l))
          .join(' | ');
        void vscode.window
          .showErrorMessage(
            `Robustness Lab: ${err.message}${last ? ` Last log: ${last} —` : ''} The extension is still running; the log has the details.`,
            'Show Log',
          )
          .then(showLog);
        return;
      }
      default:
        this.output.error(err.message);
        void vscode.window.showErrorMessage(`Robustness Lab: ${oneLine(err.message)}`, 'Show Log').then(showLog);
    }
  }

  private updateContext(): void {
    void vscode.commands.executeCommand('setContext', 'robustnessLab.running', this.active.size > 0);
    this.updateStatusBar();
  }

  /** "$(sync~spin) Robustness Lab 34% · about 2 min left" while runs are going; hidden otherwise. */
  private updateStatusBar(): void {
    const runs = [...this.active.values()];
    if (runs.length === 0) return void this.statusBar.hide();
    const first = runs[0];
    const overall = first.progress && overallPercent(first.progress);
    const eta = first.progress?.overall?.etaSeconds;
    this.statusBar.text = [
      `$(sync~spin) Robustness Lab${runs.length > 1 ? ` (${runs.length} runs)` : ''}`,
      overall !== undefined ? `${Math.floor(overall)}%` : undefined,
      eta !== undefined ? formatEta(eta) : undefined,
    ]
      .filter(Boolean)
      .join(' · ');
    this.statusBar.tooltip =
      runs.map((r) => `${r.title}: ${r.progress ? `${r.progress.phase} ${r.progress.done}/${r.progress.total}` : 'starting'}`).join('\n') +
      '\nClick to show the log.';
    this.statusBar.show();
  }
}

/** The whole run's progress in percent, when the engine reports it. */
function overallPercent(p: Progress): number | undefined {
  return p.overall && p.overall.total > 0 ? Math.min(100, (100 * p.overall.done) / p.overall.total) : undefined;
}

/**
 * After a cancelled or crashed run, nothing of it stays on disk: neither the result (in case the
 * process finished writing just as it was killed) nor the atomic writer's temporary file.
 */
function removeLeftovers(out: string): void {
  const dir = path.dirname(out);
  const base = path.basename(out);
  try {
    rmSync(out, { force: true });
    for (const f of readdirSync(dir)) if (f.startsWith(`${base}.`) && f.endsWith('.tmp')) rmSync(path.join(dir, f), { force: true });
  } catch {
    // The folder may not exist: nothing was written.
  }
}

/**
 * The extension's side of the compute process (dist/worker.js, forked). Everything that touches
 * onnxruntime (inspection included) runs there: a native fault or running out of memory ends that
 * process, the pending requests fail with the end of its log, and the extension carries on.
 *
 * Evaluations get a process of their own (cancel = ask, then kill if it does not stop promptly);
 * inspections share one that exits after a while without work.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { statSync } from 'node:fs';
import type { Progress } from '../protocol/experiment';
import type { NodeAttributes } from '../protocol/graph-view';
import type { DataDescription, FromWorker, ModelSummary, ToWorker, WorkerAnswers } from '../protocol/worker-messages';
import { launchArgs, type WorkerLaunch } from '../worker/launch';

export type { WorkerLaunch } from '../worker/launch';

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** A failed request. `cancelled`: stopped on request; `userError`: a message for people, no stack. */
export class WorkerError extends Error {
  constructor(
    message: string,
    readonly kind: 'user' | 'internal' | 'cancelled' | 'died',
    /** The last lines the process logged, for errors where it died. */
    readonly logTail: string[] = [],
  ) {
    super(message);
    this.name = 'WorkerError';
  }
}

export interface RequestCallbacks {
  onProgress?(p: Progress): void;
  onLog?(line: string): void;
}

type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;
/** A request as the caller writes it; the id is added when it is sent. */
type RequestBody = DistributiveOmit<Extract<ToWorker, { type: keyof WorkerAnswers }>, 'id'>;

interface Pending extends RequestCallbacks {
  resolve(value: unknown): void;
  reject(error: WorkerError): void;
  cancelled: boolean;
}

const TAIL_LINES = 40;

/** How the process ended, in words, with what probably caused it. */
export function describeExit(code: number | null, signal: NodeJS.Signals | null, tail: readonly string[]): string {
  if (tail.some((l) => /heap out of memory|Allocation failed/i.test(l))) {
    return `ran out of memory (${signal ?? `exit code ${code}`}); lower the batch size or the sample limit in the settings`;
  }
  switch (signal) {
    case 'SIGSEGV':
    case 'SIGBUS':
    case 'SIGILL':
    case 'SIGFPE':
    case 'SIGABRT':
      return `was killed by ${signal}, a crash in native code (onnxruntime)`;
    case 'SIGKILL':
      return 'was killed by SIGKILL, often the system running out of memory';
    case null:
      return `exited with code ${code}`;
    default:
      return `was killed by ${signal}`;
  }
}

/** One forked compute process with typed requests. */
export class WorkerProcess {
  private child: ChildProcess | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly tail: string[] = [];
  private idleTimer: NodeJS.Timeout | undefined;

  /**
   * @param script dist/worker.js
   * @param role shown in the process list (`worker.js --role=evaluate`), so people can tell processes apart
   * @param idleMs exit after this long without pending requests (0: never by itself)
   * @param onOutput the process's own stdout/stderr lines (onnxruntime warnings, crashes)
   * @param launch working directory (the workspace folder) and allowed roots of the process; a
   *   function is asked again before each request, and an idle process started with other values is
   *   replaced (workspace folders added or removed, trust granted)
   */
  constructor(
    private readonly script: string,
    private readonly role: 'evaluate' | 'inspect' | 'export',
    private readonly idleMs = 0,
    private readonly onOutput: (line: string) => void = () => {},
    private readonly launch: WorkerLaunch | (() => WorkerLaunch) = {},
  ) {}

  private launchKey = '';

  get pid(): number | undefined {
    return this.child?.pid;
  }

  request<K extends keyof WorkerAnswers>(
    body: Extract<RequestBody, { type: K }>,
    callbacks: RequestCallbacks = {},
  ): { id: number; result: Promise<WorkerAnswers[K]> } {
    const child = this.ensureChild();
    const id = this.nextId++;
    clearTimeout(this.idleTimer);
    const result = new Promise<WorkerAnswers[K]>((resolve, reject) => {
      this.pending.set(id, { ...callbacks, resolve: resolve as (v: unknown) => void, reject, cancelled: false });
    });
    child.send({ ...body, id } as ToWorker);
    return { id, result };
  }

  /** Asks the request to stop; kills the process if it has not stopped after `graceMs`. */
  cancel(id: number, graceMs = 2000): void {
    const p = this.pending.get(id);
    if (!p || !this.child) return;
    p.cancelled = true;
    this.child.send({ type: 'cancel', id } satisfies ToWorker);
    // onnxruntime cannot be interrupted inside a batch, and a batch can take long on a big model.
    const child = this.child;
    setTimeout(() => {
      if (this.pending.has(id) && this.child === child) child.kill('SIGKILL');
    }, graceMs).unref();
  }

  dispose(): void {
    clearTimeout(this.idleTimer);
    this.child?.kill('SIGKILL');
  }

  private ensureChild(): ChildProcess {
    const launch = typeof this.launch === 'function' ? this.launch() : this.launch;
    const key = JSON.stringify([launch.cwd ?? '', launch.roots ?? []]);
    if (this.child && key !== this.launchKey && this.pending.size === 0) {
      // Started for another workspace layout: replace it (nothing is running in it).
      const old = this.child;
      this.child = undefined;
      old.kill('SIGKILL');
    }
    if (this.child) return this.child;
    // execArgv: []: do not inherit the extension host's --inspect flags and the like.
    // cwd: the workspace folder, so nothing the process resolves relative to its working directory
    // (onnxruntime included) lands in the extension host's folder; a missing folder is left out.
    const cwd = launch.cwd && isDirectory(launch.cwd) ? launch.cwd : undefined;
    const child = fork(this.script, [`--role=${this.role}`, ...launchArgs(launch)], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      execArgv: [...(launch.execArgv ?? [])],
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
      ...(cwd && { cwd }),
    });
    this.launchKey = key;
    let partial = '';
    const capture = (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines.filter((l) => l.trim())) {
        this.remember(line);
        this.onOutput(line);
      }
    };
    child.stdout?.on('data', capture);
    child.stderr?.on('data', capture);
    child.on('message', (m: FromWorker) => this.onMessage(m));
    child.on('error', (e) => this.onGone(child, `could not start (${e.message})`));
    child.on('exit', (code, signal) => {
      if (partial.trim()) this.remember(partial);
      this.onGone(child, describeExit(code, signal, this.tail));
    });
    this.child = child;
    return child;
  }

  private onMessage(m: FromWorker): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    switch (m.type) {
      case 'progress':
        p.onProgress?.(m.progress);
        return;
      case 'log':
        this.remember(m.line);
        p.onLog?.(m.line);
        return;
      case 'result':
        this.settle(m.id, () => p.resolve(m.result));
        return;
      case 'inspected':
        this.settle(m.id, () => p.resolve(m.model));
        return;
      case 'nodeAttributes':
        this.settle(m.id, () => p.resolve(m.attributes));
        return;
      case 'exported':
        this.settle(m.id, () => p.resolve(m.path));
        return;
      case 'dataDescribed':
        this.settle(m.id, () => p.resolve(m.description));
        return;
      case 'error': {
        const kind = m.cancelled ? 'cancelled' : m.userError ? 'user' : 'internal';
        this.settle(m.id, () => p.reject(new WorkerError(m.message, kind)));
        return;
      }
    }
  }

  private settle(id: number, action: () => void): void {
    this.pending.delete(id);
    action();
    if (this.pending.size === 0 && this.idleMs > 0) {
      this.idleTimer = setTimeout(() => this.dispose(), this.idleMs);
      this.idleTimer.unref();
    }
  }

  private onGone(child: ChildProcess, how: string): void {
    if (this.child !== child) return;
    this.child = undefined;
    const tail = [...this.tail];
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(p.cancelled ? new WorkerError('The evaluation was cancelled.', 'cancelled') : new WorkerError(`The compute process ${how}.`, 'died', tail));
    }
  }

  private remember(line: string): void {
    this.tail.push(line);
    if (this.tail.length > TAIL_LINES) this.tail.shift();
  }
}

/** A long request (evaluation, export) running in a process of its own. */
export interface JobHandle<T> {
  result: Promise<T>;
  cancel(): void;
}

/** `launch`: the workspace folder as working directory and the folders the job may read (see WorkerLaunch). */
export function startJob<K extends 'evaluate' | 'exportDefended'>(
  script: string,
  body: Extract<RequestBody, { type: K }>,
  callbacks: RequestCallbacks & { onOutput?(line: string): void },
  launch: WorkerLaunch = {},
): JobHandle<WorkerAnswers[K]> {
  const worker = new WorkerProcess(script, (body as RequestBody).type === 'evaluate' ? 'evaluate' : 'export', 0, callbacks.onOutput, launch);
  const { id, result } = worker.request<K>(body, callbacks);
  // The process is single-use: end it once the answer is in (or the request failed).
  const done = result.finally(() => worker.dispose());
  return { result: done, cancel: () => worker.cancel(id) };
}

/** Model inspection in a shared process that exits after a minute without work. */
export class Inspector {
  private readonly worker: WorkerProcess;

  /** `launch`: asked before each inspection, so it follows the workspace folders and their trust. */
  constructor(script: string, onOutput?: (line: string) => void, launch: WorkerLaunch | (() => WorkerLaunch) = {}) {
    this.worker = new WorkerProcess(script, 'inspect', 60_000, onOutput, launch);
  }

  inspect(modelPath: string): Promise<ModelSummary> {
    return this.worker.request({ type: 'inspect', model: modelPath }).result;
  }

  /** Every node's attributes, formatted for display. */
  nodeAttributes(modelPath: string): Promise<NodeAttributes[]> {
    return this.worker.request({ type: 'nodeAttributes', model: modelPath }).result;
  }

  /** What a dataset holds; rejects with the loader's message (e.g. labels that do not match the images' count). */
  describeData(data: string, labels?: string): Promise<DataDescription> {
    return this.worker.request({ type: 'describeData', data, labels }).result;
  }

  dispose(): void {
    this.worker.dispose();
  }
}

/** Starts the compute process and runs evaluations in it; survives the process dying. */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { EvaluationConfig, Progress } from '../protocol/experiment';
import type { RunResult } from '../protocol/run-result';
import type { FromWorker, ToWorker } from '../protocol/worker-messages';

export interface RunCallbacks {
  onProgress(p: Progress): void;
  onLog(line: string): void;
}

export class WorkerClient {
  private child: ChildProcess | undefined;
  private nextId = 1;
  private readonly tail: string[] = [];

  constructor(private readonly distDir: string) {}

  /** Runs one evaluation; rejects with the worker's message (and the end of its log if it died). */
  run(config: EvaluationConfig, callbacks: RunCallbacks, token: { onCancel(listener: () => void): void }): Promise<RunResult> {
    const child = this.ensureChild();
    const id = this.nextId++;
    return new Promise<RunResult>((resolve, reject) => {
      const onMessage = (m: FromWorker) => {
        if (m.id !== id) return;
        if (m.type === 'progress') callbacks.onProgress(m.progress);
        else if (m.type === 'log') {
          this.remember(m.line);
          callbacks.onLog(m.line);
        } else {
          cleanup();
          if (m.type === 'result') resolve(m.result);
          else reject(Object.assign(new Error(m.message), { cancelled: m.cancelled, userError: m.userError }));
        }
      };
      const onExit = (code: number | null, signal: string | null) => {
        cleanup();
        this.child = undefined;
        reject(new Error(`The compute process stopped (${signal ?? `exit code ${code}`}). Last log lines:\n${this.tail.join('\n')}`));
      };
      const cleanup = () => {
        child.off('message', onMessage);
        child.off('exit', onExit);
      };
      child.on('message', onMessage);
      child.on('exit', onExit);
      token.onCancel(() => this.send({ type: 'cancel', id }));
      this.send({ type: 'evaluate', id, config });
    });
  }

  dispose(): void {
    this.child?.kill();
    this.child = undefined;
  }

  private remember(line: string): void {
    this.tail.push(line);
    if (this.tail.length > 40) this.tail.shift();
  }

  private send(message: ToWorker): void {
    this.child?.send(message);
  }

  private ensureChild(): ChildProcess {
    if (this.child) return this.child;
    const child = fork(path.join(this.distDir, 'worker.js'), [], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const capture = (chunk: Buffer) => chunk.toString().split('\n').filter(Boolean).forEach((l) => this.remember(l));
    child.stdout?.on('data', capture);
    child.stderr?.on('data', capture);
    this.child = child;
    return child;
  }
}

/**
 * Lanes: copies of one ONNX classifier in worker threads, each with its own single-threaded
 * onnxruntime sessions, so that whole batches run at the same time (runAttack spreads batches over
 * them). On a small model this beats splitting every kernel over the same cores (npm run bench:pgd
 * on the demo CNN, 2 cores: 450–640 PGD images/s with 2 lanes of 1 thread, 300–600 with one session
 * of 2 threads), because no thread ever waits for another inside a kernel. Each lane holds its own
 * activations for a batch, so memory grows with the number of lanes.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Classifier, LinfStep, LossKind } from '../attacks/types';
import { CancelledError } from '../cancel';
import { UserError } from '../errors';
import type { Dim } from './shapes';
import type { SessionOptions } from './session';

/** What a lane worker needs to open the classifier (structured-clone friendly). */
export interface LaneInit {
  model: Uint8Array;
  shapes: [string, Dim[]][];
  input: string;
  output: string;
  sampleDims: number[];
  numClasses: number;
  fixedBatch?: number;
  sessionOptions: SessionOptions;
  /**
   * A second model that judges: its output (logits) is what `logits` and `lossGradient` return,
   * while the gradient comes from `model` (a defended model attacked through a surrogate's or the
   * undefended model's gradient: success is judged on the defended one).
   */
  judge?: { model: Uint8Array; output: string };
}

export type LaneRequest =
  | { id: number; method: 'logits'; args: [Float32Array, number] }
  | { id: number; method: 'lossGradient'; args: [Float32Array, number, Int32Array, LossKind, Int32Array | undefined] }
  | { id: number; method: 'linfStep'; args: [Float32Array, Float32Array, number, Int32Array, LossKind, LinfStep] }
  | { id: number; method: 'release'; args: [] };

export interface LaneReply {
  id: number;
  arrays: Float32Array[];
  error?: { message: string; name: string };
}

/** The worker script: the bundled dist/lane-worker.js, or the TypeScript source under tsx (tests, benches). */
function startWorker(init: LaneInit): Worker {
  const bundled = path.join(__dirname, 'lane-worker.js');
  if (existsSync(bundled)) return new Worker(bundled, { workerData: init });
  const source = path.join(__dirname, 'lane-worker.ts');
  return new Worker(`require('tsx/cjs/api').register(); require(${JSON.stringify(source)});`, { eval: true, workerData: init });
}

/** An error from a lane as the main thread would have thrown it: a UserError or CancelledError stays one (a UserError's message holds the hint). */
function laneError(e: { message: string; name: string }): Error {
  if (e.name === 'UserError') return new UserError(e.message);
  if (e.name === 'CancelledError') return new CancelledError(e.message.replace(/ was cancelled\.$/, ''));
  return Object.assign(new Error(e.message), { name: e.name });
}

/** One lane as a Classifier: every call is a message to its worker. */
class LaneClassifier implements Classifier {
  readonly linfStep?: Classifier['linfStep'];
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (arrays: Float32Array[]) => void; reject: (e: Error) => void }>();

  constructor(
    private readonly worker: Worker,
    readonly numClasses: number,
    readonly sampleDims: readonly number[],
    hasLinfStep: boolean,
  ) {
    worker.on('message', (reply: LaneReply) => {
      const call = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (!call) return;
      if (reply.error) call.reject(laneError(reply.error));
      else call.resolve(reply.arrays);
    });
    const failAll = (e: Error) => {
      for (const call of this.pending.values()) call.reject(e);
      this.pending.clear();
    };
    worker.on('error', failAll);
    worker.on('exit', (code) => failAll(new Error(`classifier lane stopped (exit code ${code})`)));
    if (hasLinfStep)
      this.linfStep = async (x, x0, n, labels, loss, step) => {
        const [next, logits] = await this.call({ method: 'linfStep', args: [x, x0, n, labels, loss, step] });
        return { next, logits };
      };
  }

  async logits(x: Float32Array, n: number): Promise<Float32Array> {
    return (await this.call({ method: 'logits', args: [x, n] }))[0];
  }

  async lossGradient(
    x: Float32Array,
    n: number,
    labels: Int32Array,
    loss: LossKind,
    targets?: Int32Array,
  ): Promise<{ grad: Float32Array; logits: Float32Array }> {
    const [grad, logits] = await this.call({ method: 'lossGradient', args: [x, n, labels, loss, targets] });
    return { grad, logits };
  }

  async release(): Promise<void> {
    try {
      await this.call({ method: 'release', args: [] });
    } finally {
      await this.worker.terminate();
    }
  }

  /** Inputs are copied to the worker (the caller keeps its arrays). */
  private call(request: Omit<LaneRequest, 'id'>): Promise<Float32Array[]> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...request, id });
    });
  }
}

export class OnnxLanes {
  private constructor(readonly lanes: readonly LaneClassifier[]) {}

  /** Starts `count` lanes; each session gets `sessionOptions.threads` threads (1 when unset). */
  static async start(init: LaneInit, count: number): Promise<OnnxLanes> {
    const started = await Promise.allSettled(Array.from({ length: count }, () => startLane(init)));
    const lanes = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      await Promise.all(lanes.map((l) => l.release()));
      throw failed.reason;
    }
    return new OnnxLanes(lanes);
  }

  async release(): Promise<void> {
    await Promise.all(this.lanes.map((l) => l.release()));
  }
}

function startLane(init: LaneInit): Promise<LaneClassifier> {
  const worker = startWorker(init);
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    worker.once('error', onError);
    worker.once('message', (m: { ready: boolean; linfStep?: boolean; error?: string }) => {
      worker.off('error', onError);
      if (!m.ready) {
        void worker.terminate();
        reject(new Error(`classifier lane failed to start: ${m.error}`));
      } else resolve(new LaneClassifier(worker, init.numClasses, init.sampleDims, m.linfStep === true));
    });
  });
}

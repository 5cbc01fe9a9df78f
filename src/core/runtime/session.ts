/**
 * onnxruntime sessions: execution-provider choice with CPU fallback, threads, and batched runs that
 * respect a model's fixed or dynamic batch dimension.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { UserError } from '../errors';

export type ProviderChoice = 'auto' | 'cpu' | 'cuda';
export type Provider = 'cpu' | 'cuda';

export interface SessionOptions {
  ep?: ProviderChoice;
  threads?: number;
}

export interface Session {
  readonly ort: ort.InferenceSession;
  /** The execution provider that really runs the session. */
  readonly provider: Provider;
  /** Why the provider differs from the one asked for, if it does (shown to the user). */
  readonly fallbackReason?: string;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, ort.Tensor>, fetches?: readonly string[]): Promise<Record<string, ort.Tensor>>;
  release(): Promise<void>;
}

function baseOptions(threads: number | undefined): ort.InferenceSession.SessionOptions {
  return {
    graphOptimizationLevel: 'all',
    // 0 lets onnxruntime pick one thread per physical core.
    intraOpNumThreads: threads && threads > 0 ? threads : 0,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    logSeverityLevel: 3,
  };
}

const CUDA_HINT =
  'Install the CUDA 12 provider for onnxruntime-node (Linux x64, NVIDIA driver and CUDA 12 runtime): ' +
  'ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install; or use --ep cpu.';

export async function createSession(modelBytes: Uint8Array, options: SessionOptions = {}): Promise<Session> {
  const ep = options.ep ?? 'auto';
  const base = baseOptions(options.threads);
  let fallbackReason: string | undefined;
  if (ep !== 'cpu' && !cudaProviderInstalled()) {
    // Checked first: onnxruntime would print a loud load error for the missing library.
    if (ep === 'cuda') throw new UserError('The CUDA execution provider is not installed for onnxruntime-node.', CUDA_HINT);
    fallbackReason = 'CUDA provider not installed; running on the CPU.';
  } else if (ep === 'cuda' || ep === 'auto') {
    try {
      const s = await ort.InferenceSession.create(modelBytes, { ...base, executionProviders: ['cuda'] });
      return wrap(s, 'cuda');
    } catch (e) {
      const why = firstLine((e as Error).message);
      if (ep === 'cuda') throw new UserError(`The CUDA execution provider is not available: ${why}`, CUDA_HINT);
      fallbackReason = `CUDA provider unavailable (${why}); running on the CPU.`;
    }
  }
  try {
    const s = await ort.InferenceSession.create(modelBytes, { ...base, executionProviders: ['cpu'] });
    return wrap(s, 'cpu', fallbackReason);
  } catch (e) {
    throw new UserError(`onnxruntime could not load the model: ${firstLine((e as Error).message)}`, 'Check that the model is valid ONNX with ops onnxruntime supports (onnx.checker.check_model).');
  }
}

/** Whether onnxruntime-node's CUDA provider library sits next to its native binding. */
export function cudaProviderInstalled(): boolean {
  try {
    const binRoot = path.join(path.dirname(require.resolve('onnxruntime-node')), '..', 'bin');
    const stack = [binRoot];
    while (stack.length) {
      const dir = stack.pop()!;
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        if (entry.isDirectory()) stack.push(path.join(dir, entry.name));
        else if (/onnxruntime_providers_cuda\.(so|dll)$/.test(entry.name)) return true;
      }
    }
  } catch {
    // No readable binary folder: let session creation decide.
    return true;
  }
  return false;
}

function firstLine(s: string): string {
  return s.split('\n')[0].slice(0, 300);
}

function wrap(s: ort.InferenceSession, provider: Provider, fallbackReason?: string): Session {
  return {
    ort: s,
    provider,
    fallbackReason,
    inputNames: s.inputNames,
    outputNames: s.outputNames,
    run: (feeds, fetches) => (fetches ? s.run(feeds, fetches as string[]) : s.run(feeds)),
    release: () => s.release(),
  };
}

/**
 * Runs a single-input, single-output model over `count` samples of `sampleSize` floats each, in
 * batches. A model whose batch dimension is fixed to k gets batches of exactly k (the last one
 * padded with zeros, its padding dropped from the output).
 */
export async function runBatched(
  session: Session,
  input: { name: string; data: Float32Array; count: number; sampleDims: readonly number[]; fixedBatch?: number },
  output: string,
  batchSize: number,
  onBatch?: (done: number) => void,
): Promise<{ data: Float32Array; sampleSize: number }> {
  const sampleSize = input.sampleDims.reduce((a, b) => a * b, 1);
  const b = input.fixedBatch ?? Math.max(1, batchSize);
  let result: Float32Array | undefined;
  let outSample = 0;
  for (let start = 0; start < input.count; start += b) {
    const n = Math.min(b, input.count - start);
    let batch = input.data.subarray(start * sampleSize, (start + n) * sampleSize);
    if (input.fixedBatch && n < b) {
      const padded = new Float32Array(b * sampleSize);
      padded.set(batch);
      batch = padded;
    }
    const rows = input.fixedBatch ?? n;
    const out = await session.run({ [input.name]: new ort.Tensor('float32', batch, [rows, ...input.sampleDims]) }, [output]);
    const t = out[output];
    const values = t.data as Float32Array;
    if (!result) {
      outSample = values.length / rows;
      result = new Float32Array(input.count * outSample);
    }
    result.set(values.subarray(0, n * outSample), start * outSample);
    onBatch?.(start + n);
  }
  return { data: result ?? new Float32Array(0), sampleSize: outSample };
}

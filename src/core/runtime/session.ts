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
  /** What the session runs, for error messages: the model file, or e.g. "the gradient model of m.onnx". */
  label?: string;
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
    // Fatal only: errors reach the user through the UserError below, without onnxruntime's C++ log lines.
    logSeverityLevel: 4,
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
      return wrap(s, 'cuda', undefined, options.label);
    } catch (e) {
      const why = plainOrtMessage(e).detail;
      if (ep === 'cuda') throw new UserError(`The CUDA execution provider is not available: ${why}`, CUDA_HINT);
      fallbackReason = `CUDA provider unavailable (${why}); running on the CPU.`;
    }
  }
  try {
    const s = await ort.InferenceSession.create(modelBytes, { ...base, executionProviders: ['cpu'] });
    return wrap(s, 'cpu', fallbackReason, options.label);
  } catch (e) {
    throw ortError(e, 'load', options.label);
  }
}

/** An onnxruntime failure, said plainly; the original error is kept as `cause` (shown with --verbose). */
export class OnnxRuntimeError extends UserError {
  constructor(
    message: string,
    hint: string | undefined,
    readonly node: string | undefined,
    override readonly cause: unknown,
  ) {
    super(message, hint);
  }
}

/** onnxruntime's message without C++ file names, function signatures and assertion text, and the node it names. */
export function plainOrtMessage(e: unknown): { detail: string; node?: string; op?: string } {
  const raw = (e instanceof Error ? e.message : String(e)).replace(/\r/g, '');
  let node: string | undefined;
  let op: string | undefined;
  let m: RegExpExecArray | null;
  if ((m = /running (\S+) node\. Name:'([^']*)'/.exec(raw))) [op, node] = [m[1], m[2]];
  else if ((m = /Node \(([^)]*)\) Op \(([^)]*)\)/.exec(raw))) [node, op] = [m[1], m[2]];
  else if ((m = /In Node, \("([^"]*)", (\w+)/.exec(raw))) [node, op] = [m[1], m[2]];
  else if ((m = /[Nn]ode(?: name)?[: ]+'([^']+)'/.exec(raw))) node = m[1];
  let detail = raw.includes('Status Message:') ? raw.slice(raw.indexOf('Status Message:') + 'Status Message:'.length) : raw;
  detail =
    detail
      .replace(/^\s*\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*/, '')
      .replace(/Non-zero status code returned while running \S+ node\. Name:'[^']*'\s*/, '')
      .replace(/(?:This is an invalid model\.\s*)?In Node, .*?->\s*\(.*\)\s*,\s*(?:Error\s*)?/, '')
      .replace(/Node \([^)]*\) Op \([^)]*\)\s*/, '')
      // /path/to/file.cc:123 (or file.h:59) and the C++ signature that follows it
      .replace(/(?:[\w./\\-]*[\\/])?[\w.-]+\.(?:cc|cpp|cxx|h|hpp|cu)(?::\d+)?\s*/g, '')
      .replace(/(?:[\w:<>,*&~]+\s+)*(?:[\w~]+(?:<[^<>]*>)?::)+[\w~]+\([^()]*\)(?:\s*const)?\s*/g, '')
      .replace(/^[^.]*? was false\.\s*/, '')
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)[0] ?? '';
  detail = detail.replace(/\s+/g, ' ').trim().slice(0, 400) || 'no details given';
  return { detail, node, op };
}

/** The UserError for an onnxruntime failure while loading (`load`) or running (`run`) a model. */
export function ortError(e: unknown, phase: 'load' | 'run', label?: string): OnnxRuntimeError {
  const { detail, node, op } = plainOrtMessage(e);
  const what = label ? `'${label}'` : 'the model';
  const at = node !== undefined ? ` at node '${node}'${op ? ` (${op})` : ''}` : op ? ` at a ${op} node` : '';
  const sentence = phase === 'load' ? `onnxruntime could not load ${what}${at}: ${detail}` : `onnxruntime failed while running ${what}${at}: ${detail}`;
  let hint: string | undefined;
  const types = /Actual: \((tensor\([^)]*\))\)\s*,\s*expected: \((tensor\([^)]*\))\)/.exec(detail);
  if (types) hint = `The model takes ${types[2]} input but was given ${types[1]}; Robustness Lab evaluates image classifiers with a float32 input.`;
  else if (/protobuf parsing failed/i.test(detail)) hint = 'The file is not a valid ONNX model (or is truncated); export it again.';
  else if (/No Op registered|not a registered function|Unrecognized attribute|opset/i.test(detail))
    hint = 'The model uses an op or opset this onnxruntime does not support; export it with a standard opset (e.g. 13–17).';
  else if (phase === 'load') hint = 'Check that the model is valid ONNX (onnx.checker.check_model) with ops onnxruntime supports.';
  else hint = 'The model and its input do not fit together (shapes or types); check the model input shape and the preprocessing.';
  return new OnnxRuntimeError(`${sentence}${/[.!?]$/.test(sentence) ? '' : '.'}`, hint, node, e);
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

function wrap(s: ort.InferenceSession, provider: Provider, fallbackReason?: string, label?: string): Session {
  return {
    ort: s,
    provider,
    fallbackReason,
    inputNames: s.inputNames,
    outputNames: s.outputNames,
    run: async (feeds, fetches) => {
      try {
        return await (fetches ? s.run(feeds, fetches as string[]) : s.run(feeds));
      } catch (e) {
        throw ortError(e, 'run', label);
      }
    },
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

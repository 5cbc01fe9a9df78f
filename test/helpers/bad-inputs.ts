/**
 * A corpus of hostile and broken inputs, generated into a temporary folder (nothing binary is
 * committed), each with the outcome it must have: a UserError whose message names the file (and
 * never echoes the content of anything outside the allowed roots), or a documented acceptance.
 *
 * Layout under `dir`:
 *   ws/                 the workspace: the only root files may be read from
 *   ws/m/               models (and their external data)
 *   ws/data/            datasets
 *   ws/cache/           defense cache entries
 *   outside/sentinel.*  files outside the workspace that must never be opened
 *
 * writeCorpus(dir) creates the files; corpusCases(dir) returns the cases (closures over the paths),
 * so a child process can run them: `node --import tsx test/helpers/bad-inputs.ts --run <dir>`
 * prints one JSON line per case, with every file the case opened (fs is instrumented), and a case
 * that blocks (a FIFO opened for reading) times the child out instead of hanging the tests.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { mkdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { zipSync } from 'fflate';
import * as ort from 'onnxruntime-node';
import { PNG } from 'pngjs';
import { loadDataset, preprocess } from '../../src/core/data';
import { loadCachedDefense, saveDefense, type DefenseCacheKey } from '../../src/core/defenses/cache';
import { DEFENSE_IO, type DefenseStage } from '../../src/core/defenses/types';
import { GraphBuilder, makeModel } from '../../src/core/onnx/builder';
import { tensorValueInfo } from '../../src/core/onnx/cut';
import { assertFloatInputs, checkClassifierOutput, loadModel, nonFiniteInitializers } from '../../src/core/model/load';
import { AttributeType, DataType, encodeModel, type GraphProto, type ModelProto, type NodeProto, type TensorProto } from '../../src/core/onnx/proto';
import { floatTensor } from '../../src/core/onnx/tensor-proto';
import { setAllowedRoots } from '../../src/core/paths';
import { createSession } from '../../src/core/runtime/session';

export const SENTINEL = 'S3NT1N3L-DO-NOT-READ';
/** 12 bytes: the size of the bias tensor [3] float, so a broken containment check would load it silently. */
export const SENTINEL_BIAS = 'S3NT1N3L!!!!';

export type Group = 'containment' | 'external-data' | 'special-files' | 'decompression' | 'non-finite' | 'model-checks' | 'data-checks' | 'cache';

export interface BadCase {
  id: string;
  group: Group;
  /** 'user-error': a UserError whose message contains every `mentions`; 'accept': returns, and `check` passes. */
  expect: 'user-error' | 'accept';
  mentions?: (string | RegExp)[];
  /** Why this is accepted (documented behaviour), for 'accept' cases. */
  why?: string;
  run(): unknown;
  /** Throws (or returns a message) when an accepted result is wrong. */
  check?(result: unknown): void | string | Promise<void | string>;
}

export interface CaseResult {
  id: string;
  outcome: 'error' | 'accept';
  errorName?: string;
  userError?: boolean;
  message?: string;
  checkFailure?: string;
  opened: string[];
  ms: number;
}

export const paths = (dir: string) => {
  const ws = path.join(dir, 'ws');
  return {
    ws,
    m: path.join(ws, 'm'),
    data: path.join(ws, 'data'),
    cache: path.join(ws, 'cache'),
    outside: path.join(dir, 'outside'),
    sentinel: path.join(dir, 'outside', 'sentinel.bin'),
    sentinelBias: path.join(dir, 'outside', 'bias.bin'),
    sentinelModel: path.join(dir, 'outside', 'model.onnx'),
    sentinelData: path.join(dir, 'outside', 'data.npy'),
  };
};

export function canMakeFifo(): boolean {
  if (process.platform === 'win32') return false;
  try {
    execFileSync('mkfifo', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return fs.existsSync('/usr/bin/mkfifo') || fs.existsSync('/bin/mkfifo');
  }
}

function mkfifo(p: string): void {
  execFileSync('mkfifo', [p]);
}

// ─── Models ─────────────────────────────────────────────────────────────────────────────────────

const W_VALUES = Float32Array.from({ length: 48 }, (_, i) => ((i * 7) % 11) / 10 - 0.5);
const B_VALUES = Float32Array.from([0.25, -0.5, 1]);

/** x [N,1,4,4] → Flatten → Gemm(W [3,16], B [3]) → logits [N,3], with W and B as given. */
function classifier(nodes: NodeProto[], initializers: TensorProto[], extra: Partial<GraphProto> = {}, bias = 'B'): ModelProto {
  const graph: GraphProto = {
    name: 'tiny',
    node: [
      ...nodes,
      { opType: 'Flatten', name: 'flatten', input: ['x'], output: ['flat'] },
      { opType: 'Gemm', name: 'gemm', input: ['flat', 'W', bias], output: ['logits'], attribute: [{ name: 'transB', type: AttributeType.INT, i: 1 }] },
    ],
    initializer: initializers,
    input: [tensorValueInfo('x', ['N', 1, 4, 4])],
    output: [tensorValueInfo('logits', ['N', 3])],
    ...extra,
  };
  return makeModel(graph, 13);
}

const W = () => floatTensor('W', [3, 16], W_VALUES);
const B = () => floatTensor('B', [3], B_VALUES);
const plainModel = () => classifier([], [W(), B()]);

/** Marks `t` as external data in `location` (offset/length as strings, or omitted). */
function external(t: TensorProto, location: string, offset?: string, length?: string): TensorProto {
  delete t.rawData;
  t.dataLocation = 1;
  t.externalData = [
    { key: 'location', value: location },
    ...(offset !== undefined ? [{ key: 'offset', value: offset }] : []),
    ...(length !== undefined ? [{ key: 'length', value: length }] : []),
  ];
  return t;
}

const biasBytes = () => Buffer.from(B_VALUES.buffer.slice(0));

function writeModel(dir: string, name: string, model: ModelProto): string {
  const file = path.join(dir, name);
  writeFileSync(file, encodeModel(model));
  return file;
}

/** Logits of `model` (bytes) for a fixed input, through onnxruntime. */
async function logitsOf(bytes: Uint8Array, label: string): Promise<number[]> {
  const s = await createSession(bytes, { ep: 'cpu', threads: 1, label });
  try {
    const x = Float32Array.from({ length: 32 }, (_, i) => (i % 5) / 5);
    const out = await s.run({ x: new ort.Tensor('float32', x, [2, 1, 4, 4]) });
    return Array.from(out.logits.data as Float32Array);
  } finally {
    await s.release();
  }
}

let referenceLogits: Promise<number[]> | undefined;
async function sameAsPlain(result: unknown): Promise<string | void> {
  referenceLogits ??= logitsOf(encodeModel(plainModel()), 'reference');
  const got = await logitsOf((result as { bytes: Uint8Array }).bytes, 'loaded');
  const want = await referenceLogits;
  if (got.some((v, i) => Math.abs(v - want[i]) > 1e-5)) return `logits ${got} differ from the inline model's ${want}`;
}

/** Bias as a SparseTensorProto: values at indices 0 and 2 of [3] (index 1 is 0, so B_VALUES[1] is replaced by 0 in the reference). */
function sparseBias(values: TensorProto) {
  return { values, indices: { name: 'B_idx', dims: [2], dataType: DataType.INT64, int64Data: [0, 2] }, dims: [3] };
}
const SPARSE_VALUES = Float32Array.from([B_VALUES[0], B_VALUES[2]]);
const sparseDense = () => classifier([], [W(), floatTensor('B', [3], [B_VALUES[0], 0, B_VALUES[2]])]);

async function sameAs(reference: ModelProto, result: unknown): Promise<string | void> {
  const want = await logitsOf(encodeModel(reference), 'reference');
  const got = await logitsOf((result as { bytes: Uint8Array }).bytes, 'loaded');
  if (got.some((v, i) => Math.abs(v - want[i]) > 1e-5)) return `logits ${got} differ from the reference ${want}`;
}

/** If(cond) with the bias coming from then_branch's initializer `then` (else_branch: zeros). */
function ifModel(thenBias: TensorProto): ModelProto {
  const branch = (name: string, t: TensorProto): GraphProto => ({
    name,
    node: [{ opType: 'Identity', name: `${name}_id`, input: [t.name!], output: [`${name}_out`] }],
    initializer: [t],
    input: [],
    output: [tensorValueInfo(`${name}_out`, [3])],
  });
  const cond: TensorProto = { name: 'cond', dims: [], dataType: DataType.BOOL, int32Data: [1] };
  return classifier(
    [
      {
        opType: 'If',
        name: 'choose',
        input: ['cond'],
        output: ['B'],
        attribute: [
          { name: 'then_branch', type: AttributeType.GRAPH, g: branch('then', thenBias) },
          { name: 'else_branch', type: AttributeType.GRAPH, g: branch('else', floatTensor('zeros', [3], [0, 0, 0])) },
        ],
      },
    ],
    [W(), cond],
  );
}

/** A Loop or Scan node whose body holds `t` (the model is not meant to run: loading must stop first). */
function bodyModel(op: 'Loop' | 'Scan', t: TensorProto): ModelProto {
  const body: GraphProto = {
    name: 'body',
    node: [{ opType: 'Identity', name: 'b_id', input: [t.name!], output: ['b_out'] }],
    initializer: [t],
    input: [],
    output: [tensorValueInfo('b_out', [3])],
  };
  return classifier(
    [{ opType: op, name: op.toLowerCase(), input: [], output: ['unused'], attribute: [{ name: 'body', type: AttributeType.GRAPH, g: body }] }],
    [W(), B()],
  );
}

/** A model whose input has element type `elem`, and one whose output has the given dims. */
function typedModel(elem: number): ModelProto {
  const m = plainModel();
  m.graph!.node!.unshift({
    opType: 'Cast',
    name: 'cast',
    input: ['xi'],
    output: ['x'],
    attribute: [{ name: 'to', type: AttributeType.INT, i: DataType.FLOAT }],
  });
  m.graph!.input = [tensorValueInfo('xi', ['N', 1, 4, 4], elem)];
  return m;
}

// ─── Data files ─────────────────────────────────────────────────────────────────────────────────

function npy(descr: string, shape: string, data: Uint8Array): Uint8Array {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(data, 10 + header.length);
  return out;
}

function f32(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

function idx(code: number, dims: number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out.set([0, 0, code, dims.length]);
  const v = new DataView(out.buffer);
  dims.forEach((d, i) => v.setInt32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

/** A PNG signature and an IHDR declaring width × height (nothing after it: the size check must come first). */
function pngHeader(width: number, height: number): Uint8Array {
  const out = new Uint8Array(33);
  out.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
  const v = new DataView(out.buffer);
  v.setUint32(16, width, false);
  v.setUint32(20, height, false);
  out.set([8, 6, 0, 0, 0], 24);
  return out;
}

const labels4 = () => idx(0x08, [4], Uint8Array.from([0, 1, 2, 1]));
const images4 = () => idx(0x08, [4, 4, 4], new Uint8Array(64).fill(7));

// ─── Cache ──────────────────────────────────────────────────────────────────────────────────────

export const CACHE_KEY: DefenseCacheKey = {
  kind: 'lesci',
  layer: 'flat',
  modelSha256: 'a'.repeat(64),
  referenceSha256: 'b'.repeat(64),
  referenceCount: 4,
  params: { k: 3 },
  seed: 0,
  fitVersion: 1,
};
/** A fitted defense as the cache stores it: an identity stage from the defense's activation input to its output. */
const stage = (): DefenseStage => {
  const b = new GraphBuilder();
  b.node('Identity', [DEFENSE_IO.activation], {}, [DEFENSE_IO.activationOut]);
  const graph = b.graph('identity_defense', [tensorValueInfo(DEFENSE_IO.activation, ['N', 16])], [tensorValueInfo(DEFENSE_IO.activationOut, ['N', 16])]);
  return { kind: 'lesci', layer: 'flat', placement: 'before-tail', scores: 'logits', model: makeModel(graph, 13), params: { k: 3 } };
};

function cacheEntryCase(id: string, dir: string, tamper: (entry: Record<string, unknown>) => void, reason: RegExp, why: string): BadCase {
  return {
    id,
    group: 'cache',
    expect: 'accept',
    why,
    run() {
      const entryFile = saveDefense(dir, CACHE_KEY, stage(), 1.5);
      const entry = JSON.parse(fs.readFileSync(entryFile, 'utf8'));
      tamper(entry);
      writeFileSync(entryFile, JSON.stringify(entry));
      const logs: string[] = [];
      return { hit: loadCachedDefense(dir, CACHE_KEY, (l) => logs.push(l)), logs };
    },
    check(result) {
      const { hit, logs } = result as { hit: unknown; logs: string[] };
      if (hit !== undefined) return 'the tampered entry was used (expected a miss)';
      if (!logs.some((l) => reason.test(l))) return `no logged reason matching ${reason}: ${JSON.stringify(logs)}`;
    },
  };
}

// ─── The corpus ─────────────────────────────────────────────────────────────────────────────────

/** Creates every file the cases read. */
export function writeCorpus(dir: string): void {
  const p = paths(dir);
  for (const d of [p.m, p.data, p.cache, p.outside, path.join(p.cache, 'sub')]) mkdirSync(d, { recursive: true });
  writeFileSync(p.sentinel, SENTINEL.repeat(4));
  writeFileSync(p.sentinelBias, SENTINEL_BIAS);
  writeFileSync(p.sentinelModel, encodeModel(plainModel()));
  writeFileSync(p.sentinelData, npy('|u1', '(1, 4, 4)', new TextEncoder().encode(SENTINEL.padEnd(16, '!').slice(0, 16))));
  const fifo = canMakeFifo();

  // External data: accepted forms (each must give the inline model's logits).
  writeFileSync(path.join(p.m, 'weights.bin'), Buffer.concat([Buffer.alloc(16, 9), biasBytes(), Buffer.from(SPARSE_VALUES.buffer.slice(0))]));
  writeModel(p.m, 'ext-init.onnx', classifier([], [W(), external(B(), 'weights.bin', '16', '12')]));
  writeModel(p.m, 'ext-init-nolength.onnx', classifier([], [W(), external(B(), 'bias-only.bin')]));
  writeFileSync(path.join(p.m, 'bias-only.bin'), biasBytes());
  writeModel(
    p.m,
    'ext-constant.onnx',
    classifier(
      [
        {
          opType: 'Constant',
          name: 'const_b',
          input: [],
          output: ['B'],
          attribute: [{ name: 'value', type: AttributeType.TENSOR, t: external(floatTensor('B_const', [3], B_VALUES), 'weights.bin', '16', '12') }],
        },
      ],
      [W()],
    ),
  );
  writeModel(
    p.m,
    'ext-sparse-value.onnx',
    classifier(
      [
        {
          opType: 'Constant',
          name: 'const_sparse',
          input: [],
          output: ['B'],
          attribute: [
            {
              name: 'sparse_value',
              type: 11,
              sparseTensor: sparseBias(external(floatTensor('B_vals', [2], SPARSE_VALUES), 'weights.bin', '28', '8')),
            } as never,
          ],
        },
      ],
      [W()],
    ),
  );
  writeModel(
    p.m,
    'ext-sparse-init.onnx',
    classifier([], [W()], { sparseInitializer: [sparseBias(external(floatTensor('B', [2], SPARSE_VALUES), 'weights.bin', '28', '8'))] } as Partial<GraphProto>),
  );
  writeModel(p.m, 'ext-if.onnx', ifModel(external(floatTensor('then_b', [3], B_VALUES), 'weights.bin', '16', '12')));

  // External data that leaves the model's folder, in every place a tensor can sit.
  const out = (name: string) => external(floatTensor(name, [3], B_VALUES), '../../../outside/bias.bin');
  writeModel(p.m, 'out-init.onnx', classifier([], [W(), out('B')]));
  writeModel(
    p.m,
    'out-constant.onnx',
    classifier(
      [{ opType: 'Constant', name: 'const_b', input: [], output: ['B'], attribute: [{ name: 'value', type: AttributeType.TENSOR, t: out('B_const') }] }],
      [W()],
    ),
  );
  writeModel(
    p.m,
    'out-sparse-value.onnx',
    classifier(
      [
        {
          opType: 'Constant',
          name: 'const_sparse',
          input: [],
          output: ['B'],
          attribute: [
            {
              name: 'sparse_value',
              type: 11,
              sparseTensor: sparseBias(external(floatTensor('B_vals', [2], SPARSE_VALUES), '../../../outside/bias.bin', '0', '8')),
            } as never,
          ],
        },
      ],
      [W()],
    ),
  );
  writeModel(
    p.m,
    'out-sparse-init.onnx',
    classifier([], [W()], {
      sparseInitializer: [sparseBias(external(floatTensor('B', [2], SPARSE_VALUES), '../../../outside/bias.bin', '0', '8'))],
    } as Partial<GraphProto>),
  );
  writeModel(p.m, 'out-if.onnx', ifModel(out('then_b')));
  writeModel(p.m, 'out-loop.onnx', bodyModel('Loop', out('loop_b')));
  writeModel(p.m, 'out-scan.onnx', bodyModel('Scan', out('scan_b')));
  writeModel(p.m, 'out-absolute.onnx', classifier([], [W(), external(B(), p.sentinelBias)]));
  symlinkSync(p.sentinelBias, path.join(p.m, 'link-to-outside.bin'));
  writeModel(p.m, 'out-symlink.onnx', classifier([], [W(), external(B(), 'link-to-outside.bin')]));

  // External data offsets and lengths.
  const bad = (name: string, offset?: string, length?: string) => writeModel(p.m, name, classifier([], [W(), external(B(), 'weights.bin', offset, length)]));
  bad('off-negative.onnx', '-16', '12');
  bad('off-text.onnx', 'abc', '12');
  bad('off-exponent.onnx', '1e1', '12');
  bad('off-hex.onnx', '0x10', '12');
  bad('off-fraction.onnx', '16.5', '12');
  bad('off-beyond.onnx', '4096', '12');
  bad('len-negative.onnx', '16', '-12');
  bad('len-beyond.onnx', '16', '4096');
  bad('len-wrong.onnx', '16', '8');
  writeModel(p.m, 'loc-none.onnx', classifier([], [W(), { ...B(), rawData: undefined, dataLocation: 1, externalData: [{ key: 'offset', value: '0' }] }]));
  writeModel(p.m, 'loc-nofile.onnx', classifier([], [W(), external(B(), 'nope.bin')]));
  mkdirSync(path.join(p.m, 'a-folder.bin'));
  writeModel(p.m, 'loc-folder.onnx', classifier([], [W(), external(B(), 'a-folder.bin')]));
  if (fifo) {
    mkfifo(path.join(p.m, 'pipe.bin'));
    writeModel(p.m, 'loc-fifo.onnx', classifier([], [W(), external(B(), 'pipe.bin')]));
    mkfifo(path.join(p.m, 'fifo.onnx'));
    mkfifo(path.join(p.data, 'fifo.npy'));
    mkfifo(path.join(p.data, 'fifo-labels.idx'));
    mkfifo(path.join(p.cache, 'fifo.onnx'));
    mkdirSync(path.join(p.data, 'folder-with-fifo', 'a'), { recursive: true });
    mkdirSync(path.join(p.data, 'folder-with-fifo', 'b'), { recursive: true });
    mkfifo(path.join(p.data, 'folder-with-fifo', 'a', 'x.png'));
  }

  // Model files.
  symlinkSync(p.sentinelModel, path.join(p.m, 'link-model.onnx'));
  mkdirSync(path.join(p.m, 'folder.onnx'));
  writeFileSync(path.join(p.m, 'garbage.onnx'), Buffer.from('\x08\x07\x12\xff\xff\xff\xff\x0fnot a model'));
  writeModel(p.m, 'no-outputs.onnx', { ...plainModel(), graph: { ...plainModel().graph!, output: [] } });
  const huge = plainModel();
  huge.graph!.input = [tensorValueInfo('x', ['N', 3, 1_000_000, 1_000_000])];
  writeModel(p.m, 'huge-dim.onnx', huge);
  const overflow = plainModel();
  overflow.graph!.input = [tensorValueInfo('x', ['N', 2 ** 40, 4, 4])];
  writeModel(p.m, 'overflow-dim.onnx', overflow);
  writeModel(
    p.m,
    'nan-weights.onnx',
    classifier(
      [],
      [
        floatTensor(
          'W',
          [3, 16],
          W_VALUES.map((v, i) => (i === 5 ? NaN : i === 9 ? Infinity : v)),
        ),
        B(),
      ],
    ),
  );
  writeModel(
    p.m,
    'inf-fp16-constant.onnx',
    classifier(
      [
        {
          opType: 'Constant',
          name: 'c16',
          input: [],
          output: ['B16'],
          attribute: [
            {
              name: 'value',
              type: AttributeType.TENSOR,
              t: { name: 'B16', dims: [3], dataType: DataType.FLOAT16, rawData: new Uint8Array([0, 0x3c, 0, 0x7c, 0, 0x3c]) },
            },
          ],
        },
        { opType: 'Cast', name: 'cast16', input: ['B16'], output: ['B'], attribute: [{ name: 'to', type: AttributeType.INT, i: DataType.FLOAT }] },
      ],
      [W()],
    ),
  );
  writeModel(p.m, 'int-input.onnx', typedModel(DataType.INT64));
  writeModel(p.m, 'uint8-input.onnx', typedModel(DataType.UINT8));
  writeModel(p.m, 'plain.onnx', plainModel());
  // x [N, K] + B [3]: fine for K = 3, a broadcast error inside onnxruntime (with C++ signatures in its message) otherwise.
  writeModel(
    p.m,
    'bad-broadcast.onnx',
    makeModel(
      {
        name: 'add',
        node: [{ opType: 'Add', name: 'bad_add', input: ['x', 'B'], output: ['logits'] }],
        initializer: [B()],
        input: [tensorValueInfo('x', ['N', 'K'])],
        output: [tensorValueInfo('logits', ['N', 3])],
      },
      13,
    ),
  );
  writeModel(p.m, 'unknown-op.onnx', classifier([{ opType: 'NoSuchOp', name: 'mystery', input: ['x'], output: ['x2'] }], [W(), B()]));

  // Datasets.
  writeFileSync(path.join(p.data, 'images.idx'), images4());
  writeFileSync(path.join(p.data, 'labels.idx'), labels4());
  symlinkSync(p.sentinelData, path.join(p.data, 'link-outside.npy'));
  symlinkSync(p.outside, path.join(p.data, 'link-dir'));
  writeFileSync(path.join(p.data, 'bomb.idx.gz'), gzipSync(idx(0x08, [1024, 64, 64], new Uint8Array(1024 * 64 * 64))));
  const zeros = npy('|u1', '(512, 64, 64)', new Uint8Array(512 * 64 * 64));
  writeFileSync(path.join(p.data, 'bomb.npz'), zipSync({ 'x.npy': [zeros, { level: 9 }], 'y.npy': [npy('|u1', '(512,)', new Uint8Array(512)), { level: 9 }] }));
  mkdirSync(path.join(p.data, 'png-bomb', 'cls'), { recursive: true });
  writeFileSync(path.join(p.data, 'png-bomb', 'cls', 'big.png'), pngHeader(60_000, 60_000));
  writeFileSync(
    path.join(p.data, 'nan.npy'),
    npy('<f4', '(4, 4, 4)', f32(Array.from({ length: 64 }, (_, i) => (i === 17 ? NaN : i === 40 ? -Infinity : i === 41 ? NaN : 0.5)))),
  );
  writeFileSync(
    path.join(p.data, 'inf.idx'),
    idx(
      0x0d,
      [4, 4, 4],
      (() => {
        const b = new Uint8Array(256);
        const v = new DataView(b.buffer);
        for (let i = 0; i < 64; i++) v.setFloat32(4 * i, i === 63 ? Infinity : 0.25, false);
        return b;
      })(),
    ),
  );
  writeFileSync(path.join(p.data, 'neg-dims.idx'), idx(0x08, [-4, -4, 4], new Uint8Array(64)));
  writeFileSync(path.join(p.data, 'huge-dims.idx'), idx(0x08, [2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1], new Uint8Array(64)));
  writeFileSync(path.join(p.data, 'bad-shape.npy'), npy('|u1', "('a', 4, 4)", new Uint8Array(64)));
  writeFileSync(path.join(p.data, 'labels-empty-items.txt'), '0\n1\n\n2\nabc\n');
  mkdirSync(path.join(p.data, 'labels-folder'));
  mkdirSync(path.join(p.data, 'symlinked-class', 'real'), { recursive: true });
  writeFileSync(path.join(p.data, 'symlinked-class', 'real', 'a.png'), tinyPng());
  symlinkSync(p.outside, path.join(p.data, 'symlinked-class', 'sneaky'));

  // Stale temporary files in the cache folder (a killed run's), and a fresh one (a running one's).
  const stale = path.join(p.cache, 'old.json.4242.1000.tmp');
  writeFileSync(stale, 'partial');
  const old = (Date.now() - 2 * 3600_000) / 1000;
  utimesSync(stale, old, old);
  writeFileSync(path.join(p.cache, 'fresh.json.4242.2000.tmp'), 'partial');
}

/** A valid 2×2 PNG. */
function tinyPng(): Uint8Array {
  const png = new PNG({ width: 2, height: 2 });
  png.data.fill(128);
  return PNG.sync.write(png);
}

/** The cases, over the files writeCorpus(dir) made. */
export function corpusCases(dir: string): BadCase[] {
  const p = paths(dir);
  const m = (name: string) => path.join(p.m, name);
  const d = (name: string) => path.join(p.data, name);
  const fifo = canMakeFifo();
  const cases: BadCase[] = [];
  const err = (id: string, group: Group, run: () => unknown, ...mentions: (string | RegExp)[]) =>
    cases.push({ id, group, expect: 'user-error', run, mentions });
  const accept = (id: string, group: Group, why: string, run: () => unknown, check?: BadCase['check']) =>
    cases.push({ id, group, expect: 'accept', why, run, check });
  const ws = { root: p.ws };

  // ── external data: accepted, inlined before onnxruntime sees the model ──
  accept(
    'external data in an initializer (offset, length)',
    'external-data',
    'inlined from the model folder',
    () => loadModel(m('ext-init.onnx'), ws),
    sameAsPlain,
  );
  accept(
    'external data without offset/length: the whole file',
    'external-data',
    'inlined from the model folder',
    () => loadModel(m('ext-init-nolength.onnx'), ws),
    sameAsPlain,
  );
  accept(
    'external data in a Constant value attribute',
    'external-data',
    'inlined from the model folder',
    () => loadModel(m('ext-constant.onnx'), ws),
    sameAsPlain,
  );
  accept(
    'external data in a Constant sparse_value attribute',
    'external-data',
    'inlined from the model folder',
    () => loadModel(m('ext-sparse-value.onnx'), ws),
    (r) => sameAs(sparseDense(), r),
  );
  accept(
    'external data in a sparse initializer',
    'external-data',
    'inlined from the model folder',
    () => loadModel(m('ext-sparse-init.onnx'), ws),
    (r) => sameAs(sparseDense(), r),
  );
  accept('external data in an If branch subgraph', 'external-data', 'inlined from the model folder', () => loadModel(m('ext-if.onnx'), ws), sameAsPlain);

  // ── external data leaving the model's folder, wherever the tensor sits ──
  for (const [file, where] of [
    ['out-init.onnx', "initializer 'B'"],
    ['out-constant.onnx', "Constant node 'const_b'"],
    ['out-sparse-value.onnx', "Constant node 'const_sparse'"],
    ['out-sparse-init.onnx', "sparse initializer 'B'"],
    ['out-if.onnx', "If node 'choose' attribute 'then_branch'"],
    ['out-loop.onnx', "Loop node 'loop' attribute 'body'"],
    ['out-scan.onnx', "Scan node 'scan' attribute 'body'"],
  ] as const) {
    err(`external data '../' out of the model folder: ${file}`, 'containment', () => loadModel(m(file), ws), m(file), where, "leaves the model's folder", p.m);
  }
  err('external data at an absolute path outside', 'containment', () => loadModel(m('out-absolute.onnx'), ws), m('out-absolute.onnx'), 'absolute path');
  err(
    'external data through a symlink out of the model folder',
    'containment',
    () => loadModel(m('out-symlink.onnx'), ws),
    m('out-symlink.onnx'),
    'link-to-outside.bin',
    'symbolic link',
  );

  // ── offsets and lengths ──
  for (const [file, what] of [
    ['off-negative.onnx', /offset .*"-16".*non-negative whole number/],
    ['off-text.onnx', /offset .*"abc"/],
    ['off-exponent.onnx', /offset .*"1e1"/],
    ['off-hex.onnx', /offset .*"0x10"/],
    ['off-fraction.onnx', /offset .*"16\.5"/],
    ['off-beyond.onnx', /bytes 4096\.\.4108 of 'weights\.bin', which has 36/],
    ['len-negative.onnx', /length .*"-12"/],
    ['len-beyond.onnx', /which has 36/],
    ['len-wrong.onnx', /has 8 bytes, but its shape \[3\] needs 12/],
    ['loc-none.onnx', /names no location/],
    ['loc-nofile.onnx', /nope\.bin.*does not exist/],
    ['loc-folder.onnx', /a-folder\.bin.*is a folder/],
  ] as const) {
    err(`external data ${file.replace('.onnx', '')}`, 'external-data', () => loadModel(m(file), ws), m(file), what);
  }
  if (fifo) err('external data that is a FIFO is refused without blocking', 'special-files', () => loadModel(m('loc-fifo.onnx'), ws), 'pipe.bin', /named pipe/);

  // ── model files ──
  err('a model symlinked to a file outside the workspace', 'containment', () => loadModel(m('link-model.onnx'), ws), 'link-model.onnx', 'symbolic link', p.ws);
  err(
    'a model path with ../ out of the workspace',
    'containment',
    () => loadModel(path.join(p.m, '..', '..', 'outside', 'model.onnx'), ws),
    'outside/model.onnx',
    'leaves',
    p.ws,
  );
  err('a model that is a folder', 'special-files', () => loadModel(m('folder.onnx'), ws), 'folder.onnx', /is a folder/);
  if (fifo) err('a model that is a FIFO is refused without blocking', 'special-files', () => loadModel(m('fifo.onnx'), ws), 'fifo.onnx', /named pipe/);
  if (fs.existsSync('/dev/zero'))
    err('a model that is a device (/dev/zero) is refused without reading forever', 'special-files', () => loadModel('/dev/zero'), '/dev/zero', /device/);
  err('a model that is not protobuf', 'model-checks', () => loadModel(m('garbage.onnx'), ws), 'garbage.onnx', /not a valid ONNX model/);
  err('a model with no outputs', 'model-checks', () => loadModel(m('no-outputs.onnx'), ws), 'no-outputs.onnx', /no graph outputs/);
  err('a model with a huge declared input dimension', 'model-checks', () => loadModel(m('huge-dim.onnx'), ws), 'huge-dim.onnx', /values per sample/);
  err('a model with a declared dimension beyond int32', 'model-checks', () => loadModel(m('overflow-dim.onnx'), ws), 'overflow-dim.onnx', /too large/);
  err('an integer-input model (int64)', 'model-checks', () => assertFloatInputs(loadModel(m('int-input.onnx'), ws)), 'int-input.onnx', /int64/, /float32/);
  err('an integer-input model (uint8)', 'model-checks', () => assertFloatInputs(loadModel(m('uint8-input.onnx'), ws)), 'uint8-input.onnx', /uint8/);
  err(
    'an integer-input model fed floats: the onnxruntime error is a plain UserError',
    'model-checks',
    async () => {
      const loaded = loadModel(m('int-input.onnx'), ws);
      await logitsViaInput(loaded.bytes, 'xi', 'int-input.onnx');
    },
    'int-input.onnx',
    /tensor\(int64\)/,
  );
  err('output rank 4 (not a classifier)', 'model-checks', () => checkClassifierOutput(['N', 3, 8, 8], 'seg', m('plain.onnx')), 'plain.onnx', /rank 4/);
  err('output rank 1', 'model-checks', () => checkClassifierOutput([10], 'out', m('plain.onnx')), 'plain.onnx', /rank 1/);
  err(
    'a run error names the node, without C++ signatures',
    'model-checks',
    async () => {
      const loaded = loadModel(m('bad-broadcast.onnx'), ws);
      await logitsViaInput(loaded.bytes, 'x', 'bad-broadcast.onnx', [2, 4]);
    },
    'bad-broadcast.onnx',
    "node 'bad_add' (Add)",
    /broadcast/,
  );
  err(
    'an unknown op is a plain load error',
    'model-checks',
    async () => {
      const loaded = loadModel(m('unknown-op.onnx'), ws);
      await createSession(loaded.bytes, { ep: 'cpu', label: 'unknown-op.onnx' });
    },
    'unknown-op.onnx',
    /NoSuchOp/,
  );

  // ── non-finite numbers ──
  err(
    'NaN and Infinity in the weights',
    'non-finite',
    () => loadModel(m('nan-weights.onnx'), ws),
    'nan-weights.onnx',
    "initializer 'W' (2)",
    /2 NaN or infinite/,
  );
  err('Infinity in a float16 Constant', 'non-finite', () => loadModel(m('inf-fp16-constant.onnx'), ws), 'inf-fp16-constant.onnx', "Constant node 'c16'");
  accept(
    'NaN weights with allowNonFiniteWeights: loaded, and nonFiniteInitializers lists them',
    'non-finite',
    'documented option',
    () => nonFiniteInitializers(loadModel(m('nan-weights.onnx'), { ...ws, allowNonFiniteWeights: true }).model),
    (r) => {
      const list = r as { name: string; count: number }[];
      if (list.length !== 1 || list[0].name !== 'W' || list[0].count !== 2) return `nonFiniteInitializers gave ${JSON.stringify(list)}`;
    },
  );
  err('NaN and -Infinity in float images', 'non-finite', () => loadDataset({ path: d('nan.npy'), ...ws }), 'nan.npy', /3 NaN or infinite/, /sample 1/);
  err('Infinity in float32 IDX images', 'non-finite', () => loadDataset({ path: d('inf.idx'), ...ws }), 'inf.idx', /1 NaN or infinite/, /sample 3/);
  accept(
    'NaN images with allowNonFinite',
    'non-finite',
    'documented option',
    () => loadDataset({ path: d('nan.npy'), ...ws, allowNonFinite: true }),
    (r) => {
      if ((r as { count: number }).count !== 4) return 'expected 4 samples';
    },
  );

  // ── datasets: containment and special files ──
  accept(
    'an IDX dataset inside the workspace',
    'containment',
    'the ordinary case',
    () => loadDataset({ path: d('images.idx'), labelsPath: d('labels.idx'), ...ws }),
    (r) => {
      if ((r as { count: number }).count !== 4) return 'expected 4 samples';
    },
  );
  err(
    'a dataset symlinked outside the workspace',
    'containment',
    () => loadDataset({ path: d('link-outside.npy'), ...ws }),
    'link-outside.npy',
    'symbolic link',
    p.ws,
  );
  err('a dataset folder symlinked outside the workspace', 'containment', () => loadDataset({ path: d('link-dir'), ...ws }), 'link-dir', 'symbolic link');
  err(
    'a labels file outside the workspace',
    'containment',
    () => loadDataset({ path: d('images.idx'), labelsPath: p.sentinel, ...ws }),
    p.sentinel,
    'leaves',
    p.ws,
  );
  err(
    'a labels path that is a folder',
    'special-files',
    () => loadDataset({ path: d('images.idx'), labelsPath: d('labels-folder'), ...ws }),
    'labels-folder',
    /is a folder/,
  );
  if (fifo) {
    err('a dataset that is a FIFO is refused without blocking', 'special-files', () => loadDataset({ path: d('fifo.npy'), ...ws }), 'fifo.npy', /named pipe/);
    err(
      'a labels file that is a FIFO is refused without blocking',
      'special-files',
      () => loadDataset({ path: d('images.idx'), labelsPath: d('fifo-labels.idx'), ...ws }),
      'fifo-labels.idx',
      /named pipe/,
    );
    err(
      'an image folder whose only image is a FIFO (skipped: no images left)',
      'special-files',
      () => loadDataset({ path: d('folder-with-fifo'), ...ws }),
      'folder-with-fifo',
      /no \.png/,
    );
  }
  if (fs.existsSync('/dev/zero'))
    err('a dataset that is a device (/dev/zero)', 'special-files', () => loadDataset({ path: '/dev/zero' }), '/dev/zero', /device/);
  accept(
    'an image folder with a class folder symlinked outside: the link is skipped',
    'containment',
    'symbolic links inside image folders are never followed',
    () => loadDataset({ path: d('symlinked-class'), ...ws }),
    (r) => {
      const set = r as { count: number; info: { classNames?: string[] } };
      if (set.count !== 1 || JSON.stringify(set.info.classNames) !== '["real"]') return `read ${set.count} images of ${JSON.stringify(set.info.classNames)}`;
    },
  );

  // ── decompression ──
  err(
    'a gzip bomb (4 MiB of zeros) over a 1 MiB limit',
    'decompression',
    () => loadDataset({ path: d('bomb.idx.gz'), ...ws, maxDecompressedBytes: 2 ** 20 }),
    'bomb.idx.gz',
    /more than 1 MiB/,
    /--max-decompressed-mb/,
  );
  accept(
    'the same gzip under the default limit',
    'decompression',
    'within 2 GiB',
    () => loadDataset({ path: d('bomb.idx.gz'), ...ws, limit: 2 }),
    (r) => {
      if ((r as { count: number }).count !== 2) return 'expected 2 samples';
    },
  );
  err(
    'an NPZ bomb over a 1 MiB limit (declared sizes, before inflating)',
    'decompression',
    () => loadDataset({ path: d('bomb.npz'), ...ws, maxDecompressedBytes: 2 ** 20 }),
    'bomb.npz',
    /more than 1 MiB/,
  );
  err('a PNG declaring 60000×60000 pixels', 'decompression', () => loadDataset({ path: d('png-bomb'), ...ws }), 'big.png', /60000×60000/);

  // ── malformed headers ──
  err('IDX with negative dimensions', 'data-checks', () => loadDataset({ path: d('neg-dims.idx'), ...ws }), 'neg-dims.idx', /non-negative/);
  err('IDX declaring 2^93 values', 'data-checks', () => loadDataset({ path: d('huge-dims.idx'), ...ws }), 'huge-dims.idx', /larger than any file|truncated/);
  err('NPY with a non-numeric shape', 'data-checks', () => loadDataset({ path: d('bad-shape.npy'), ...ws }), 'bad-shape.npy', /non-negative integer/);
  err(
    'preprocessing for a model whose input is huge: a UserError, not a RangeError',
    'data-checks',
    async () => {
      const raw = await loadDataset({ path: d('images.idx'), ...ws });
      return preprocess(raw, { layout: 'NCHW', channels: 3, height: 20_000, width: 20_000 });
    },
    'images.idx',
    /GiB as float32/,
    /--limit/,
  );
  err(
    'text labels with a bad line',
    'data-checks',
    () => loadDataset({ path: d('images.idx'), labelsPath: d('labels-empty-items.txt'), ...ws }),
    'labels-empty-items.txt',
    /line 5/,
  );

  // ── cache entries ──
  const cacheCase = (id: string, modelFile: unknown, reason: RegExp) =>
    cases.push(cacheEntryCase(id, p.cache, (e) => (e.modelFile = modelFile), reason, 'an unusable cache entry is a miss, with the reason logged'));
  cacheCase('cache modelFile ../ out of the folder', '../../../outside/model.onnx', /not a plain file name/);
  cacheCase('cache modelFile absolute', p.sentinelModel, /not a plain file name/);
  cacheCase('cache modelFile in a sub-folder', 'sub/x.onnx', /not a plain file name/);
  cacheCase('cache modelFile ..', '..', /not a plain file name/);
  cacheCase('cache modelFile not a string', 42, /not a plain file name/);
  cacheCase('cache modelFile a folder', 'sub', /is a folder/);
  if (fifo) cacheCase('cache modelFile a FIFO', 'fifo.onnx', /named pipe/);
  cases.push({
    id: 'cache modelFile a symlink out of the folder',
    group: 'cache',
    expect: 'accept',
    why: 'a miss with the reason logged',
    run() {
      const link = path.join(p.cache, 'link.onnx');
      if (!fs.existsSync(link)) symlinkSync(p.sentinelModel, link);
      return cacheEntryCase('', p.cache, (e) => (e.modelFile = 'link.onnx'), /symbolic link/, '').run();
    },
    check: cacheEntryCase('', p.cache, () => {}, /symbolic link/, '').check,
  });
  cases.push({
    id: 'cache entry model with external data',
    group: 'cache',
    expect: 'accept',
    why: 'a miss with the reason logged',
    run() {
      writeFileSync(path.join(p.cache, 'ext.onnx'), encodeModel(classifier([], [W(), external(B(), '../../outside/bias.bin')])));
      return cacheEntryCase('', p.cache, (e) => (e.modelFile = 'ext.onnx'), /external data/, '').run();
    },
    check: cacheEntryCase('', p.cache, () => {}, /external data/, '').check,
  });
  err(
    'a cache folder outside the workspace is never written (compute process roots)',
    'cache',
    () => {
      setAllowedRoots([p.ws]);
      try {
        return saveDefense(path.join(p.outside, 'cache'), CACHE_KEY, stage(), 1);
      } finally {
        setAllowedRoots(undefined);
      }
    },
    'defense cache folder',
    path.join(p.outside, 'cache'),
    /leaves the workspace folder/,
  );
  accept(
    'an untampered cache entry is a hit; the stale .tmp is cleaned, the fresh one kept',
    'cache',
    'the ordinary case',
    () => {
      saveDefense(p.cache, CACHE_KEY, stage(), 2);
      return { hit: loadCachedDefense(p.cache, CACHE_KEY, () => {}), files: fs.readdirSync(p.cache) };
    },
    (r) => {
      const { hit, files } = r as { hit?: { fitSeconds: number }; files: string[] };
      if (!hit || hit.fitSeconds !== 2) return 'expected a hit';
      if (files.includes('old.json.4242.1000.tmp')) return 'the stale temporary file is still there';
      if (!files.includes('fresh.json.4242.2000.tmp')) return 'the fresh temporary file (a running write) was removed';
    },
  );

  return cases;
}

/** Runs a model's first input with float zeros (for models that do not take floats). */
async function logitsViaInput(bytes: Uint8Array, input: string, label: string, dims = [2, 1, 4, 4]): Promise<void> {
  const s = await createSession(bytes, { ep: 'cpu', threads: 1, label });
  try {
    await s.run({ [input]: new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)), dims) });
  } finally {
    await s.release();
  }
}

// ─── Child-process runner ─────────────────────────────────────────────────────────────────────────

/** Records every path opened through fs (sync, callback and promise forms) while `fn` runs. */
function instrumentOpens(): { take(): string[] } {
  let opened: string[] = [];
  const record = (p: unknown) => {
    if (typeof p === 'string') opened.push(path.resolve(p));
    else if (p instanceof URL) opened.push(p.pathname);
  };
  const wrap = (obj: Record<string, unknown>, name: string) => {
    const original = obj[name] as (...a: unknown[]) => unknown;
    obj[name] = function (this: unknown, ...args: unknown[]) {
      record(args[0]);
      return original.apply(this, args);
    };
  };
  // The real module objects (not an import namespace, whose properties are read-only getters).
  const realFs = createRequire(__filename)('node:fs') as Record<string, unknown> & { promises: Record<string, unknown> };
  for (const name of ['openSync', 'open', 'readFileSync', 'readFile', 'createReadStream']) wrap(realFs, name);
  for (const name of ['open', 'readFile']) wrap(realFs.promises, name);
  return {
    take() {
      const out = opened;
      opened = [];
      return out;
    },
  };
}

export async function runCases(dir: string, write: (line: string) => void): Promise<void> {
  const opens = instrumentOpens();
  for (const c of corpusCases(dir)) {
    const t0 = performance.now();
    opens.take();
    const result: CaseResult = { id: c.id, outcome: 'accept', opened: [], ms: 0 };
    try {
      const value = await c.run();
      result.opened = opens.take();
      if (c.check) {
        try {
          const problem = await c.check(value);
          if (problem) result.checkFailure = problem;
        } catch (e) {
          result.checkFailure = (e as Error).message;
        }
      }
    } catch (e) {
      result.opened = opens.take();
      result.outcome = 'error';
      result.errorName = (e as Error).name;
      result.userError = (e as Error).name === 'UserError';
      result.message = (e as Error).message;
    }
    result.ms = performance.now() - t0;
    write(JSON.stringify(result));
  }
}

if (process.argv[2] === '--run' && process.argv[3]) {
  const dir = process.argv[3];
  runCases(dir, (line) => process.stdout.write(`${line}\n`)).then(
    () => process.exit(0),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
